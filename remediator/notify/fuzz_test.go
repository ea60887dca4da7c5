package notify

import (
	"testing"
)

// FuzzMatchers: whatever an alert's labels hold, a silence matches them as plain values: one
// equality matcher per non-empty label, never a regular expression, values unchanged.
func FuzzMatchers(f *testing.F) {
	f.Add("container", `.*`, "instance", `x", alertname=~".+`)
	f.Add("alertname", "ServiceMemoryHigh", "empty", "")
	f.Add("a", "{{ .Labels.x }}", "b", "\x00\n|")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		labels := map[string]string{n1: v1, n2: v2}
		ms := matchers(labels)
		want := 0
		for _, v := range labels {
			if v != "" {
				want++
			}
		}
		if len(ms) != want {
			t.Fatalf("%d matchers for %d non-empty labels %q", len(ms), want, labels)
		}
		for i, m := range ms {
			if m.IsRegex == nil || *m.IsRegex || m.IsEqual == nil || !*m.IsEqual {
				t.Fatalf("matcher %d of %q is not a plain equality matcher", i, labels)
			}
			if labels[*m.Name] != *m.Value {
				t.Fatalf("matcher %s=%q, the label is %q", *m.Name, *m.Value, labels[*m.Name])
			}
			if i > 0 && *ms[i-1].Name >= *m.Name {
				t.Fatalf("matchers not in a stable order: %q before %q", *ms[i-1].Name, *m.Name)
			}
		}
	})
}
