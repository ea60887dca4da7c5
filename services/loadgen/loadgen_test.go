package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
)

// TestSteadyRate: the target gets the configured rate, and the answers are counted by code.
func TestSteadyRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(500)
		}
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cfg := Config{Targets: []string{srv.URL}, Rate: 50, Concurrency: 4, Timeout: time.Second}
	if err := Run(ctx, cfg, promslog.NewNopLogger(), reg, reg); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got < 80 || got > 110 {
		t.Errorf("%d requests in 2s at 50/s", got)
	}
	ok := sample(t, reg, "loadgen_requests_total", map[string]string{"target": srv.URL, "code": "200"})
	failed := sample(t, reg, "loadgen_requests_total", map[string]string{"target": srv.URL, "code": "500"})
	if ok+failed != float64(n.Load()) || failed == 0 {
		t.Errorf("counted 200: %v, 500: %v; served %d", ok, failed, n.Load())
	}
}

// sample returns the value of the counter name whose labels include want.
func sample(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, p := range m.GetLabel() {
				if v, ok := want[p.GetName()]; ok && v != p.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestBoundedConcurrency: a slow target never has more requests in flight than allowed; the
// ticks that find no free slot are counted as skipped.
func TestBoundedConcurrency(t *testing.T) {
	var inflight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		time.Sleep(300 * time.Millisecond)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cfg := Config{Targets: []string{srv.URL}, Rate: 100, Concurrency: 3, Timeout: 5 * time.Second}
	if err := Run(ctx, cfg, promslog.NewNopLogger(), reg, reg); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > 3 || p == 0 {
		t.Errorf("peak in flight %d, want 1..3", p)
	}
	if skipped := sample(t, reg, "loadgen_requests_skipped_total", nil); skipped < 50 {
		t.Errorf("skipped %v ticks, want most of ~100", skipped)
	}
}

func TestConfig(t *testing.T) {
	good := Config{Targets: []string{"http://user-service:8080/"}, Rate: 10, Concurrency: 1, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no target", func(c *Config) { c.Targets = nil }, "at least one target"},
		{"not a URL", func(c *Config) { c.Targets = []string{"user-service:8080"} }, "not an http(s) URL"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "rate"},
		{"zero concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency"},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, "timeout"},
	}
	for _, tc := range tests {
		c := good
		tc.modify(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if got := SplitTargets([]string{"http://a/, http://b/", "http://c/"}); len(got) != 3 {
		t.Errorf("SplitTargets = %v", got)
	}
}
