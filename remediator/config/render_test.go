package config

import (
	"strings"
	"testing"
)

func tmpl(t *testing.T, s string) Template {
	t.Helper()
	tt, err := NewTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func data(labels map[string]string) TemplateData {
	return TemplateData{Labels: labels, Annotations: map[string]string{"summary": "memory at 93% of its limit"}, Target: labels["container"], Playbook: "memory-high"}
}

func TestRenderURL(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		labels     map[string]string
		want, err  string
	}{
		{"container and port", "http://{{ .Labels.container }}:8080/recover/flush-cache",
			map[string]string{"container": "order-service"}, "http://order-service:8080/recover/flush-cache", ""},
		{"instance as host:port", "http://{{ .Labels.instance }}/recover/reset-pool",
			map[string]string{"instance": "127.0.0.1:8080"}, "http://127.0.0.1:8080/recover/reset-pool", ""},
		{"escaped on purpose", "http://x:8080/recover/flush-cache?reason={{ .Annotations.summary | queryEscape }}",
			map[string]string{}, "http://x:8080/recover/flush-cache?reason=memory+at+93%25+of+its+limit", ""},
		{"escaped with a function call", "http://x:8080/{{ pathEscape .Labels.path }}",
			map[string]string{"path": "a/b"}, "http://x:8080/a%2Fb", ""},
		{"slash adds a path segment", "http://{{ .Labels.container }}:8080/recover/flush-cache",
			map[string]string{"container": "evil.example/x"}, "", `label "container" has value "evil.example/x"`},
		{"user info redirects the call", "http://{{ .Labels.container }}:8080/recover/flush-cache",
			map[string]string{"container": "user@evil.example"}, "", `label "container" has value "user@evil.example"`},
		{"query injection", "http://x:8080/recover/{{ .Labels.action }}",
			map[string]string{"action": "flush-cache?all=1"}, "", `label "action" has value "flush-cache?all=1"`},
		{"unescaped annotation", "http://x:8080/?r={{ .Annotations.summary }}",
			map[string]string{}, "", `annotation "summary" has value`},
		{"missing label", "http://{{ .Labels.container }}:8080/",
			map[string]string{}, "", `map has no entry for key "container"`},
		{"empty host", "http://{{ .Labels.container }}:8080/",
			map[string]string{"container": ""}, "", `has no host`},
		{"port injection breaks the URL", "http://{{ .Labels.container }}:8080/",
			map[string]string{"container": "evil.example:80"}, "", `is not valid`},
		{"scheme must be http", "ftp://x/",
			map[string]string{}, "", `scheme must be http or https`},
		{"range reads every label", "http://x:8080/{{ range $k, $v := .Labels }}{{ $v }}{{ end }}",
			map[string]string{"a": "ok", "b": "ok"}, "", `annotation "summary" has value`}, // read or not, it is checked
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderURL(tmpl(t, tc.tmpl), data(tc.labels))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q (url %q)", err, tc.err, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestRenderContainerName(t *testing.T) {
	for _, tc := range []struct{ tmpl, container, want, err string }{
		{"{{ .Labels.container }}", "payment-service-2", "payment-service-2", ""},
		{"{{ .Labels.container }}", "/order_service.1", "order_service.1", ""},
		{"{{ .Labels.container }}", "../../etc", "", "not a valid container name"},
		{"{{ .Labels.container }}", "a b", "", "not a valid container name"},
		{"{{ .Labels.container }}", "", "", "not a valid container name"},
		{"{{ .Labels.nope }}", "x", "", `no entry for key "nope"`},
	} {
		got, err := RenderContainerName(tmpl(t, tc.tmpl), data(map[string]string{"container": tc.container}))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.container, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v", tc.container, got, err)
		}
	}
}

func TestRenderTarget(t *testing.T) {
	for _, tc := range []struct{ value, err string }{
		{"order-service", ""},
		{"127.0.0.1:8080", ""},
		{"", "empty target"},
		{"a/b", "must not contain"},
		{"a\nb", "control character"},
		{strings.Repeat("x", 300), "longer than 253"},
	} {
		got, err := RenderTarget(tmpl(t, DefaultTarget), data(map[string]string{"container": tc.value}))
		if tc.err == "" && (err != nil || got != tc.value) {
			t.Errorf("%q: got %q, %v", tc.value, got, err)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.value, err, tc.err)
		}
	}
}

func TestRenderArgv(t *testing.T) {
	argv := []Template{tmpl(t, "/usr/local/bin/flush"), tmpl(t, "--verbose"), tmpl(t, "{{ .Labels.container }}")}
	got, err := RenderArgv(argv, data(map[string]string{"container": "a; rm -rf /"}))
	if err != nil || strings.Join(got, "|") != "/usr/local/bin/flush|--verbose|a; rm -rf /" {
		t.Errorf("got %q, %v: shell syntax is just text without a shell", got, err)
	}
	if _, err := RenderArgv(argv, data(map[string]string{"container": "--output=/etc/passwd"})); err == nil ||
		!strings.Contains(err.Error(), "must not become an option") {
		t.Errorf("option smuggling: err = %v", err)
	}
	if _, err := RenderArgv(argv, data(map[string]string{"container": "a\x00b"})); err == nil {
		t.Error("NUL accepted")
	}
	if _, err := RenderArgv(nil, data(nil)); err == nil {
		t.Error("empty argv accepted")
	}
}

func TestRenderQuery(t *testing.T) {
	q := tmpl(t, `up{container="{{ .Labels.container }}"} == 1`)
	got, err := RenderQuery(q, data(map[string]string{"container": "order-service"}))
	if err != nil || got != `up{container="order-service"} == 1` {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := RenderQuery(q, data(map[string]string{"container": `x"} or vector(1) or up{a="`})); err == nil {
		t.Error("a quote in a label broke out of the matcher")
	}
}

func TestTemplateFieldCheck(t *testing.T) {
	for text, bad := range map[string]bool{
		"{{ .Labels.container }}":                        false,
		"{{ .Annotations.summary }} {{ .Target }}":       false,
		"{{ .Playbook }}":                                false,
		"{{ if .Labels.x }}{{ .Labels.x }}{{ end }}":     false,
		"{{ with .Labels }}{{ .container }}{{ end }}":    false,
		"{{ $.Labels.container }}":                       false,
		"{{ .Label.container }}":                         true,
		"{{ .Target.Name }}":                             true,
		"{{ .Labels.container.name }}":                   true,
		"{{ if .Alert }}x{{ end }}":                      true,
		"{{ .Labels.container | toUpper | pathEscape }}": false,
	} {
		err := checkFields(tmpl(t, text))
		if (err != nil) != bad {
			t.Errorf("%s: err = %v, want bad=%v", text, err, bad)
		}
	}
}
