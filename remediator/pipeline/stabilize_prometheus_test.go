package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// On a real Prometheus, with the default healthy query rendered from the alerts' instance and
// job: nothing fires for either target, so the old check healed both; the target whose scrape
// fails is not held healthy and its heal fails, the scraped one heals.
func TestHoldOnRealPrometheus(t *testing.T) {
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) {
			up, down := testutil.NewScrapeTarget(t), testutil.NewScrapeTarget(t)
			down.SetFailing(true)
			instance := map[string]string{"scraped": up.Instance, "gap": down.Instance}
			prom := testutil.StartScrapingPrometheus(t, bin, "demo", instance["scraped"], instance["gap"])
			q, err := verify.NewPrometheus(prom.URL)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool {
				vec, err := q.Query(context.Background(), `count(up{job="demo"}) == 2`)
				return err == nil && len(vec) == 1
			})

			h := newHarnessIn(t, t.TempDir(), playbooks(t, fastVerify, edit{"stable_for: 60ms", "stable_for: 500ms"}), nil, newFakeRunner())
			h.p.verifier.SetQuerier(q)
			for _, target := range []string{"gap", "scraped"} {
				a := alert("ServiceMemoryHigh", target, "firing")
				a.Labels["instance"] = instance[target] // job is "demo", as the alert helper sets it
				h.deliver(a)
			}
			h.idle()
			results := map[string]store.Heal{}
			for _, hl := range h.heals() {
				results[hl.Target] = hl
			}
			if hl := results["scraped"]; hl.Result != store.HealHealed || steps(hl) != "flush-cache=succeeded;" {
				t.Errorf("scraped target: %+v", hl)
			}
			gap := results["gap"]
			if gap.Result != store.HealFailed || steps(gap) != "flush-cache=failed;restart=failed;" {
				t.Fatalf("target with a failing scrape: %+v", gap)
			}
			want := fmt.Sprintf(`up{instance="%s",job="demo"} == 1 returned no samples`, instance["gap"])
			for _, s := range gap.Steps {
				if s.Reason != ReasonNotStable || !strings.Contains(s.Error, want) {
					t.Errorf("step %s: reason %q error %q, want not stable: %s", s.Name, s.Reason, s.Error, want)
				}
			}
		})
	}
}
