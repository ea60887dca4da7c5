package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.yaml.in/yaml/v3"
)

// StartPrometheus runs a real Prometheus server (the `prometheus` binary on PATH) on a free
// loopback port with configYAML and returns its base URL, e.g. "http://127.0.0.1:41234". When
// ruleFiles are given they replace the config's rule_files, so a test can hand over a config
// generated from the shipped one together with the repository's rule files.
//
// The server stores its data in a temporary directory, is ready (/-/ready) when this returns and
// is stopped when the test ends; its log is printed if the test failed. A missing binary skips
// the test (fails it in CI). Lifecycle endpoints are on, so tests may POST /-/reload.
func StartPrometheus(t testing.TB, configYAML string, ruleFiles ...string) string {
	t.Helper()
	return StartPrometheusBinary(t, LookPath(t, "prometheus"), configYAML, ruleFiles...)
}

// Prometheuses names the Prometheus servers a test should run against: "prometheus" (the one
// on PATH, 2.x on Debian) and, when PROMETHEUS3 names one, "prometheus3", because the compose
// stack runs Prometheus 3. In CI, .ci/run builds it and PROMETHEUS3 must be set.
func Prometheuses(t testing.TB) map[string]string {
	t.Helper()
	return withVersion3(t, "prometheus", "PROMETHEUS3")
}

// Promtools is Prometheuses for promtool: "promtool" and, from PROMTOOL3, "promtool3". Rules
// are checked with both because Prometheus 3's range windows and le labels differ from 2.x.
func Promtools(t testing.TB) map[string]string {
	t.Helper()
	return withVersion3(t, "promtool", "PROMTOOL3")
}

// withVersion3 returns name as found on PATH and name+"3" from the environment variable env.
func withVersion3(t testing.TB, name, env string) map[string]string {
	t.Helper()
	bins := map[string]string{name: LookPath(t, name)}
	p := os.Getenv(env)
	if p == "" {
		// Outside CI the 2.x run still says something; say what is not checked.
		if InCI() {
			t.Fatalf("required in CI: %s names no Prometheus 3 %s (.ci/run builds it)", env, name)
		}
		t.Logf("%s is not set: only the %s on PATH is tested", env, name)
		return bins
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", env, p, err)
	}
	bins[name+"3"] = p
	return bins
}

// StartPrometheusBinary is StartPrometheus with a given server binary.
func StartPrometheusBinary(t testing.TB, bin, configYAML string, ruleFiles ...string) string {
	t.Helper()
	dir := t.TempDir()
	if len(ruleFiles) > 0 {
		var err error
		configYAML, err = replaceRuleFiles(configYAML, ruleFiles)
		if err != nil {
			t.Fatalf("prometheus config: %v", err)
		}
	}
	return startConfigured(t, dir, "prometheus", bin, configYAML, "--storage.tsdb.path", "--web.enable-lifecycle")
}

// StartAlertmanager runs a real Alertmanager (Debian's `prometheus-alertmanager`, or
// `alertmanager`) on a free loopback port with configYAML, clustering off, and returns its base
// URL once it is ready. It stops when the test ends; its log is printed if the test failed.
func StartAlertmanager(t testing.TB, configYAML string) string {
	t.Helper()
	bin := LookPath(t, "prometheus-alertmanager", "alertmanager")
	// An empty address turns gossip off: no second port, no peers to wait for.
	return startConfigured(t, t.TempDir(), "alertmanager", bin, configYAML, "--storage.path", "--cluster.listen-address=")
}

// startConfigured runs a server of the Prometheus family the way both take it: configYAML in
// dir/<name>.yml, its storage in dir/data under the server's own storageFlag, then the extra
// flags. It returns the base URL once /-/ready answers.
func startConfigured(t testing.TB, dir, name, bin, configYAML, storageFlag string, extra ...string) string {
	t.Helper()
	cfg := WriteFile(t, dir, name+".yml", configYAML)
	args := append([]string{"--config.file=" + cfg, storageFlag + "=" + filepath.Join(dir, "data")}, extra...)
	return StartServer(t, name, bin, "/-/ready", append(args, "--log.level=info")...).URL
}

// replaceRuleFiles sets rule_files in a Prometheus config to the given paths (made absolute,
// because Prometheus resolves relative ones against the config file's directory).
func replaceRuleFiles(configYAML string, ruleFiles []string) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configYAML), &cfg); err != nil {
		return "", err
	}
	if cfg == nil {
		cfg = map[string]any{}
	}
	var abs []any
	for _, f := range ruleFiles {
		a, err := filepath.Abs(f)
		if err != nil {
			return "", err
		}
		abs = append(abs, a)
	}
	cfg["rule_files"] = abs
	out, err := yaml.Marshal(cfg)
	return string(out), err
}

// A ScrapeTarget is a tiny endpoint for a real Prometheus to scrape: it serves "demo_ready 1"
// while healthy and answers 503 while failing, so a test opens and closes a scrape gap at will.
type ScrapeTarget struct {
	// Instance is host:port, the instance label Prometheus gives the target's series.
	Instance string
	failing  atomic.Bool
}

// NewScrapeTarget starts a healthy ScrapeTarget on a loopback port; it closes when the test ends.
func NewScrapeTarget(t testing.TB) *ScrapeTarget {
	t.Helper()
	s := &ScrapeTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "demo_ready 1")
	}))
	t.Cleanup(srv.Close)
	s.Instance = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// SetFailing makes every scrape from now on fail (true) or succeed again (false).
func (s *ScrapeTarget) SetFailing(failing bool) { s.failing.Store(failing) }

// A ScrapingPrometheus is a real Prometheus that scrapes one job every 200ms, its targets
// discovered from a file, so a test can drop a target as service discovery drops a stopped
// container (its series are then marked stale).
type ScrapingPrometheus struct {
	URL     string
	targets string // the file_sd file
}

// StartScrapingPrometheus runs bin (see Prometheuses) scraping job from targets (host:port, e.g.
// a ScrapeTarget's Instance); rules are evaluated every 200ms too.
func StartScrapingPrometheus(t testing.TB, bin, job string, targets ...string) *ScrapingPrometheus {
	t.Helper()
	p := &ScrapingPrometheus{targets: filepath.Join(t.TempDir(), "targets.json")}
	p.SetTargets(t, targets...)
	p.URL = StartPrometheusBinary(t, bin, fmt.Sprintf(`global: {scrape_interval: 200ms, evaluation_interval: 200ms}
scrape_configs:
  - job_name: %q
    file_sd_configs: [{files: [%q], refresh_interval: 1s}]
`, job, p.targets))
	return p
}

// SetTargets replaces the job's targets; Prometheus reads them within a second.
func (p *ScrapingPrometheus) SetTargets(t testing.TB, targets ...string) {
	t.Helper()
	b, err := json.Marshal([]map[string][]string{{"targets": append([]string{}, targets...)}})
	if err != nil {
		t.Fatal(err)
	}
	// Written whole and renamed, so Prometheus never reads half a file.
	if err := os.WriteFile(p.targets+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p.targets+".tmp", p.targets); err != nil {
		t.Fatal(err)
	}
}
