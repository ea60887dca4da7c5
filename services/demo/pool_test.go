package demo_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// TestPoolLeak against a real PostgreSQL: the leak takes every connection, requests wait and
// time out (503), readiness goes false; the pool reset gives the connections back and requests
// are served again.
func TestPoolLeak(t *testing.T) {
	url := testutil.StartPostgres(t)
	p := startService(t, "order-service", nil, "--database.url="+url,
		"--database.max-connections=4", "--database.acquire-timeout=300ms")
	eventually(t, 15*time.Second, "ready", func() bool {
		code, _ := request(t, http.MethodGet, p.URL+"/readyz")
		return code == 200
	})
	order := mustJSON(t, http.MethodGet, p.URL+"/", 200)
	if order["status"] != "accepted" || order["order_id"] == nil {
		t.Fatalf("order not stored: %v", order)
	}
	if got := metric(t, p.URL, "demo_pool_max_connections"); got != 4 {
		t.Fatalf("demo_pool_max_connections = %v, want 4", got)
	}

	mustJSON(t, http.MethodPost, p.URL+"/chaos/pool-leak?rate=20", 200)
	eventually(t, 5*time.Second, "all 4 connections leaked", func() bool {
		return metric(t, p.URL, "demo_pool_in_use_connections") == 4
	})
	eventually(t, 2*time.Second, "not ready", func() bool {
		code, _ := request(t, http.MethodGet, p.URL+"/readyz")
		return code == 503 && metric(t, p.URL, "demo_ready") == 0
	})

	// Traffic while exhausted: every request waits out the acquire timeout and fails.
	var stop atomic.Bool
	var codes sync.Map
	var wg sync.WaitGroup
	traffic := func() {
		stop.Store(false)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					code, _ := request(t, http.MethodGet, p.URL+"/")
					n, _ := codes.LoadOrStore(code, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
			}()
		}
	}
	traffic()
	maxWaiters := 0.0
	eventually(t, 5*time.Second, "waiters and timeouts", func() bool {
		f := scrape(t, p.URL)
		maxWaiters = max(maxWaiters, f.value(t, "demo_pool_waiters"))
		return maxWaiters > 0 && f.value(t, "demo_pool_acquire_timeouts_total") >= 6
	})
	stop.Store(true)
	wg.Wait()
	if n, ok := codes.Load(200); ok && n.(*atomic.Int64).Load() > 0 {
		t.Errorf("%d requests succeeded with every connection leaked", n.(*atomic.Int64).Load())
	}
	if n, ok := codes.Load(503); !ok || n.(*atomic.Int64).Load() == 0 {
		t.Errorf("no 503 while the pool was exhausted")
	}
	f := scrape(t, p.URL)
	timeouts := f.value(t, "demo_pool_acquire_timeouts_total")
	if wait := f.value(t, "demo_pool_wait_seconds_total"); wait < 0.3*6 {
		t.Errorf("demo_pool_wait_seconds_total = %v after %v timeouts of 0.3s", wait, timeouts)
	}
	t.Logf("exhausted: max waiters %v, timeouts %v", maxWaiters, timeouts)

	res := mustJSON(t, http.MethodPost, p.URL+"/recover/reset-pool", 200)
	if res["released_connections"] != 4.0 {
		t.Errorf("released_connections = %v, want 4", res["released_connections"])
	}
	codes = sync.Map{}
	traffic()
	time.Sleep(time.Second)
	f = scrape(t, p.URL)
	stop.Store(true)
	wg.Wait()
	if got := f.value(t, "demo_pool_acquire_timeouts_total"); got != timeouts {
		t.Errorf("timeouts kept rising after the reset: %v -> %v", timeouts, got)
	}
	if got := f.value(t, "demo_fault_active", "fault=pool_leak"); got != 0 {
		t.Errorf("pool_leak still active after the reset")
	}
	if n, ok := codes.Load(200); !ok || n.(*atomic.Int64).Load() < 10 {
		t.Errorf("few requests served after the reset: %v", ok)
	}
	for _, c := range []int{0, 503, 500} {
		if n, ok := codes.Load(c); ok && n.(*atomic.Int64).Load() > 0 {
			t.Errorf("%d requests answered %d after the reset", n.(*atomic.Int64).Load(), c)
		}
	}
	if got := metric(t, p.URL, "demo_pool_waiters"); got != 0 {
		t.Errorf("waiters after the reset = %v", got)
	}
	if code, body := request(t, http.MethodGet, p.URL+"/readyz"); code != 200 {
		t.Errorf("readyz after the reset: %d %s", code, body)
	}
}

// TestDatabaseLate: a database that is down at start leaves the service up but not ready;
// when the database comes, the service becomes ready and stores orders without a restart.
func TestDatabaseLate(t *testing.T) {
	testutil.LookPath(t, "initdb")
	port := testutil.FreePort(t)
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	p := startService(t, "order-service", nil, "--database.url="+url)
	if code, body := request(t, http.MethodGet, p.URL+"/readyz"); code != 503 {
		t.Fatalf("readyz with the database down: %d %s", code, body)
	}
	if got := metric(t, p.URL, "demo_ready"); got != 0 {
		t.Errorf("demo_ready = %v with the database down", got)
	}
	if code, body := request(t, http.MethodGet, p.URL+"/"); code != 503 {
		t.Errorf("GET / with the database down: %d %s", code, body)
	}
	testutil.StartPostgresAt(t, port)
	eventually(t, 15*time.Second, "ready once the database is up", func() bool {
		code, _ := request(t, http.MethodGet, p.URL+"/readyz")
		return code == 200
	})
	mustJSON(t, http.MethodGet, p.URL+"/", 200)
}
