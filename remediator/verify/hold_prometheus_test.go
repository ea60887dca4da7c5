package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/internal/testutil"
)

// A scrape gap is not a healthy target, on a real Prometheus: a tiny target is scraped every
// 200ms; while its scrape fails, and after it is gone from the configuration (its series marked
// stale), the old check (the alert is not firing) says healed, and the hold does not.
func TestHoldScrapeGapWithRealPrometheus(t *testing.T) {
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) {
			target := testutil.NewScrapeTarget(t)
			instance := target.Instance
			// The target comes from a file, as a container comes from service discovery.
			prom := testutil.StartScrapingPrometheus(t, bin, "gap", instance)
			q, err := NewPrometheus(prom.URL)
			if err != nil {
				t.Fatal(err)
			}
			v := New(q)
			a := template.Alert{Labels: template.KV{"alertname": "ServiceDown", "instance": instance, "job": "gap"}, Fingerprint: "gap"}
			healthy := fmt.Sprintf(`up{instance=%q,job="gap"} == 1`, instance)
			hold := Hold{Alert: a, For: time.Second, Timeout: 5 * time.Second, Interval: 100 * time.Millisecond, HealthyQuery: healthy}

			waitQuery(t, q, healthy)
			if err := v.Hold(context.Background(), hold); err != nil {
				t.Fatalf("scraped target not held healthy: %v", err)
			}

			target.SetFailing(true)
			waitQuery(t, q, fmt.Sprintf(`up{instance=%q,job="gap"} == 0`, instance))
			assertGap(t, v, a, hold, "failing scrape")

			target.SetFailing(false)
			if err := v.Hold(context.Background(), hold); err != nil {
				t.Fatalf("target scraped again not held healthy: %v", err)
			}

			// Gone from discovery, as a stopped container: its series is marked stale and vanishes.
			prom.SetTargets(t)
			waitQuery(t, q, fmt.Sprintf(`absent(up{instance=%q,job="gap"})`, instance))
			assertGap(t, v, a, hold, "series gone")
		})
	}
}

// assertGap checks that the alert-only verification passes (nothing fires) while the hold,
// which needs the target's series, does not.
func assertGap(t *testing.T, v *Verifier, a template.Alert, hold Hold, what string) {
	t.Helper()
	if err := v.Verify(context.Background(), Check{Alert: a, Timeout: time.Second, Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("%s: the alert check should see nothing firing: %v", what, err)
	}
	hold.Timeout = time.Second
	err := v.Hold(context.Background(), hold)
	if !errors.Is(err, ErrNotStable) || !strings.Contains(err.Error(), "returned no samples") {
		t.Fatalf("%s read as healthy: %v", what, err)
	}
}

func waitQuery(t *testing.T, q Querier, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		vec, err := q.Query(context.Background(), expr)
		if err == nil && len(vec) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never returned a sample: %v", expr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
