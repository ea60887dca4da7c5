package config

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/promql/parser"
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

// hostile are label values chosen to break out of wherever they land.
var hostile = []string{
	`"`, `'`, "`", `\`, `\"`, "a\nb", "a\r\nb", "/", "a/b", "?", "a?b=1", "@", "user@evil.example", "..", "../../etc",
	"-x", "--output=/etc/passwd", "a\x00b", strings.Repeat("x", 10000), "ünïcødé-€-😀", "#comment", "%2F", "{}", "a b",
	`x"} or vector(1) or up{a="`, `x'} or vector(1) or up{a='`, `.*`, "\xff\xfe",
}

func TestRenderContainerName(t *testing.T) {
	for _, tc := range []struct{ tmpl, container, want, err string }{
		{"{{ .Labels.container }}", "payment-service-2", "payment-service-2", ""},
		{"{{ .Labels.container }}", "/order_service.1", "order_service.1", ""},
		{"{{ .Labels.container }}", "../../etc", "", "invalid container name"},
		{"{{ .Labels.container }}", "a b", "", "invalid container name"},
		{"{{ .Labels.container }}", "", "", "rendered empty"},
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
	for _, v := range hostile {
		if got, err := RenderContainerName(tmpl(t, "{{ .Labels.container }}"), data(map[string]string{"container": v})); err == nil {
			t.Errorf("hostile %.40q rendered container name %.40q", v, got)
		}
	}
}

func TestRenderTarget(t *testing.T) {
	for _, tc := range []struct{ value, err string }{
		{"order-service", ""},
		{"127.0.0.1:8080", ""},
		{"payment_service.1:8080", ""},
		{"", "target is empty"},
		{"a/b", "not a valid target"},
		{"a\nb", "not a valid target"},
		{"x;rm -rf /", "not a valid target"},
		{"http://evil", "not a valid target"},
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
	for _, v := range hostile {
		if got, err := RenderTarget(Template{}, data(map[string]string{"container": v})); err == nil {
			t.Errorf("hostile %.40q rendered target %.40q", v, got)
		}
	}
	if got, err := RenderTarget(Template{}, data(map[string]string{"container": " c1 "})); err != nil || got != "c1" {
		t.Errorf("zero template: got %q, %v; want the default target c1", got, err)
	}
}

func TestRenderURLHostile(t *testing.T) {
	for _, v := range hostile {
		for _, text := range []string{"http://{{ .Labels.x }}:8080/recover", "http://svc:8080/recover/{{ .Labels.x }}", "http://svc:8080/r?{{ .Labels.x }}"} {
			got, err := RenderURL(tmpl(t, text), data(map[string]string{"x": v}))
			if err == nil && !urlSafeValue.MatchString(v) {
				t.Errorf("%s with %.40q rendered %.60q", text, v, got)
			}
		}
		// Escaped on purpose, any value stays inside its path segment.
		got, err := RenderURL(tmpl(t, "http://svc:8080/recover/{{ .Labels.x | pathEscape }}"), data(map[string]string{"x": v}))
		if err != nil || !strings.HasPrefix(got, "http://svc:8080/recover/") || strings.Contains(got[len("http://svc:8080/recover/"):], "/") {
			t.Errorf("pathEscape %.40q: got %.60q, %v", v, got, err)
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
	for _, v := range hostile {
		got, err := RenderArgv(argv, data(map[string]string{"container": v}))
		switch {
		case strings.HasPrefix(v, "-") || strings.ContainsRune(v, 0):
			if err == nil {
				t.Errorf("hostile %.40q accepted as %.40q", v, got)
			}
		case err != nil || len(got) != 3 || got[2] != v:
			t.Errorf("%.40q: got %.60q, %v; want it passed as one argument, unchanged", v, got, err)
		}
	}
}

// matcherValue parses q and returns the value of its one matcher on name.
func matcherValue(t *testing.T, q, name string) string {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("%.80q: %v", q, err)
	}
	var values []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Name == name {
					values = append(values, m.Value)
				}
			}
		}
		return nil
	})
	if len(values) != 1 {
		t.Fatalf("%.80q has %d matchers on %s, want 1", q, len(values), name)
	}
	return values[0]
}

func TestRenderQuery(t *testing.T) {
	q := tmpl(t, `up{container="{{ .Labels.container }}"} == 1`)
	got, err := RenderQuery(q, data(map[string]string{"container": "order-service"}))
	if err != nil || got != `up{container="order-service"} == 1` {
		t.Errorf("got %q, %v", got, err)
	}
	// Every hostile value stays the one matcher's exact value, in either kind of quotes; in a
	// regex matcher it matches only itself.
	for _, text := range []string{`up{container="{{ .Labels.container }}"} == 1`, `up{container='{{ .Labels.container }}'} == 1`} {
		for _, v := range append(hostile, "") {
			got, err := RenderQuery(tmpl(t, text), data(map[string]string{"container": v}))
			if err != nil {
				t.Errorf("%.40q: %v", v, err)
				continue
			}
			if !strings.HasPrefix(got, "up{") || !strings.HasSuffix(got, "} == 1") {
				t.Errorf("%.40q: rendered %.80q, which changed the query around the value", v, got)
			}
			if mv := matcherValue(t, got, "container"); mv != v && utf8.ValidString(v) {
				t.Errorf("%.40q: the matcher's value is %.40q", v, mv)
			}
		}
	}
	// Case functions cannot undo the escaping.
	for _, v := range []string{`x"} or vector(1) or up{a="`, "a\nb"} {
		got, err := RenderQuery(tmpl(t, `up{container="{{ .Labels.container | toUpper }}"}`), data(map[string]string{"container": v}))
		if err != nil || matcherValue(t, got, "container") != strings.ToUpper(v) {
			t.Errorf("toUpper %q: got %q, %v", v, got, err)
		}
	}
	for _, v := range hostile {
		if !utf8.ValidString(v) {
			continue // a regex must be UTF-8; Prometheus refuses it, and so does RenderQuery
		}
		got, err := RenderQuery(tmpl(t, `up{container=~"{{ .Labels.container }}-[0-9]+"}`), data(map[string]string{"container": v}))
		if err != nil {
			t.Errorf("regex %.40q: %v", v, err)
			continue
		}
		re, err := regexp.Compile("^(?:" + matcherValue(t, got, "container") + ")$")
		if err != nil || !re.MatchString(v+"-12") || (v == ".*" && re.MatchString("other-1")) {
			t.Errorf("regex %.40q: matcher %.60q does not match the value literally (%v)", v, re, err)
		}
	}
}

func TestRenderQueryRefuses(t *testing.T) {
	for _, tc := range []struct{ text, value, err string }{
		{"up > {{ .Labels.x }}", "1", `puts label "x" outside a quoted string`},
		{"{{ .Labels.x }}", "up", `puts label "x" outside a quoted string`},
		{"up{ {{- .Labels.x -}} =\"a\"}", "job", `puts label "x" outside a quoted string`},
		{"rate(up[{{ .Labels.x }}])", "5m", `is not valid PromQL`},
		{"up{a=`{{ .Labels.x }}`}", "b", `puts label "x" outside a quoted string`},
		{"up{a=\"{{ .Labels.x }}\", b=~\"{{ .Labels.x }}\"}", "b", `uses label "x" both in a regex matcher and as a plain string`},
		{"up{a=\"{{ .Labels.x }}\"} # {{ .Annotations.summary }}", "b", `puts annotation "summary" outside a quoted string`},
		// A template function can undo the escaping; the token check still catches it.
		{`up{a="{{ .Labels.x | replace "\\042" "\"" }}"}`, `"} or vector(1) or up{a="`, "refused for this alert"},
	} {
		// Dynamic templates (index) escape the loader's check and reach RenderQuery.
		for _, text := range []string{tc.text, strings.ReplaceAll(tc.text, ".Labels.x", `index .Labels "x"`)} {
			got, err := RenderQuery(tmpl(t, text), data(map[string]string{"x": tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: got %q, %v; want an error with %q", text, got, err, tc.err)
			}
		}
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
