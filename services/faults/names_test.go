package faults

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The names below are the demo services' interface: operators curl the URL paths, alert rules,
// dashboards and the README read the label values, compose files carry FAULTS entries. They are
// derived from the fault table, so these tests pin each of them: a change here is a rename for
// everyone who uses them, not a refactoring.

var (
	wantPaths  = []string{"memory-leak", "cpu", "errors", "latency", "pool-leak", "partition"}
	wantLabels = []string{"memory_leak", "memory_leak_unflushable", "cpu", "errors", "latency", "pool_leak", "partition"}
)

func TestURLNames(t *testing.T) {
	if got := names(); !slices.Equal(got, wantPaths) {
		t.Errorf("fault names %v, want %v", got, wantPaths)
	}
	_, err := New(0, 1, nil).Start("bogus", nil)
	want := `unknown fault "bogus" (known: memory-leak, cpu, errors, latency, pool-leak, partition)`
	if err == nil || err.Error() != want {
		t.Errorf("unknown fault: %v, want %s", err, want)
	}
}

func TestMetricLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(0, 1, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				got[mf.GetName()+"/"+l.GetName()] = append(got[mf.GetName()+"/"+l.GetName()], l.GetValue())
			}
		}
	}
	want := map[string][]string{
		"demo_fault_active/fault":       slices.Sorted(slices.Values(wantLabels)),
		"demo_memory_leaked_bytes/kind": {"flushable", "unflushable"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("label values %v, want %v", got, want)
	}
}

// TestStartNamesAndDefaults: each fault and kind started without parameters reports its
// label and its parameters' names and defaults.
func TestStartNamesAndDefaults(t *testing.T) {
	tests := []struct {
		path, query string
		label       string
		params      map[string]any
	}{
		{"memory-leak", "", "memory_leak", map[string]any{"rate_mb": 4.0, "kind": "flushable"}},
		{"memory-leak", "kind=unflushable", "memory_leak_unflushable", map[string]any{"rate_mb": 4.0, "kind": "unflushable"}},
		{"cpu", "", "cpu", map[string]any{"cores": 1.0}},
		{"errors", "", "errors", map[string]any{"ratio": 0.5}},
		{"latency", "", "latency", map[string]any{"ms": 500.0}},
		{"partition", "", "partition", map[string]any{"seconds": 300.0}},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			in := New(1<<20, 2, nil)
			defer in.StopAll()
			q, _ := url.ParseQuery(tc.query)
			a, err := in.Start(tc.path, q)
			if err != nil {
				t.Fatal(err)
			}
			delete(a.Params, "until") // the partition's end, a time
			if a.Fault != tc.label || !reflect.DeepEqual(a.Params, tc.params) {
				t.Errorf("started %s %v, want %s %v", a.Fault, a.Params, tc.label, tc.params)
			}
			if l := in.List(); len(l) != 1 || l[0].Fault != tc.label {
				t.Errorf("List() = %v, want only %s", l, tc.label)
			}
		})
	}
	// The pool leak needs a pool: its parameters are checked before that is refused.
	in := New(0, 1, nil)
	if _, err := in.Start("pool-leak", url.Values{"rate": {"2"}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("pool-leak?rate=2 without a pool: %v, want %v", err, ErrUnsupported)
	}
}

// TestParameterBounds: each parameter takes the ends of its range and refuses what lies
// beyond; the CPU burn is lowered to the service's CPU limit rather than refused.
func TestParameterBounds(t *testing.T) {
	tests := []struct {
		path, param       string
		min, max          string
		belowMin, overMax string
	}{
		{"memory-leak", "rate_mb", "0.1", "1024", "0.09", "1025"},
		{"cpu", "cores", "0.05", "64", "0.04", "65"},
		{"errors", "ratio", "0", "1", "-0.01", "1.01"},
		{"latency", "ms", "1", "60000", "0.5", "60001"},
		{"pool-leak", "rate", "0.01", "1000", "0.009", "1001"},
		{"partition", "seconds", "1", "86400", "0.5", "86401"},
	}
	in := New(1<<20, 0.05, nil)
	defer in.StopAll()
	for _, tc := range tests {
		for _, c := range []struct {
			value string
			ok    bool
		}{{tc.min, true}, {tc.max, true}, {tc.belowMin, false}, {tc.overMax, false}} {
			a, err := in.Start(tc.path, url.Values{tc.param: {c.value}})
			in.StopAll()
			switch {
			case c.ok && tc.path == "pool-leak":
				if !errors.Is(err, ErrUnsupported) {
					t.Errorf("%s?%s=%s: %v, want it accepted and then %v", tc.path, tc.param, c.value, err, ErrUnsupported)
				}
			case c.ok && err != nil:
				t.Errorf("%s?%s=%s: %v", tc.path, tc.param, c.value, err)
			case !c.ok && !errors.Is(err, ErrBadParameter):
				t.Errorf("%s?%s=%s: %v, want %v", tc.path, tc.param, c.value, err, ErrBadParameter)
			case tc.path == "cpu" && c.ok && a.Params["cores"] != 0.05:
				t.Errorf("cpu?cores=%s with a limit of 0.05 cores burns %v", c.value, a.Params["cores"])
			}
		}
	}
}

// TestSpecNames: every FAULTS name, with the parameter its value sets.
func TestSpecNames(t *testing.T) {
	got, err := ParseSpec("memory-leak:8,memory-leak-unflushable:9,cpu:1,errors:0.75,latency:500,pool-leak:2,partition:300")
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{"memory-leak", url.Values{"rate_mb": {"8"}}},
		{"memory-leak", url.Values{"rate_mb": {"9"}, "kind": {"unflushable"}}},
		{"cpu", url.Values{"cores": {"1"}}},
		{"errors", url.Values{"ratio": {"0.75"}}},
		{"latency", url.Values{"ms": {"500"}}},
		{"pool-leak", url.Values{"rate": {"2"}}},
		{"partition", url.Values{"seconds": {"300"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The default kind has no name of its own, and kinds are not names in the query form.
	for _, spec := range []string{"memory-leak-flushable:8", "memory-leak-unflushable?rate_mb=1"} {
		if _, err := ParseSpec(spec); !errors.Is(err, ErrUnknownFault) {
			t.Errorf("ParseSpec(%q) = %v, want %v", spec, err, ErrUnknownFault)
		}
	}
}

// TestStopOneKind: DELETE with ?kind= stops that kind; without it, every kind.
func TestStopOneKind(t *testing.T) {
	in := New(1<<20, 1, nil)
	defer in.StopAll()
	for _, kind := range []string{"flushable", "unflushable"} {
		if _, err := in.Start("memory-leak", url.Values{"kind": {kind}, "rate_mb": {"0.1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.Stop("memory-leak", url.Values{"kind": {"unflushable"}}); err != nil {
		t.Fatal(err)
	}
	if l := in.List(); len(l) != 1 || l[0].Fault != "memory_leak" {
		t.Errorf("after stopping the unflushable kind: %v, want only memory_leak", l)
	}
	if err := in.Stop("memory-leak", nil); err != nil {
		t.Fatal(err)
	}
	if l := in.List(); len(l) != 0 {
		t.Errorf("after stopping every kind: %v", l)
	}
	if err := in.Stop("errors", url.Values{"kind": {"flushable"}}); !errors.Is(err, ErrBadParameter) {
		t.Errorf("kind on a fault without kinds: %v, want %v", err, ErrBadParameter)
	}
}
