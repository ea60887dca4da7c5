package pipeline

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// injection closes the quoted label value a query template puts it in and appends a query that
// always returns a sample.
const injection = `x"} or vector(1) or up{a="`

// TestAlertValuesCannotSteerPromQL sends alerts whose instance label rewrites a plainly
// substituted query, through the pipeline, against real Prometheus servers: a precondition
// that fails must still fail (and the step must not run), a verification query must not pass.
func TestAlertValuesCannotSteerPromQL(t *testing.T) {
	fixture, err := os.ReadFile("testdata/promql-injection.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) {
			url := testutil.StartPrometheusBinary(t, bin, "global:\n  scrape_interval: 1h\n")
			playbooks := strings.ReplaceAll(string(fixture), "PROMETHEUS_URL", url)
			q, err := verify.NewPrometheus(url)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				alertname, instance string
				ran                 bool   // whether the step ran
				steps, reason       string // the heal's steps and step reason, if there is a heal
			}{
				{"PreconditionFails", "c1:8080", false, "", ""},
				{"PreconditionFails", injection, false, "", ""},
				{"PreconditionFails", `x'} or vector(1) or up{a='`, false, "", ""},
				{"PreconditionFails", `x\"} or vector(1) or up{a=\"`, false, "", ""},
				// The escaped value is a valid string to Prometheus: a precondition that holds
				// for any instance holds for these too.
				{"PreconditionHolds", injection, true, "restart=succeeded;", ""},
				{"PreconditionHolds", "ünï\n\x00\\", true, "restart=succeeded;", ""},
				{"PreconditionRefused", "0 or vector(1)", false, "", ""},
				{"VerifyQuery", injection, true, "flush=failed;", "returned no samples"},
				{"VerifyAbsent", injection, true, "flush=succeeded;", ""},
				// The hold's healthy query cannot be made to hold either.
				{"HoldQuery", injection, true, "flush=failed;", "not stable"},
			} {
				t.Run(fmt.Sprintf("%s/%q", tc.alertname, tc.instance), func(t *testing.T) {
					h := newHarnessIn(t, t.TempDir(), playbooks, nil, &fakeRunner{fail: map[string]bool{}})
					h.p.verifier.SetQuerier(q)
					a := alert(tc.alertname, "c1", "firing")
					a.Labels["instance"] = tc.instance
					h.deliver(a)
					h.idle()
					if ran := len(h.runner.Calls()) > 0; ran != tc.ran {
						t.Fatalf("step ran: %v, want %v (calls %v)", ran, tc.ran, h.runner.Calls())
					}
					heals := h.heals()
					if !tc.ran {
						if len(heals) != 0 || h.counter("suppressed", ReasonPrecondition) != 1 {
							t.Fatalf("heals %+v, precondition suppressions %v; want none and 1", heals, h.counter("suppressed", ReasonPrecondition))
						}
						return
					}
					if len(heals) != 1 || steps(heals[0]) != tc.steps {
						t.Fatalf("heals %+v, want one with steps %s", heals, tc.steps)
					}
					if r := heals[0].Steps[0].Reason + heals[0].Steps[0].Error; !strings.Contains(r, tc.reason) {
						t.Errorf("step reason %q, want it to contain %q", r, tc.reason)
					}
					if tc.steps == "flush=failed;" && heals[0].Result != store.HealFailed {
						t.Errorf("heal result %q, want %q", heals[0].Result, store.HealFailed)
					}
				})
			}
		})
	}
}
