package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/services/demo"
)

func testConfig() demo.Config {
	return demo.Config{
		Service: "payment-service", MemoryLimit: 256 << 20, CPULimit: 1, CgroupRoot: "/nonexistent",
		DBMaxConns: 4, DBAcquireTimeout: time.Second,
	}
}

func newInProcess(t *testing.T, cfg demo.Config) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := demo.New(context.Background(), cfg, promslog.NewNopLogger(), reg, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv
}

// TestBadInput: every kind of bad request gets a 4xx with a JSON error that says what is
// wrong, and changes nothing.
func TestBadInput(t *testing.T) {
	srv := newInProcess(t, testConfig())
	tests := []struct {
		method, path string
		code         int
		errPart      string
	}{
		{"POST", "/chaos/bogus", 404, `unknown fault "bogus"`},
		{"DELETE", "/chaos/bogus", 404, `unknown fault "bogus"`},
		{"POST", "/chaos/errors?ratio=1.5", 400, "ratio=\"1.5\" must be a number from 0 to 1"},
		{"POST", "/chaos/errors?ratio=lots", 400, "ratio=\"lots\""},
		{"POST", "/chaos/errors?ratio=NaN", 400, "ratio"},
		{"POST", "/chaos/errors?ratio=0.5&ratio=0.6", 400, "ratio given 2 times"},
		{"POST", "/chaos/latency?ratio=0.5", 400, "unknown parameter(s) ratio"},
		{"POST", "/chaos/latency?ms=-5", 400, "ms="},
		{"POST", "/chaos/memory-leak?kind=weird", 400, "kind=\"weird\" must be one of flushable, unflushable"},
		{"POST", "/chaos/memory-leak?rate_mb=0", 400, "rate_mb"},
		{"POST", "/chaos/cpu?cores=1000", 400, "cores"},
		{"POST", "/chaos/partition?seconds=", 400, "seconds"},
		{"POST", "/chaos/pool-leak", 409, "--database.url is not set"},
		{"GET", "/chaos/cpu", 405, "method GET not allowed"},
		{"PUT", "/chaos", 405, "method PUT not allowed"},
		{"GET", "/chaos?all=1", 400, "no parameters"},
		{"POST", "/", 405, "method POST not allowed"},
		{"GET", "/recover/flush-cache", 405, "method GET not allowed"},
		{"POST", "/recover/bogus", 404, `unknown recovery action "bogus"`},
		{"POST", "/recover/flush-cache?now=1", 400, "no parameters"},
		{"POST", "/recover/reset-pool", 409, "--database.url is not set"},
		{"GET", "/nope", 404, "no such endpoint: /nope"},
		{"DELETE", "/healthz", 405, "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not a JSON object: %v", err)
			}
			if resp.StatusCode != tc.code || !strings.Contains(body["error"], tc.errPart) {
				t.Errorf("%d %q, want %d with %q", resp.StatusCode, body["error"], tc.code, tc.errPart)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.code == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without Allow header")
			}
		})
	}
	resp, err := http.Get(srv.URL + "/chaos")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct {
		Faults []any
		Leaked map[string]int64 `json:"memory_leaked_bytes"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&state)
	if len(state.Faults) != 0 {
		t.Errorf("bad requests started faults: %v", state.Faults)
	}
	if want := map[string]int64{"flushable": 0, "unflushable": 0}; !reflect.DeepEqual(state.Leaked, want) {
		t.Errorf("memory_leaked_bytes = %v, want %v", state.Leaked, want)
	}
}

// TestBadConfig: configuration mistakes stop the start with a message naming the flag.
func TestBadConfig(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*demo.Config)
		want   string
	}{
		{"unknown fault", func(c *demo.Config) { c.Faults = "errors:0.5,bogus" }, `--faults: unknown fault "bogus"`},
		{"fault value out of range", func(c *demo.Config) { c.Faults = "errors:2" }, "--faults: errors: bad parameter: ratio"},
		{"pool leak without database", func(c *demo.Config) { c.Faults = "pool-leak" }, "--faults: pool-leak: unsupported"},
		{"dependency not host:port", func(c *demo.Config) { c.Dependencies = "payment-service" }, "--dependencies"},
		{"several endpoints without a name", func(c *demo.Config) { c.Dependencies = "a:1|b:2" }, "need a name"},
		{"database URL malformed", func(c *demo.Config) { c.DatabaseURL = "postgres://%zz" }, "--database.url"},
		{"empty name", func(c *demo.Config) { c.Service = "" }, "service name"},
		{"zero memory limit", func(c *demo.Config) { c.MemoryLimit = 0 }, "memory limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.modify(&cfg)
			reg := prometheus.NewRegistry()
			s, err := demo.New(context.Background(), cfg, promslog.NewNopLogger(), reg, reg)
			if err == nil {
				s.Close()
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
	// And the real program exits non-zero saying so.
	out, err := exec.Command(binary, "--faults=bogus", "--web.listen-address=127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown fault \"bogus\"`) {
		t.Errorf("demo-service --faults=bogus: %v\n%s", err, out)
	}
}

// TestHelp: --help shows every flag with its environment variable, and the loadgen command.
func TestHelp(t *testing.T) {
	out, err := exec.Command(binary, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, want := range []string{
		"--service.name", "$SERVICE_NAME", "--web.listen-address", "$LISTEN_ADDR",
		"--dependencies", "$DEPENDENCIES", "--database.url", "$DATABASE_URL", "--faults", "$FAULTS",
		"--memory.limit", "--cpu.limit", "loadgen", "--target", "$LOADGEN_TARGETS", "--rate", "$LOADGEN_RATE",
		"--log.level", "healthcheck",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}

// TestMetricsContract: a fresh process exports every series the rules and dashboards use,
// the labelled ones pre-created at zero.
func TestMetricsContract(t *testing.T) {
	p := startService(t, "order-service", nil, "--dependencies=payment-service=127.0.0.1:1|127.0.0.1:2",
		"--memory.limit=300MiB", "--cpu.limit=1.5")
	f := scrape(t, p.URL)
	for _, name := range []string{
		"process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds", "go_goroutines",
		"demo_ready", "demo_pool_max_connections", "demo_pool_in_use_connections", "demo_pool_idle_connections",
		"demo_pool_waiters", "demo_pool_wait_seconds_total", "demo_pool_acquire_timeouts_total",
	} {
		f.value(t, name)
	}
	if got := f.value(t, "demo_memory_limit_bytes"); got != 300<<20 {
		t.Errorf("demo_memory_limit_bytes = %v", got)
	}
	if got := f.value(t, "demo_cpu_limit_cores"); got != 1.5 {
		t.Errorf("demo_cpu_limit_cores = %v", got)
	}
	for _, code := range []string{"200", "500", "503"} {
		f.value(t, "demo_http_requests_total", "route=/", "method=GET", "code="+code)
	}
	f.value(t, "demo_http_request_duration_seconds", "route=/")
	for _, fault := range []string{"memory_leak", "memory_leak_unflushable", "cpu", "errors", "latency", "pool_leak", "partition"} {
		if got := f.value(t, "demo_fault_active", "fault="+fault); got != 0 {
			t.Errorf("demo_fault_active{fault=%q} = %v at start", fault, got)
		}
	}
	for _, kind := range []string{"flushable", "unflushable"} {
		f.value(t, "demo_memory_leaked_bytes", "kind="+kind)
	}
	for _, ep := range []string{"127.0.0.1:1", "127.0.0.1:2"} {
		f.value(t, "demo_dependency_circuit_state", "dependency=payment-service", "endpoint="+ep)
		for _, r := range []string{"success", "failure", "rejected"} {
			f.value(t, "demo_dependency_requests_total", "dependency=payment-service", "endpoint="+ep, "result="+r)
		}
	}
	f.value(t, "demo_degraded_responses_total", "reason=payment-service_unavailable")
	mf := f["demo_http_request_duration_seconds"]
	var les []float64
	for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
		les = append(les, b.GetUpperBound())
	}
	if want := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}; !equal(les, want) {
		t.Errorf("buckets %v, want %v", les, want)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLoadgenCommand: `demo-service loadgen` drives a service (targets from the environment,
// as in compose) and exports its own metrics.
func TestLoadgenCommand(t *testing.T) {
	p := startService(t, "user-service", nil)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cmd := exec.Command(binary, "loadgen", "--rate=40", "--web.listen-address="+addr)
	cmd.Env = append(os.Environ(), "LOADGEN_TARGETS="+p.URL+"/")
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("loadgen output:\n%s", out)
		}
	}()
	eventually(t, 10*time.Second, "loadgen requests counted", func() bool {
		f, err := tryScrape("http://" + addr)
		if err != nil {
			return false
		}
		v, _ := f.lookup("loadgen_requests_total", "target="+p.URL+"/", "code=200")
		return v >= 20
	})
	if got := metric(t, p.URL, "demo_http_requests_total", "route=/", "code=200"); got < 20 {
		t.Errorf("service counted %v requests", got)
	}
}

// TestHealthcheckCommand: the container healthcheck passes on a healthy service and fails on
// a partitioned one (which never answers) within its timeout.
func TestHealthcheckCommand(t *testing.T) {
	p := startService(t, "payment-service", nil)
	if out, err := exec.Command(binary, "healthcheck", "--url="+p.URL+"/healthz").CombinedOutput(); err != nil {
		t.Errorf("healthcheck of a healthy service: %v %s", err, out)
	}
	mustJSON(t, http.MethodPost, p.URL+"/chaos/partition?seconds=30", 200)
	start := time.Now()
	out, err := exec.Command(binary, "healthcheck", "--url="+p.URL+"/healthz", "--timeout=500ms").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unhealthy") {
		t.Errorf("healthcheck of a partitioned service: %v %s", err, out)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("healthcheck took %s with a 500ms timeout", d)
	}
	mustJSON(t, http.MethodDelete, p.URL+"/chaos", 200)
}
