package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/store"
)

// recordingRunner is a stand-in for the action dispatcher that counts actions per target.
type recordingRunner struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingRunner) Run(_ context.Context, req action.Request) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, req.Target+"/"+req.Step.Name)
	return "ok", nil
}

func (r *recordingRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// testServer is a Server run in this process with its playbooks and state in dir, a fresh
// registry, and an HTTP server in front; it stops when the test ends, or earlier by stop.
type testServer struct {
	t      *testing.T
	dir    string
	srv    *Server
	http   *httptest.Server
	reg    *prometheus.Registry
	cancel context.CancelFunc
}

// newTestServer builds a Server from o, writing playbooks to dir/playbooks.yml unless it is
// empty (a restart keeps the file). The pipeline runs only when start is set, so a test can
// stand for a process that died after answering the webhook.
func newTestServer(t *testing.T, dir, playbooks string, o Options, start bool) *testServer {
	t.Helper()
	o.ConfigFile = filepath.Join(dir, "playbooks.yml")
	if playbooks != "" {
		testutil.WriteFile(t, dir, "playbooks.yml", playbooks)
	}
	o.StoragePath = filepath.Join(dir, "data")
	reg := prometheus.NewRegistry()
	o.Registerer, o.Gatherer = reg, reg
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if start {
		if err := srv.Start(ctx); err != nil {
			cancel()
			srv.Close()
			t.Fatal(err)
		}
	}
	ts := &testServer{t: t, dir: dir, srv: srv, http: httptest.NewServer(srv.Handler()), reg: reg, cancel: cancel}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.cancel == nil {
		return
	}
	ts.http.Close()
	ts.cancel()
	ts.srv.Close()
	ts.cancel = nil
}

// env is the usual test server: testdata/playbooks.yml, the webhook token t0ken, and a runner
// that records the actions.
type env struct {
	*testServer
	runner *recordingRunner
}

func newEnv(t *testing.T, dir string, start bool) *env {
	t.Helper()
	playbooks := ""
	if _, err := os.Stat(filepath.Join(dir, "playbooks.yml")); err != nil {
		playbooks = testutil.Testdata(t, "playbooks.yml")
	}
	tok := testutil.WriteFile(t, dir, "token", "t0ken")
	r := &recordingRunner{}
	ts := newTestServer(t, dir, playbooks, Options{WebhookTokenFile: tok, Runner: r, Tick: 20 * time.Millisecond}, start)
	return &env{testServer: ts, runner: r}
}

func notification(status, container string, startsAt time.Time) string {
	return fmt.Sprintf(`{"version":"4","groupKey":"g","status":%q,"receiver":"remediator","alerts":[
{"status":%q,"labels":{"alertname":"ServiceMemoryHigh","container":%q,"severity":"critical"},
"startsAt":%q,"fingerprint":"fp-%s"}]}`, status, status, container, startsAt.Format(time.RFC3339), container)
}

// do sends a request to the server, with the bearer token when one is given.
func (e *env) do(method, path, token, body string) (int, string) {
	e.t.Helper()
	return testutil.Do(e.t, method, e.http.URL+path, body, testutil.Bearer(token))
}

func (e *env) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Pipeline().WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) heals(query string) []store.Heal {
	e.t.Helper()
	var r struct{ Heals []store.Heal }
	testutil.GetJSON(e.t, e.http.URL+"/api/v1/heals"+query, &r)
	return r.Heals
}

var startsAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Two Alertmanager peers deliver the same notification 50 times each, concurrently (their
// retries included): exactly one heal.
func TestTwoPeersHundredDuplicatesOneHeal(t *testing.T) {
	e := newEnv(t, t.TempDir(), true)
	body := notification("firing", "c1", startsAt)
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for peer := range 2 {
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", e.http.URL+"/webhook", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer t0ken")
				req.Header.Set("User-Agent", fmt.Sprintf("Alertmanager/peer-%d", peer))
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				codes <- res.StatusCode
			}()
		}
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("status %d", c)
		}
	}
	e.idle()
	if n := e.runner.count(); n != 1 {
		t.Fatalf("%d actions, want 1", n)
	}
	if hs := e.heals(""); len(hs) != 1 || hs[0].Result != store.HealHealed {
		t.Fatalf("heals %+v", hs)
	}
	// Resolved: no action.
	if code, _ := e.do("POST", "/webhook", "t0ken", notification("resolved", "c2", startsAt)); code != 202 {
		t.Fatal(code)
	}
	e.idle()
	if n := e.runner.count(); n != 1 {
		t.Fatalf("resolved alert acted: %d actions", n)
	}
}

func TestAcceptedAlertsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, false) // the pipeline never runs: as if the process died after the 202
	if code, body := e.do("POST", "/webhook", "t0ken", notification("firing", "c1", startsAt)); code != 202 {
		t.Fatalf("%d %s", code, body)
	}
	e.stop()
	e2 := newEnv(t, dir, true)
	deadline := time.Now().Add(10 * time.Second)
	for e2.runner.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	e2.idle()
	if n := e2.runner.count(); n != 1 {
		t.Fatalf("%d actions after restart, want 1", n)
	}
}

func TestAPI(t *testing.T) {
	e := newEnv(t, t.TempDir(), true)
	e.do("POST", "/webhook", "t0ken", notification("firing", "c1", startsAt))
	e.idle()
	tests := []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"targets", "GET", "/api/v1/targets", "", "", 200, `"name":"c1"`},
		{"heals by target", "GET", "/api/v1/heals?target=c1&playbook=memory-high", "", "", 200, `"outcome":"succeeded"`},
		{"heals other target", "GET", "/api/v1/heals?target=zz", "", "", 200, `"heals":[]`},
		{"bad limit", "GET", "/api/v1/heals?limit=x", "", "", 400, `"error"`},
		{"one heal", "GET", "/api/v1/heals/1", "", "", 200, `"id":"1"`},
		{"no such heal", "GET", "/api/v1/heals/999", "", "", 404, `"error"`},
		{"heal id not a number", "GET", "/api/v1/heals/..%2Fx", "", "", 400, `must be a number`},
		{"pause needs auth", "POST", "/api/v1/pause", "", `{}`, 401, `"error"`},
		{"pause wrong token", "POST", "/api/v1/pause", "nope", `{}`, 401, `"error"`},
		{"pause bad duration", "POST", "/api/v1/pause", "t0ken", `{"duration":"soon"}`, 400, "duration"},
		{"pause unknown field", "POST", "/api/v1/pause", "t0ken", `{"tagret":"c1"}`, 400, "unknown field"},
		{"pause target", "POST", "/api/v1/pause", "t0ken", `{"target":"c1","duration":"10m"}`, 200, `"until"`},
		{"target shows paused", "GET", "/api/v1/targets", "", "", 200, `"state":"paused"`},
		{"resume target", "POST", "/api/v1/resume", "t0ken", `{"target":"c1"}`, 200, `"resumed"`},
		{"pause all", "POST", "/api/v1/pause", "t0ken", ``, 200, `"paused"`},
		{"resume all", "POST", "/api/v1/resume", "t0ken", ``, 200, `"resumed"`},
		{"reset needs auth", "POST", "/api/v1/targets/c1/reset", "", ``, 401, `"error"`},
		{"reset", "POST", "/api/v1/targets/c1/reset", "t0ken", ``, 200, `"reset"`},
		{"reset unknown", "POST", "/api/v1/targets/nope/reset", "t0ken", ``, 404, "unknown target"},
		{"reload needs auth", "POST", "/-/reload", "", ``, 401, `"error"`},
		{"reload", "POST", "/-/reload", "t0ken", ``, 200, "reloaded"},
		{"healthy", "GET", "/-/healthy", "", "", 200, "OK"},
		{"ready", "GET", "/-/ready", "", "", 200, "OK"},
		{"unknown path", "GET", "/nope", "", "", 404, `"error"`},
		{"metrics", "GET", "/metrics", "", "", 200, "remediator_target_state"},
	}
	for _, tc := range tests {
		code, body := e.do(tc.method, tc.path, tc.token, tc.body)
		if code != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, code, body, tc.status, tc.contains)
		}
	}
}

func TestBadReloadKeepsRunningConfig(t *testing.T) {
	e := newEnv(t, t.TempDir(), true)
	testutil.WriteFile(t, e.dir, "playbooks.yml", "playbooks:\n  - name: x\n    bogus: 1\n")
	code, body := e.do("POST", "/-/reload", "t0ken", "")
	if code != 500 || !strings.Contains(body, "playbooks.yml:3") {
		t.Fatalf("bad reload: %d %s", code, body)
	}
	if v := promtestutil.ToFloat64(e.srv.reloadOK); v != 0 {
		t.Fatalf("last_reload_successful %v", v)
	}
	// The old playbooks still heal.
	e.do("POST", "/webhook", "t0ken", notification("firing", "c1", startsAt))
	e.idle()
	if e.runner.count() != 1 {
		t.Fatal("running configuration lost after a bad reload")
	}
	testutil.WriteFile(t, e.dir, "playbooks.yml", testutil.Testdata(t, "playbooks.yml"))
	if code, _ := e.do("POST", "/-/reload", "t0ken", ""); code != 200 || promtestutil.ToFloat64(e.srv.reloadOK) != 1 {
		t.Fatalf("good reload: %d", code)
	}
}

func TestTooManyConcurrentRequests(t *testing.T) {
	queueWait = 50 * time.Millisecond
	block := make(chan struct{})
	h := limitRequests(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }), 2)
	srv := httptest.NewServer(h)
	defer srv.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(srv.URL)
			if err == nil {
				res.Body.Close()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	close(block)
	wg.Wait()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
}

// blockingRunner holds every action until released, as a hanging heal does.
type blockingRunner struct{ release chan struct{} }

func (b blockingRunner) Run(ctx context.Context, _ action.Request) (string, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return "", ctx.Err()
}

// While heals hang, the webhook keeps answering fast.
func TestWebhookStaysFastWhileHealsHang(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	playbooks := strings.Replace(testutil.Testdata(t, "playbooks.yml"), "heals_per_minute: 1000", "heals_per_minute: 1000\n  max_concurrent_heals: 4", 1)
	ts := newTestServer(t, t.TempDir(), playbooks, Options{Runner: blockingRunner{release}}, true)
	srv, hs := ts.srv, ts.http
	var slowest time.Duration
	for i := range 50 {
		body := notification("firing", fmt.Sprintf("c%d", i), startsAt)
		t0 := time.Now()
		res, err := http.Post(hs.URL+"/webhook", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 202 {
			t.Fatalf("status %d", res.StatusCode)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if slowest > 250*time.Millisecond {
		t.Fatalf("slowest webhook answer %s while heals hang", slowest)
	}
	if v := promtestutil.ToFloat64(srv.Pipeline().WaitingGauge()); v < 40 {
		t.Fatalf("%v heals waiting; the hanging heals should hold the rest back", v)
	}
}
