package prometheus

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

const configFile = "prometheus.yml"

// shippedRuleGlob is where the compose stack mounts rules/.
const shippedRuleGlob = "/etc/prometheus/rules/*.yml"

func repoRuleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in ../rules (%v)", err)
	}
	return files
}

// TestPromtoolCheckConfig checks the shipped file with promtool, which also checks the rule files
// it loads. The copy checked differs in one line: rule_files names the repository's rules/
// instead of the path the compose stack mounts them at, so that the rules are checked too (a
// glob that matches nothing would pass silently).
func TestPromtoolCheckConfig(t *testing.T) {
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), shippedRuleGlob) {
		t.Fatalf("%s does not load rules from %s, where docker-compose.yml mounts rules/", configFile, shippedRuleGlob)
	}
	rulesDir, err := filepath.Abs(filepath.Join("..", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	rewritten := strings.Replace(string(b), shippedRuleGlob, filepath.Join(rulesDir, "*.yml"), 1)
	if err := os.WriteFile(cfg, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, bin := range testutil.Promtools(t) {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, "check", "config", cfg).CombinedOutput()
			if err != nil {
				t.Fatalf("%s check config: %v\n%s", name, err, out)
			}
			if want := fmt.Sprintf("%d rule files found", len(repoRuleFiles(t))); !strings.Contains(string(out), want) {
				t.Errorf("%s check config did not check the rules (%q missing):\n%s", name, want, out)
			}
		})
	}
}

// testConfig generates the live tests' Prometheus configuration from the shipped one. The
// differences, and only these:
//   - global scrape_interval, scrape_timeout and evaluation_interval 5s/4s/5s -> 1s/1s/1s, and the
//     Docker discovery refresh_interval 5s -> 1s, so a test takes seconds per step, not tens;
//   - docker_sd_configs host: the socket proxy -> a stand-in engine API on 127.0.0.1 (the demo
//     "containers" it lists have the network address 127.0.0.1);
//   - the static jobs (remediator, alertmanager, prometheus itself) are left out: those
//     processes are not part of these tests, and their compose host names do not resolve here;
//   - alerting targets: alertmanager:9093 -> alertmanagerAddr on 127.0.0.1;
//   - rule_files: set by StartPrometheus to the repository's rules/*.yml.
//
// Relabeling, rules, evaluation and the alert contract are the shipped ones.
func testConfig(t *testing.T, engineURL, alertmanagerAddr string) string {
	t.Helper()
	var cfg map[string]any
	testutil.ReadYAML(t, configFile, &cfg)
	global := cfg["global"].(map[string]any)
	global["scrape_interval"], global["scrape_timeout"], global["evaluation_interval"] = "1s", "1s", "1s"

	var jobs []any
	for _, j := range cfg["scrape_configs"].([]any) {
		job := j.(map[string]any)
		sds, ok := job["docker_sd_configs"].([]any)
		if !ok {
			continue // a static job
		}
		for _, sd := range sds {
			sd := sd.(map[string]any)
			sd["host"] = engineURL
			sd["refresh_interval"] = "1s"
		}
		jobs = append(jobs, job)
	}
	if len(jobs) != 1 {
		t.Fatalf("%s: want one job with docker_sd_configs, found %d", configFile, len(jobs))
	}
	cfg["scrape_configs"] = jobs

	ams := cfg["alerting"].(map[string]any)["alertmanagers"].([]any)
	for _, am := range ams {
		for _, sc := range am.(map[string]any)["static_configs"].([]any) {
			sc.(map[string]any)["targets"] = []any{alertmanagerAddr}
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// alertSink stands in for Alertmanager's POST /api/v2/alerts and keeps the alerts Prometheus
// sends it.
type alertSink struct {
	srv *httptest.Server
	got chan []sentAlert
}

type sentAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

func startAlertSink(t *testing.T) *alertSink {
	s := &alertSink{got: make(chan []sentAlert, 1000)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var alerts []sentAlert
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case s.got <- alerts:
		default: // the test stopped reading
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSink) addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// query runs an instant PromQL query and returns its vector result.
func query(t *testing.T, promURL, q string) []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
} {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	testutil.GetJSON(t, promURL+"/api/v1/query?query="+url.QueryEscape(q), &body)
	if body.Status != "success" {
		t.Fatalf("query %s: %s", q, body.Error)
	}
	return body.Data.Result
}

type target struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func activeTargets(t *testing.T, promURL string) []target {
	t.Helper()
	return apiData[struct {
		ActiveTargets []target `json:"activeTargets"`
	}](t, promURL+"/api/v1/targets?state=active").ActiveTargets
}

// apiData returns the data of an answer of Prometheus' HTTP API.
func apiData[T any](t *testing.T, url string) T {
	t.Helper()
	var body struct {
		Data T `json:"data"`
	}
	testutil.GetJSON(t, url, &body)
	return body.Data
}

// metricsStub serves a minimal /metrics so that discovered targets can be scraped.
func metricsStub(t *testing.T) (*httptest.Server, int) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "demo_ready 1\n")
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	var port int
	_, _ = fmt.Sscanf(u.Port(), "%d", &port)
	return srv, port
}

// TestDockerDiscoveryLabels runs Prometheus with the shipped discovery and relabeling against
// containers as the engine lists them, and checks the contract's target labels: job, service,
// container and instance=<container>:<port>, one target per container however many ports and
// networks it has, and no target for containers that did not opt in.
func TestDockerDiscoveryLabels(t *testing.T) {
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) { testDockerDiscoveryLabels(t, bin) })
	}
}

func testDockerDiscoveryLabels(t *testing.T, bin string) {
	_, portA := metricsStub(t)
	_, portB := metricsStub(t)
	compose := func(service string, extra map[string]string) map[string]string {
		l := map[string]string{"com.docker.compose.project": "selfheal", "com.docker.compose.service": service}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	engine := startFakeEngine(t,
		// Two exposed ports (as with a debug port): still one target, on prometheus.port.
		newContainer("user-service", compose("user-service", map[string]string{
			"prometheus.scrape": "true", "prometheus.port": fmt.Sprint(portA), "selfheal.service": "user-service", "remediator.enable": "true",
		}), portA, 6060),
		// A second instance of a logical service: service from selfheal.service, not compose.
		newContainer("payment-service-2", compose("payment-service-2", map[string]string{
			"prometheus.scrape": "true", "prometheus.port": fmt.Sprint(portB), "selfheal.service": "payment-service",
		})),
		// Opted out, and opted in without a port: neither is scraped.
		newContainer("postgres", compose("postgres", map[string]string{"prometheus.scrape": "false", "prometheus.port": "5432"}), 5432),
		newContainer("grafana", compose("grafana", map[string]string{"prometheus.scrape": "true"}), 3000),
	)
	sink := startAlertSink(t)
	prom := testutil.StartPrometheusBinary(t, bin, testConfig(t, engine.srv.URL, sink.addr()), repoRuleFiles(t)...)

	want := map[string]map[string]string{
		fmt.Sprintf("127.0.0.1:%d", portA): {"job": "demo-services", "service": "user-service", "container": "user-service", "instance": fmt.Sprintf("user-service:%d", portA)},
		fmt.Sprintf("127.0.0.1:%d", portB): {"job": "demo-services", "service": "payment-service", "container": "payment-service-2", "instance": fmt.Sprintf("payment-service-2:%d", portB)},
	}
	var targets []target
	testutil.Eventually(t, 20*time.Second, "both demo targets discovered and scraped", func() bool {
		targets = activeTargets(t, prom)
		up := 0
		for _, tg := range targets {
			if tg.Health == "up" {
				up++
			}
		}
		return len(targets) >= len(want) && up == len(want)
	})
	if len(targets) != len(want) {
		t.Errorf("%d active targets, want %d: %+v", len(targets), len(want), targets)
	}
	for _, tg := range targets {
		u, err := url.Parse(tg.ScrapeURL)
		if err != nil {
			t.Fatal(err)
		}
		labels, ok := want[u.Host]
		if !ok {
			t.Errorf("unexpected target %s %v", tg.ScrapeURL, tg.Labels)
			continue
		}
		if u.Path != "/metrics" {
			t.Errorf("target %s: path %s, want /metrics", tg.ScrapeURL, u.Path)
		}
		if fmt.Sprint(tg.Labels) != fmt.Sprint(labels) {
			t.Errorf("target %s: labels %v, want %v", tg.ScrapeURL, tg.Labels, labels)
		}
	}
	// The labels reach the series the rules read.
	testutil.Eventually(t, 10*time.Second, "demo_ready scraped with the target labels", func() bool {
		return len(query(t, prom, fmt.Sprintf(`demo_ready{job="demo-services",service="payment-service",container="payment-service-2",instance="payment-service-2:%d"}`, portB))) == 1
	})
}
