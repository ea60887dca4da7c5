package demo_test

import (
	"net/http"
	"testing"
	"time"
)

// TestBreakerDegrades: payment-service fails every request (FAULTS from the environment, as a
// container would set it); order-service's breaker opens and it keeps answering 2xx, marked
// degraded; user-service in front sees order-service answer. When order-service itself fails,
// user-service degrades in turn. When payment heals, the breaker closes again.
func TestBreakerDegrades(t *testing.T) {
	payment := startService(t, "payment-service", []string{"FAULTS=errors:1.0"})
	order := startService(t, "order-service", []string{"DEPENDENCIES=payment-service=" + payment.Addr},
		"--dependency.breaker-open-timeout=1s")
	user := startService(t, "user-service", []string{"DEPENDENCIES=order-service=" + order.Addr})

	if code, _ := request(t, http.MethodGet, payment.URL+"/"); code != 500 {
		t.Fatalf("payment with FAULTS=errors:1.0 answered %d", code)
	}
	for i := range 10 {
		res := mustJSON(t, http.MethodGet, order.URL+"/", 200)
		if res["degraded"] != true || res["payment"] != "pending" {
			t.Fatalf("order answer %d: %v, want degraded with payment pending", i, res)
		}
	}
	f := scrape(t, order.URL)
	ep := "endpoint=" + payment.Addr
	if got := f.value(t, "demo_dependency_circuit_state", "dependency=payment-service", ep); got != 2 {
		t.Errorf("circuit state = %v, want 2 (open)", got)
	}
	if got := f.value(t, "demo_dependency_requests_total", ep, "result=failure"); got != 3 {
		t.Errorf("failures before the breaker opened = %v, want 3", got)
	}
	if got := f.value(t, "demo_dependency_requests_total", ep, "result=rejected"); got != 7 {
		t.Errorf("rejected by the open breaker = %v, want 7", got)
	}
	if got := f.value(t, "demo_degraded_responses_total", "reason=payment-service_unavailable"); got != 10 {
		t.Errorf("degraded responses = %v, want 10", got)
	}
	if got := f.value(t, "demo_http_requests_total", "route=/", "code=200"); got != 10 {
		t.Errorf("order's 200s = %v, want 10", got)
	}

	// Order answered (degraded), so the user sees a healthy order-service.
	if res := mustJSON(t, http.MethodGet, user.URL+"/", 200); res["degraded"] != false {
		t.Errorf("user answer %v, want not degraded while order answers", res)
	}
	// Order failing outright makes the user degrade.
	mustJSON(t, http.MethodPost, order.URL+"/chaos/errors?ratio=1", 200)
	if res := mustJSON(t, http.MethodGet, user.URL+"/", 200); res["degraded"] != true || res["order"] != "pending" {
		t.Errorf("user answer %v, want degraded with order pending", res)
	}
	mustJSON(t, http.MethodDelete, order.URL+"/chaos", 200)

	// Payment heals: after the open timeout a probe gets through and the breaker closes.
	mustJSON(t, http.MethodDelete, payment.URL+"/chaos", 200)
	time.Sleep(1100 * time.Millisecond)
	if got := metric(t, order.URL, "demo_dependency_circuit_state", ep); got != 1 {
		t.Errorf("circuit state after the open timeout = %v, want 1 (half-open)", got)
	}
	if res := mustJSON(t, http.MethodGet, order.URL+"/", 200); res["degraded"] != false || res["payment"] != "ok" {
		t.Errorf("order answer after payment healed: %v", res)
	}
	if got := metric(t, order.URL, "demo_dependency_circuit_state", ep); got != 0 {
		t.Errorf("circuit state after a good probe = %v, want 0 (closed)", got)
	}
}

// TestPartitionReroute: with two payment instances and one partitioned, every order succeeds
// through the other, undegraded; the partitioned one answers nothing (not even /metrics) but
// its /chaos still works to end the partition.
func TestPartitionReroute(t *testing.T) {
	p1 := startService(t, "payment-service", nil)
	p2 := startService(t, "payment-service", nil)
	order := startService(t, "order-service", nil, "--dependencies=payment-service="+p1.Addr+"|"+p2.Addr)

	mustJSON(t, http.MethodPost, p1.URL+"/chaos/partition?seconds=60", 200)
	slow := 0
	for i := range 40 {
		start := time.Now()
		res := mustJSON(t, http.MethodGet, order.URL+"/", 200)
		if res["degraded"] != false || res["payment"] != "ok" {
			t.Fatalf("order %d: %v, want served by the healthy instance", i, res)
		}
		if time.Since(start) > 150*time.Millisecond {
			slow++
		}
	}
	// Only the attempts before the breaker opens pay the partition's hang.
	if slow > 3 {
		t.Errorf("%d of 40 orders waited on the partitioned instance, want <= 3", slow)
	}
	f := scrape(t, order.URL)
	if got := f.value(t, "demo_dependency_circuit_state", "endpoint="+p1.Addr); got != 2 {
		t.Errorf("partitioned instance's breaker = %v, want 2 (open)", got)
	}
	if got := f.value(t, "demo_dependency_requests_total", "endpoint="+p2.Addr, "result=success"); got != 40 {
		t.Errorf("healthy instance served %v, want 40", got)
	}
	if got := f.value(t, "demo_degraded_responses_total"); got != 0 {
		t.Errorf("degraded responses = %v, want 0", got)
	}

	for _, path := range []string{"/metrics", "/healthz", "/"} {
		if code, body := requestTimeout(t, http.MethodGet, p1.URL+path, 500*time.Millisecond); code != 0 {
			t.Errorf("partitioned %s answered %d %s", path, code, body)
		}
	}
	list := mustJSON(t, http.MethodGet, p1.URL+"/chaos", 200)
	if faults := list["faults"].([]any); len(faults) != 1 || faults[0].(map[string]any)["fault"] != "partition" {
		t.Errorf("GET /chaos = %v", list)
	}
	mustJSON(t, http.MethodDelete, p1.URL+"/chaos/partition", 200)
	mustJSON(t, http.MethodGet, p1.URL+"/healthz", 200)
}
