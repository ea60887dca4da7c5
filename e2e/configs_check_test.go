package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

// TestGeneratedConfigs runs without E2E: it generates the test stack's configuration from the
// shipped files, as the end-to-end run does, and has promtool and amtool check the result, so a
// change to a shipped file that the generator cannot follow fails fast, not after a 10-minute run.
func TestGeneratedConfigs(t *testing.T) {
	root := testutil.RepoRoot(t)
	dir := t.TempDir()
	a := stackAddrs{
		Prometheus: "127.0.0.1:19090", Alertmanager: "127.0.0.1:19093", Remediator: "127.0.0.1:19096",
		Loadgen: "127.0.0.1:18089", Oncall: "http://127.0.0.1:19999", DockerHost: "unix:///var/run/docker.sock",
		RulesDir: filepath.Join(root, "rules"), TokenFile: filepath.Join(dir, "token"),
		Ports: map[string]int{cUser: 18081, cOrder: 18082},
	}
	if err := os.WriteFile(a.TokenFile, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := Changes{}
	gen := func(shipped, name string, g func([]byte, stackAddrs, Changes) ([]byte, error)) string {
		t.Helper()
		src, err := os.ReadFile(filepath.Join(root, shipped))
		if err != nil {
			t.Fatal(err)
		}
		out, err := g(src, a, ch)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	prom := gen("prometheus/prometheus.yml", "prometheus.yml", genPrometheusConfig)
	am := gen("alertmanager/alertmanager.yml", "alertmanager.yml", genAlertmanagerConfig)
	pb := gen("remediator/playbooks.yml", "playbooks.yml", genPlaybooks)

	promtool := testutil.LookPath(t, "promtool")
	if out, err := exec.Command(promtool, "check", "config", prom).CombinedOutput(); err != nil {
		t.Errorf("promtool check config on the generated file: %v\n%s", err, out)
	}
	amtool := testutil.LookPath(t, "amtool")
	if out, err := exec.Command(amtool, "check-config", am).CombinedOutput(); err != nil {
		t.Errorf("amtool check-config on the generated file: %v\n%s", err, out)
	}

	// The remediator itself accepts the generated playbooks (the URL templates compile).
	rem := filepath.Join(dir, "remediator")
	if err := testutil.BuildStatic(root, "./remediator/cmd/remediator", rem); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rem, "--config.check", "--config.file="+pb).CombinedOutput(); err != nil {
		t.Errorf("remediator --config.check on the generated playbooks: %v\n%s", err, out)
	}

	// Nothing but addresses and timings may differ: every playbook survives with its steps.
	var shipped, generated map[string]any
	src, _ := os.ReadFile(filepath.Join(root, "remediator/playbooks.yml"))
	out, _ := os.ReadFile(pb)
	if err := yaml.Unmarshal(src, &shipped); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(out, &generated); err != nil {
		t.Fatal(err)
	}
	if len(asList(shipped["playbooks"])) != len(asList(generated["playbooks"])) {
		t.Errorf("generated playbooks lost entries")
	}
	if !strings.Contains(string(out), "127.0.0.1:{{ if eq .Labels.container") {
		t.Errorf("http step URLs were not pointed at loopback:\n%s", out)
	}
	for f, cs := range ch {
		for _, c := range cs {
			t.Logf("%s: %s", f, c)
		}
	}
}

// TestGeneratorRejects: a shipped file the generator cannot translate is an error naming what,
// never a test config that silently points somewhere else.
func TestGeneratorRejects(t *testing.T) {
	a := stackAddrs{Prometheus: "127.0.0.1:1", Alertmanager: "127.0.0.1:2", Remediator: "127.0.0.1:3", Oncall: "http://127.0.0.1:4"}
	for _, tc := range []struct {
		name, yaml, want string
		gen              func([]byte, stackAddrs, Changes) ([]byte, error)
	}{
		{"prometheus without rules", "alerting: {alertmanagers: [{static_configs: [{targets: [alertmanager:9093]}]}]}\n", "no rule_files", genPrometheusConfig},
		{"prometheus without alertmanager", "rule_files: [/r/*.yml]\n", "no alerting", genPrometheusConfig},
		{"unknown scrape target", "rule_files: [/r/*.yml]\nalerting: {alertmanagers: [{static_configs: [{targets: [alertmanager:9093]}]}]}\nscrape_configs: [{job_name: x, static_configs: [{targets: ['db.example:9187']}]}]\n", `target "db.example:9187"`, genPrometheusConfig},
		{"file discovery", "rule_files: [/r/*.yml]\nalerting: {alertmanagers: [{static_configs: [{targets: [alertmanager:9093]}]}]}\nscrape_configs: [{job_name: x, file_sd_configs: [{files: [a.json]}]}]\n", "file_sd_configs", genPrometheusConfig},
		{"alertmanager without remediator", "route: {receiver: oncall}\nreceivers: [{name: oncall, webhook_configs: [{url: 'http://x/'}]}]\n", "no webhook to the remediator", genAlertmanagerConfig},
		{"alertmanager without route", "receivers: []\n", "no route", genAlertmanagerConfig},
		{"not YAML", "route: [\n", "alertmanager.yml", genAlertmanagerConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.gen([]byte(tc.yaml), a, Changes{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPortTemplate(t *testing.T) {
	got := portTemplate(map[string]int{"b": 2, "a": 1})
	want := `{{ if eq .Labels.container "a" }}1{{ else if eq .Labels.container "b" }}2{{ else }}0{{ end }}`
	if got != want {
		t.Errorf("portTemplate = %s, want %s", got, want)
	}
}
