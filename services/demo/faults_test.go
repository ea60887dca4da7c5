package demo_test

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

// TestMemoryLeak: the leak grows the process' resident memory for real; a flush gives the
// flushable kind back to the kernel and leaves the unflushable kind where it is.
func TestMemoryLeak(t *testing.T) {
	for _, kind := range []string{"flushable", "unflushable"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			p := startService(t, "payment-service", nil, "--memory.limit=1GiB")
			rss := func() float64 { return metric(t, p.URL, "process_resident_memory_bytes") }
			before := rss()
			mustJSON(t, http.MethodPost, p.URL+"/chaos/memory-leak?rate_mb=100&kind="+kind, 200)
			eventually(t, 10*time.Second, "80 MiB leaked", func() bool {
				return metric(t, p.URL, "demo_memory_leaked_bytes", "kind="+kind) >= 80*mib
			})
			if got := metric(t, p.URL, "demo_fault_active", "fault="+label(kind)); got != 1 {
				t.Errorf("demo_fault_active{fault=%q} = %v, want 1", label(kind), got)
			}
			// Stopping the fault stops the growth; what leaked stays.
			mustJSON(t, http.MethodDelete, p.URL+"/chaos/memory-leak", 200)
			leaked := metric(t, p.URL, "demo_memory_leaked_bytes", "kind="+kind)
			grown := rss()
			if grown-before < 60*mib {
				t.Fatalf("RSS grew %.0f MiB under a leak of %.0f MiB, want >= 60", (grown-before)/mib, leaked/mib)
			}
			time.Sleep(300 * time.Millisecond)
			if again := metric(t, p.URL, "demo_memory_leaked_bytes", "kind="+kind); again != leaked {
				t.Errorf("leak kept growing after DELETE: %v -> %v", leaked, again)
			}

			res := mustJSON(t, http.MethodPost, p.URL+"/recover/flush-cache", 200)
			after := rss()
			switch kind {
			case "flushable":
				if res["freed_bytes"].(float64) != leaked {
					t.Errorf("freed_bytes = %v, want %v", res["freed_bytes"], leaked)
				}
				if grown-after < 50*mib {
					t.Errorf("RSS fell only %.0f MiB after flushing %.0f MiB", (grown-after)/mib, leaked/mib)
				}
				if got := metric(t, p.URL, "demo_memory_leaked_bytes", "kind="+kind); got != 0 {
					t.Errorf("leaked bytes after flush = %v, want 0", got)
				}
			case "unflushable":
				if res["freed_bytes"].(float64) != 0 {
					t.Errorf("flush freed %v bytes of the unflushable leak", res["freed_bytes"])
				}
				if after-before < 60*mib {
					t.Errorf("RSS fell to +%.0f MiB after a flush that must not free it", (after-before)/mib)
				}
				if got := metric(t, p.URL, "demo_memory_leaked_bytes", "kind="+kind); got != leaked {
					t.Errorf("leaked bytes after flush = %v, want %v", got, leaked)
				}
			}
			t.Logf("RSS: %.0f MiB -> %.0f MiB (leaked %.0f) -> %.0f MiB after flush", before/mib, grown/mib, leaked/mib, after/mib)
		})
	}
}

// loadAverage is the 1-minute load average (0 when unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

func label(kind string) string {
	if kind == "unflushable" {
		return "memory_leak_unflushable"
	}
	return "memory_leak"
}

// TestMemoryLeakFlushEndsGrowth: flushing the runaway cache also ends its growth, or the
// "heal" would only buy time.
func TestMemoryLeakFlushEndsGrowth(t *testing.T) {
	p := startService(t, "payment-service", nil)
	mustJSON(t, http.MethodPost, p.URL+"/chaos/memory-leak?rate_mb=20", 200)
	time.Sleep(300 * time.Millisecond)
	mustJSON(t, http.MethodPost, p.URL+"/recover/flush-cache", 200)
	time.Sleep(300 * time.Millisecond)
	f := scrape(t, p.URL)
	if got := f.value(t, "demo_fault_active", "fault=memory_leak"); got != 0 {
		t.Errorf("memory_leak still active after flush")
	}
	if got := f.value(t, "demo_memory_leaked_bytes", "kind=flushable"); got != 0 {
		t.Errorf("leak grew again after flush: %v bytes", got)
	}
}

// cpuRate measures the process' CPU use in cores over d.
func cpuRate(t *testing.T, p *proc, d time.Duration) float64 {
	t.Helper()
	c0 := metric(t, p.URL, "process_cpu_seconds_total")
	start := time.Now()
	time.Sleep(d)
	c1 := metric(t, p.URL, "process_cpu_seconds_total")
	return (c1 - c0) / time.Since(start).Seconds()
}

// TestCPUBurn: one core asked for is close to one core burnt (the machine is shared, so the
// lower bound is generous), it stops when the fault ends, and the burn never exceeds the
// service's CPU limit.
func TestCPUBurn(t *testing.T) {
	p := startService(t, "order-service", nil, "--cpu.limit=2")
	mustJSON(t, http.MethodPost, p.URL+"/chaos/cpu?cores=1", 200)
	time.Sleep(300 * time.Millisecond)
	// On a machine busier than its cores, one core is more than anyone gets: expect the fair
	// share instead, and try a few windows before deciding.
	want := 0.6
	if load, cpus := loadAverage(), float64(runtime.NumCPU()); load > cpus {
		want = 0.6 * cpus / load
		t.Logf("load average %.1f on %v CPUs: expecting >= %.2f cores", load, cpus, want)
	}
	best := 0.0
	for range 3 {
		got := cpuRate(t, p, 3*time.Second)
		if got > 1.3 {
			t.Fatalf("CPU under cpu?cores=1: %.2f cores, more than asked", got)
		}
		best = max(best, got)
		if best >= want {
			break
		}
	}
	if best < want {
		t.Errorf("CPU under cpu?cores=1: %.2f cores, want >= %.2f", best, want)
	}
	t.Logf("CPU under cpu?cores=1: %.2f cores", best)
	if got := metric(t, p.URL, "demo_fault_active", "fault=cpu"); got != 1 {
		t.Errorf("demo_fault_active{fault=cpu} = %v", got)
	}
	mustJSON(t, http.MethodDelete, p.URL+"/chaos/cpu", 200)
	time.Sleep(100 * time.Millisecond)
	if got := cpuRate(t, p, time.Second); got > 0.25 {
		t.Errorf("CPU after the fault ended: %.2f cores, want ~0", got)
	}

	limited := startService(t, "order-service", nil, "--cpu.limit=0.5")
	res := mustJSON(t, http.MethodPost, limited.URL+"/chaos/cpu?cores=2", 200)
	if cores := res["started"].(map[string]any)["params"].(map[string]any)["cores"]; cores != 0.5 {
		t.Errorf("cores asked 2 with a limit of 0.5: burning %v", cores)
	}
	if got := metric(t, limited.URL, "demo_cpu_limit_cores"); got != 0.5 {
		t.Errorf("demo_cpu_limit_cores = %v, want 0.5", got)
	}
	time.Sleep(200 * time.Millisecond)
	if got := cpuRate(t, limited, 2*time.Second); got > 0.8 {
		t.Errorf("CPU with a 0.5 core limit: %.2f cores, want <= 0.8", got)
	}
}

// TestErrorRatio: under errors?ratio=0.75 the observed 5xx share over 400 requests is 75%
// within a few points, and the request counter says the same.
func TestErrorRatio(t *testing.T) {
	p := startService(t, "payment-service", nil)
	mustJSON(t, http.MethodPost, p.URL+"/chaos/errors?ratio=0.75", 200)
	const n = 400
	var failed, ok atomic.Int64
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				code, body := request(t, http.MethodGet, p.URL+"/")
				switch {
				case code == 500 && strings.Contains(body, `"error"`):
					failed.Add(1)
				case code == 200:
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load()+ok.Load() != n {
		t.Fatalf("%d failed + %d ok != %d requests", failed.Load(), ok.Load(), n)
	}
	ratio := float64(failed.Load()) / n
	if ratio < 0.72 || ratio > 0.78 {
		t.Errorf("5xx share = %.3f, want 0.75 +- 0.03", ratio)
	}
	f := scrape(t, p.URL)
	if got := f.value(t, "demo_http_requests_total", "route=/", "code=500"); got != float64(failed.Load()) {
		t.Errorf("demo_http_requests_total{code=500} = %v, want %d", got, failed.Load())
	}
	mustJSON(t, http.MethodDelete, p.URL+"/chaos/errors", 200)
	for range 20 {
		if code, body := request(t, http.MethodGet, p.URL+"/"); code != 200 {
			t.Fatalf("after DELETE /chaos/errors: %d %s", code, body)
		}
	}
}

// TestLatency: the added latency is in the answer time and in the route's histogram.
func TestLatency(t *testing.T) {
	p := startService(t, "payment-service", nil)
	mustJSON(t, http.MethodPost, p.URL+"/chaos/latency?ms=300", 200)
	start := time.Now()
	if code, _ := request(t, http.MethodGet, p.URL+"/"); code != 200 {
		t.Fatalf("code %d", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered in %s under 300ms of latency", d)
	}
	f := scrape(t, p.URL)
	fast, _ := bucket(f, "0.25")
	all, _ := bucket(f, "0.5")
	if fast != 0 || all != 1 {
		t.Errorf("histogram: le=0.25 %v, le=0.5 %v; want 0 and 1", fast, all)
	}
	mustJSON(t, http.MethodDelete, p.URL+"/chaos", 200)
	start = time.Now()
	request(t, http.MethodGet, p.URL+"/")
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("still slow after DELETE /chaos: %s", d)
	}
}

func bucket(f families, le string) (float64, bool) {
	mf, ok := f["demo_http_request_duration_seconds"]
	if !ok {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if m.GetLabel()[0].GetValue() != "/" {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			if fmt.Sprint(b.GetUpperBound()) == le {
				return float64(b.GetCumulativeCount()), true
			}
		}
	}
	return 0, false
}
