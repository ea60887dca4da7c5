package config

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"unicode/utf8"
)

// FuzzParse: whatever the bytes, Parse returns a config or Errors with line numbers, never panics.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	files = append(files, filepath.Join("..", "playbooks.yml"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("playbooks: &p\n  - <<: *p\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yml")
		if err == nil {
			if cfg == nil || len(cfg.Playbooks) == 0 {
				t.Fatalf("no error and no playbooks: %+v", cfg)
			}
			return
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is not Errors: %T %v", err, err)
		}
		for _, e := range es {
			if e.Line < 1 || e.File != "fuzz.yml" || e.Msg == "" {
				t.Fatalf("bad problem %+v", e)
			}
		}
	})
}

// FuzzRenderURL: whatever a label holds, a URL that renders keeps the template's shape: the
// label is the host and nothing else, the path and query are the template's.
func FuzzRenderURL(f *testing.F) {
	for _, s := range []string{"order-service", "a/b", "user@evil", "x:80", "x?y", "x#y", "%2F", "[::1]", "a b", ""} {
		f.Add(s)
	}
	t, err := NewTemplate("http://{{ .Labels.container }}:8080/recover/flush-cache?x=1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(tt *testing.T, value string) {
		s, err := RenderURL(t, TemplateData{Labels: map[string]string{"container": value}})
		if err != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			tt.Fatalf("rendered %q does not parse: %v", s, err)
		}
		if u.Hostname() != value || u.Port() != "8080" || u.Path != "/recover/flush-cache" || u.RawQuery != "x=1" || u.User != nil {
			tt.Fatalf("value %q changed the URL's shape: %q", value, s)
		}
	})
}

// FuzzRenderQuery: whatever a label holds, it reaches Prometheus as the one matcher's exact value
// (in double quotes, single quotes or a regex matcher), or the query is refused.
func FuzzRenderQuery(f *testing.F) {
	for _, v := range hostile {
		f.Add(v)
	}
	templates := []Template{}
	for _, text := range []string{`up{a="{{ .Labels.x }}"} == 1`, `up{a='{{ .Labels.x }}'} == 1`, `up{a=~"{{ .Labels.x }}"}`} {
		tt, err := NewTemplate(text)
		if err != nil {
			f.Fatal(err)
		}
		templates = append(templates, tt)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for i, tt := range templates {
			q, err := RenderQuery(tt, data(map[string]string{"x": v}))
			if err != nil {
				continue
			}
			got := matcherValue(t, q, "a")
			if !utf8.ValidString(v) {
				continue // Prometheus keeps label values UTF-8; what it does with others is its own
			}
			if i == 2 {
				re, err := regexp.Compile("^(?:" + got + ")$")
				if err != nil || !re.MatchString(v) {
					t.Fatalf("%q: regex matcher %q does not match the value (%v)", v, got, err)
				}
				continue
			}
			if got != v {
				t.Fatalf("%q: matcher value %q", v, got)
			}
		}
	})
}
