package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
)

// concurrencyRunner tracks the most heals ever running at once.
type concurrencyRunner struct {
	now, max atomic.Int32
	calls    atomic.Int32
}

func (c *concurrencyRunner) Run(context.Context, action.Request) (string, error) {
	n := c.now.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	c.calls.Add(1)
	time.Sleep(5 * time.Millisecond)
	c.now.Add(-1)
	return "ok", nil
}

// startStormServer runs a remediator in-process with the given playbooks, a runner that counts
// concurrency, and an HTTP server in front; all stop when the test ends.
func startStormServer(t *testing.T, playbooks string) (*Server, *concurrencyRunner, *prometheus.Registry, *httptest.Server) {
	t.Helper()
	r := &concurrencyRunner{}
	ts := newTestServer(t, t.TempDir(), playbooks, Options{Runner: r, MaxRequests: 256, Tick: 50 * time.Millisecond}, true)
	return ts.srv, r, ts.reg, ts.http
}

// Ten thousand alerts over a thousand targets inside about a second: every alert is accounted
// for, never more heals in flight than configured, the blast-radius guard trips, memory stays
// bounded, and the webhook stays fast.
func TestStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("storm test skipped in -short mode")
	}
	srv, r, reg, hs := startStormServer(t, testutil.Testdata(t, "storm-playbooks.yml"))

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const targets, perTarget = 1000, 10
	bodies := make(chan string, targets)
	for i := range targets {
		var alerts []string
		for k := range perTarget {
			name := "ServiceMemoryHigh"
			if k == perTarget-1 {
				name = "Unrelated" // one alert in ten matches no playbook
			}
			alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":%q,"container":"t%d","kind":"k%d","severity":"critical"},"startsAt":"2026-01-02T03:04:05Z"}`, name, i, k))
		}
		bodies <- `{"version":"4","status":"firing","alerts":[` + strings.Join(alerts, ",") + `]}`
	}
	close(bodies)
	start := time.Now()
	var wg sync.WaitGroup
	var slowest atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bodies {
				t0 := time.Now()
				res, err := http.Post(hs.URL+"/webhook", "application/json", strings.NewReader(b))
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != 202 {
					t.Errorf("status %d", res.StatusCode)
				}
				if d := time.Since(t0); d.Nanoseconds() > slowest.Load() {
					slowest.Store(d.Nanoseconds())
				}
			}
		}()
	}
	wg.Wait()
	intake := time.Since(start)
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := srv.Pipeline().WaitIdle(wctx); err != nil {
		t.Fatalf("pipeline not idle: %v", err)
	}
	decided := time.Since(start)

	val := func(name string, labels ...string) float64 {
		mfs, _ := reg.Gather()
		sum := 0.0
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		metrics:
			for _, m := range mf.Metric {
				for i := 0; i+1 < len(labels); i += 2 {
					found := false
					for _, lp := range m.Label {
						if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
							found = true
						}
					}
					if !found {
						continue metrics
					}
				}
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return sum
	}
	accepted := val("remediator_alerts_total", "outcome", "accepted")
	healed := val("remediator_heals_total")
	dedup := val("remediator_alerts_total", "outcome", "deduplicated")
	unmatched := val("remediator_alerts_total", "outcome", "unmatched")
	suppressed := val("remediator_heals_suppressed_total")
	blast := val("remediator_heals_suppressed_total", "reason", "blast_radius")
	t.Logf("intake %s (slowest request %s), all decided %s: accepted %v healed %v dedup %v suppressed %v (blast %v) unmatched %v, max in flight %d",
		intake, time.Duration(slowest.Load()), decided, accepted, healed, dedup, suppressed, blast, unmatched, r.max.Load())
	if accepted != targets*perTarget {
		t.Errorf("accepted %v, want %d", accepted, targets*perTarget)
	}
	if accepted != healed+dedup+suppressed+unmatched {
		t.Errorf("accounting: accepted %v != healed %v + deduplicated %v + suppressed %v + unmatched %v", accepted, healed, dedup, suppressed, unmatched)
	}
	if unmatched != targets {
		t.Errorf("unmatched %v, want %d", unmatched, targets)
	}
	if r.max.Load() > 2 {
		t.Errorf("%d heals in flight at once, max_concurrent_heals is 2", r.max.Load())
	}
	if blast == 0 || healed > 21 {
		t.Errorf("blast radius did not trip: %v heals, %v suppressed by it", healed, blast)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 100<<20 {
		t.Errorf("heap grew by %d MiB", grown>>20)
	}
}

// Without the blast-radius guard the same storm queues one heal per target at most, runs at
// most max_concurrent_heals at once, and starts heals no faster than heals_per_minute.
func TestStormRateLimitAndBoundedQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("storm test skipped in -short mode")
	}
	srv, r, _, hs := startStormServer(t, strings.Replace(testutil.Testdata(t, "storm-playbooks.yml"), "max_targets: 20", "max_targets: 0", 1))
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1000; i += 16 {
				var alerts []string
				for k := range 10 {
					alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"ServiceMemoryHigh","container":"t%d","kind":"k%d"},"startsAt":"2026-01-02T03:04:05Z"}`, i, k))
				}
				res, err := http.Post(hs.URL+"/webhook", "application/json", strings.NewReader(`{"version":"4","alerts":[`+strings.Join(alerts, ",")+`]}`))
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * time.Second)
	elapsed := time.Since(start)
	waiting := promtestutil.ToFloat64(srv.Pipeline().WaitingGauge())
	calls := r.calls.Load()
	// 600 per minute = 10 per second, plus a burst of max_concurrent_heals.
	if limit := int32(elapsed.Seconds()*10) + 3; calls > limit {
		t.Errorf("%d heals started in %s, rate limit allows %d", calls, elapsed, limit)
	}
	if calls == 0 {
		t.Error("no heal started")
	}
	if r.max.Load() > 2 {
		t.Errorf("%d heals in flight at once, max 2", r.max.Load())
	}
	if waiting > 1000 || waiting < 900 {
		t.Errorf("%v heals waiting, want one per target still waiting (<= 1000)", waiting)
	}
	t.Logf("%d heals in %s, %v waiting, max in flight %d", calls, elapsed, waiting, r.max.Load())
}
