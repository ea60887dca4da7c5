package action

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

// startDemoService runs the real demo service on a loopback port and returns its address.
func startDemoService(t *testing.T) string {
	t.Helper()
	return strings.TrimPrefix(testutil.StartDemoService(t, "order-service", "--memory.limit=1GiB").URL, "http://")
}

func leakedBytes(t *testing.T, addr string) float64 {
	t.Helper()
	return testutil.ScrapeSample(t, "http://"+addr+"/metrics", "demo_memory_leaked_bytes", map[string]string{"kind": "flushable"})
}

// The shipped playbooks' http steps, run unchanged against the real demo service: the client
// dials loopback whatever host the step names, as Docker's DNS would resolve the container.
func TestShippedHTTPStepsAgainstDemoService(t *testing.T) {
	addr := startDemoService(t)
	cfg, err := config.Load(filepath.Join("..", "playbooks.yml"))
	if err != nil {
		t.Fatal(err)
	}
	client := NewHTTPClient()
	client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	d := NewDispatcher(DispatcherOptions{HTTPClient: client})
	labels := map[string]string{"alertname": "ServiceMemoryHigh", "container": "order-service", "severity": "critical"}

	// A flushable leak of some MiB, then stopped so that the flush is the only thing that frees it.
	testutil.Call(t, http.MethodPost, "http://"+addr+"/chaos/memory-leak?rate_mb=20&kind=flushable")
	deadline := time.Now().Add(10 * time.Second)
	for leakedBytes(t, addr) < 10<<20 {
		if time.Now().After(deadline) {
			t.Fatal("the leak did not grow")
		}
		time.Sleep(100 * time.Millisecond)
	}
	testutil.Call(t, http.MethodDelete, "http://"+addr+"/chaos/memory-leak")
	if leakedBytes(t, addr) == 0 {
		t.Fatal("nothing leaked")
	}

	flush := cfg.Playbook("memory-high").Step("flush-cache")
	detail, err := d.Run(context.Background(), request(flush, labels))
	if err != nil {
		t.Fatalf("flush-cache: %v", err)
	}
	if !strings.HasPrefix(detail, "POST http://order-service:8080/recover/flush-cache: 200 OK") {
		t.Errorf("detail = %q", detail)
	}
	if got := leakedBytes(t, addr); got != 0 {
		t.Errorf("leaked bytes after the flush step = %v, want 0", got)
	}

	// Without a database the pool cannot be reset: the step fails with the service's reason,
	// which is what makes the playbook escalate to a restart.
	reset := cfg.Playbook("pool-exhausted").Step("reset-pool")
	_, err = d.Run(context.Background(), request(reset, labels))
	if err == nil || !strings.Contains(err.Error(), "got 409 Conflict, want 200 or 202 or 204") ||
		!strings.Contains(err.Error(), "--database.url is not set") {
		t.Errorf("reset-pool without a database: %v", err)
	}
}
