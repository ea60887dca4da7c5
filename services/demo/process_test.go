package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
)

// binary is the demo-service built once for the package's process tests: memory and CPU are
// asserted on a real process' own metrics, not on the test binary's.
var binary string

var buildFlags []string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "demo-service-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "demo-service")
	args := append([]string{"build", "-o", binary}, buildFlags...)
	cmd := exec.Command("go", append(args, "github.com/selfheal/selfheal/services/cmd/demo-service")...)
	cmd.Env = os.Environ()
	if len(buildFlags) == 0 {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building demo-service: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	Addr string // host:port
	URL  string // http://host:port
}

// startService runs demo-service with args (and env entries) on a free loopback port and
// waits until it answers /healthz. Cgroups are read from an empty directory so the limits are
// the flags' on any machine.
func startService(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	all := append([]string{"--service.name=" + name, "--web.listen-address=" + addr,
		"--cgroup.root=" + t.TempDir(), "--log.level=debug"}, args...)
	cmd := exec.Command(binary, all...)
	cmd.Env = append(os.Environ(), env...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(8 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if strings.Contains(out.String(), "DATA RACE") {
			t.Errorf("%s: data race", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, out.String())
		}
	})
	p := &proc{Addr: addr, URL: "http://" + addr}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := request(t, http.MethodGet, p.URL+"/healthz")
		if code == http.StatusOK {
			return p
		}
		select {
		case <-exited:
			t.Fatalf("%s exited at start:\n%s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after 15s:\n%s", name, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 5 * time.Second}

// request returns the status code (0 when no answer came) and the body.
func request(t *testing.T, method, url string) (int, string) {
	t.Helper()
	return requestTimeout(t, method, url, 5*time.Second)
}

func requestTimeout(t *testing.T, method, url string, timeout time.Duration) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustJSON does a request expecting code and decodes the JSON answer.
func mustJSON(t *testing.T, method, url string, code int) map[string]any {
	t.Helper()
	got, body := request(t, method, url)
	if got != code {
		t.Fatalf("%s %s = %d %s, want %d", method, url, got, body, code)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s %s: not JSON: %v: %s", method, url, err, body)
	}
	return v
}

type families map[string]*dto.MetricFamily

func scrape(t *testing.T, base string) families {
	t.Helper()
	f, err := tryScrape(base)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func tryScrape(base string) (families, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return mf, nil
}

// value sums the samples of name whose labels include want (label=value pairs); it fails the
// test when no series matches, because a missing series is a contract break, not a zero.
func (f families) value(t *testing.T, name string, want ...string) float64 {
	t.Helper()
	v, ok := f.lookup(name, want...)
	if !ok {
		t.Fatalf("no series %s%v", name, want)
	}
	return v
}

func (f families) lookup(name string, want ...string) (float64, bool) {
	mf, ok := f[name]
	if !ok {
		return 0, false
	}
	sum, found := 0.0, false
outer:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if labels[k] != v {
				continue outer
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

func metric(t *testing.T, base, name string, want ...string) float64 {
	t.Helper()
	return scrape(t, base).value(t, name, want...)
}

// eventually polls cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
