package testutil

import (
	"os"
	"path/filepath"
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
	cfg := WriteFile(t, dir, "prometheus.yml", configYAML)
	return StartServer(t, "prometheus", bin, "/-/ready",
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.enable-lifecycle",
		"--log.level=info",
	).URL
}

// StartAlertmanager runs a real Alertmanager (Debian's `prometheus-alertmanager`, or
// `alertmanager`) on a free loopback port with configYAML, clustering off, and returns its base
// URL once it is ready. It stops when the test ends; its log is printed if the test failed.
func StartAlertmanager(t testing.TB, configYAML string) string {
	t.Helper()
	bin := LookPath(t, "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := WriteFile(t, dir, "alertmanager.yml", configYAML)
	return StartServer(t, "alertmanager", bin, "/-/ready",
		"--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "data"),
		// An empty address turns gossip off: no second port, no peers to wait for.
		"--cluster.listen-address=",
		"--log.level=info",
	).URL
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
