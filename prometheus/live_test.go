package prometheus

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// promAlert is an alert as Prometheus' /api/v1/alerts lists it (pending or firing).
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

func alerts(t *testing.T, promURL string) []promAlert {
	t.Helper()
	return apiData[struct {
		Alerts []promAlert `json:"alerts"`
	}](t, promURL+"/api/v1/alerts").Alerts
}

// findAlert returns the alert with the given name and severity on instance, if listed.
func findAlert(t *testing.T, promURL, name, severity, instance string) (promAlert, bool) {
	t.Helper()
	for _, a := range alerts(t, promURL) {
		if a.Labels["alertname"] == name && a.Labels["severity"] == severity && a.Labels["instance"] == instance {
			return a, true
		}
	}
	return promAlert{}, false
}

// startDemoService runs the real demo service on a loopback port with a small memory limit,
// and returns its base URL and port.
func startDemoService(t *testing.T, name string, memoryLimit string) (string, int) {
	t.Helper()
	svc := testutil.StartDemoService(t, name,
		"--memory.limit="+memoryLimit,
		// An empty cgroup root: the limits come from the flags even when the test itself runs
		// in a memory-limited container, so the leak reaches the threshold in seconds.
		"--cgroup.root="+t.TempDir(),
		"--log.level=warn",
	)
	u, err := url.Parse(svc.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return svc.URL, port
}

// TestMemoryAlertFiresAndResolvesOnRealService runs the real Prometheus with the shipped
// discovery, relabeling and rules (testConfig lists every difference) against the real demo
// service: a memory leak makes ServiceMemoryHigh (critical, for: 15s as shipped) pending, then
// firing with the contract's labels and annotations, and Prometheus sends it to Alertmanager; the
// gentle heal (stop the fault, flush the cache) resolves it. Along the way it checks that every
// recording rule yields a series on the real metrics, so a renamed metric or label fails here.
//
// It runs on every Prometheus server at hand (2.x, and 3 where PROMETHEUS3 names one), at once.
func TestMemoryAlertFiresAndResolvesOnRealService(t *testing.T) {
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testMemoryAlertFiresAndResolves(t, bin)
		})
	}
}

func testMemoryAlertFiresAndResolves(t *testing.T, bin string) {
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	svc, port := startDemoService(t, "user-service", "64MiB")
	instance := fmt.Sprintf("user-service:%d", port)
	engine := startFakeEngine(t, newContainer("user-service", map[string]string{
		"com.docker.compose.service": "user-service",
		"prometheus.scrape":          "true",
		"prometheus.port":            strconv.Itoa(port),
		"selfheal.service":           "user-service",
		"remediator.enable":          "true",
	}, port))
	sink := startAlertSink(t)
	prom := testutil.StartPrometheusBinary(t, bin, testConfig(t, engine.srv.URL, sink.addr()), repoRuleFiles(t)...)
	step("prometheus ready")

	// Steady traffic on "/", as the load generator gives it, for the HTTP recording rules.
	ctx, stopTraffic := context.WithCancel(context.Background())
	var traffic sync.WaitGroup
	traffic.Add(1)
	go func() {
		defer traffic.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if resp, err := http.Get(svc + "/"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}()
	t.Cleanup(func() { stopTraffic(); traffic.Wait() })

	testutil.Eventually(t, 15*time.Second, "the demo service discovered and up", func() bool {
		r := query(t, prom, fmt.Sprintf(`up{job="demo-services",instance=%q,service="user-service",container="user-service"} == 1`, instance))
		return len(r) == 1
	})
	step("target up")
	if _, ok := findAlert(t, prom, "ServiceMemoryHigh", "critical", instance); ok {
		t.Fatal("ServiceMemoryHigh before any leak")
	}

	testutil.Call(t, http.MethodPost, svc+"/chaos/memory-leak?rate_mb=32&kind=flushable")
	step("leak started")
	testutil.Eventually(t, 20*time.Second, "ServiceMemoryHigh/critical pending", func() bool {
		a, ok := findAlert(t, prom, "ServiceMemoryHigh", "critical", instance)
		if ok && a.State == "firing" {
			t.Fatalf("ServiceMemoryHigh fired without being pending first (for: ignored?): %+v", a)
		}
		return ok && a.State == "pending"
	})
	pendingAt := time.Now()
	step("pending")

	// While it is pending: a burst of errors must show in the 5xx ratio of "/", which proves the
	// ratio reads the real route and code labels; the other recording rules must have series.
	testutil.Call(t, http.MethodPost, svc+"/chaos/errors?ratio=1.0")
	testutil.Eventually(t, 10*time.Second, "the 5xx ratio of / rises above 0 during an error burst", func() bool {
		return len(query(t, prom, fmt.Sprintf(`instance_route:demo_http_errors:ratio_rate1m{instance=%q,route="/",service="user-service",container="user-service"} > 0`, instance))) == 1
	})
	testutil.Call(t, http.MethodDelete, svc+"/chaos/errors")
	for _, rec := range []string{
		"instance:demo_memory_usage:ratio",
		"instance:demo_cpu_usage:ratio_rate30s",
		"instance_route:demo_http_request_duration_seconds:p99_rate1m",
	} {
		testutil.Eventually(t, 10*time.Second, rec+" has a series for the service", func() bool {
			return len(query(t, prom, fmt.Sprintf(`%s{instance=%q,service="user-service",container="user-service"}`, rec, instance))) == 1
		})
	}
	// No database, no pool: the pool ratio must stay absent rather than divide by zero.
	if r := query(t, prom, fmt.Sprintf(`instance:demo_pool_usage:ratio{instance=%q}`, instance)); len(r) != 0 {
		t.Errorf("instance:demo_pool_usage:ratio for a service without a pool: %v", r)
	}

	var firing promAlert
	testutil.Eventually(t, 30*time.Second, "ServiceMemoryHigh/critical firing", func() bool {
		a, ok := findAlert(t, prom, "ServiceMemoryHigh", "critical", instance)
		firing = a
		return ok && a.State == "firing"
	})
	step("firing")
	if held := time.Since(pendingAt); held < 10*time.Second {
		t.Errorf("pending for only %s before firing; the rule says for: 15s", held)
	}
	wantLabels := map[string]string{
		"alertname": "ServiceMemoryHigh", "severity": "critical", "remediation": "auto",
		"job": "demo-services", "instance": instance, "service": "user-service", "container": "user-service",
	}
	if fmt.Sprint(firing.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v, want %v", firing.Labels, wantLabels)
	}
	if v, err := strconv.ParseFloat(firing.Value, 64); err != nil || v <= 0.9 {
		t.Errorf("value %q, want a memory ratio above 0.9", firing.Value)
	}
	for key, want := range map[string]string{
		"summary":     "user-service (" + instance + ") uses ",
		"description": "Resident memory of container user-service is ",
		"runbook_url": "docs/runbooks.md#servicememoryhigh",
	} {
		if !strings.Contains(firing.Annotations[key], want) {
			t.Errorf("annotation %s = %q, want it to contain %q", key, firing.Annotations[key], want)
		}
	}
	if !strings.Contains(firing.Annotations["description"], "% of its limit") {
		t.Errorf("description %q does not show the measured ratio", firing.Annotations["description"])
	}

	// Prometheus hands the firing alert to Alertmanager.
	sent := waitSent(t, sink, 15*time.Second, func(a sentAlert) bool {
		return a.Labels["alertname"] == "ServiceMemoryHigh" && a.Labels["severity"] == "critical" && a.EndsAt.After(time.Now())
	})
	if sent.Labels["instance"] != instance || sent.Labels["remediation"] != "auto" {
		t.Errorf("sent to Alertmanager with labels %v", sent.Labels)
	}
	step("sent to alertmanager")

	// The heal a playbook would run: stop the fault, flush the runaway cache.
	testutil.Call(t, http.MethodDelete, svc+"/chaos")
	testutil.Call(t, http.MethodPost, svc+"/recover/flush-cache")
	step("healed (flush-cache)")
	testutil.Eventually(t, 20*time.Second, "ServiceMemoryHigh/critical resolved", func() bool {
		_, ok := findAlert(t, prom, "ServiceMemoryHigh", "critical", instance)
		return !ok
	})
	step("resolved")
	waitSent(t, sink, 15*time.Second, func(a sentAlert) bool {
		return a.Labels["alertname"] == "ServiceMemoryHigh" && a.Labels["severity"] == "critical" && !a.EndsAt.After(time.Now())
	})
	step("resolved sent to alertmanager")
}

// waitSent returns the first alert Prometheus sends the sink that satisfies ok.
func waitSent(t *testing.T, sink *alertSink, timeout time.Duration, ok func(sentAlert) bool) sentAlert {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case batch := <-sink.got:
			for _, a := range batch {
				if ok(a) {
					return a
				}
			}
		case <-deadline:
			t.Fatalf("no matching alert sent to Alertmanager within %s", timeout)
		}
	}
}
