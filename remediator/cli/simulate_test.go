package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/simulate")

const simDir = "testdata/simulate"

// run's kingpin app does not know --config.file (the binary's main owns it), so the golden
// tests give it through Shared, as main does.
func runSim(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runShared(t, filepath.Join(simDir, "playbooks.yml"), "", args...)
}

// The simulator's answers for recorded notifications, against testdata/simulate/*.golden.
// Monday 2026-03-02 10:00 UTC is inside the office-hours playbook's window, Sunday outside.
func TestSimulateGolden(t *testing.T) {
	monday, sunday := "--at=2026-03-02T10:00:00Z", "--at=2026-03-01T10:00:00Z"
	p := func(name string) string { return filepath.Join(simDir, name+".json") }
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"memory", []string{monday, p("memory")}},
		{"memory-json", []string{monday, "-o", "json", p("memory")}},
		{"unmatched", []string{monday, p("unmatched")}},
		{"resolved", []string{monday, p("resolved")}},
		{"storm", []string{monday, p("storm")}},
		{"office-hours-inside", []string{monday, p("office-hours")}},
		{"office-hours-outside", []string{sunday, p("office-hours")}},
		{"precondition-prometheus-down", []string{monday, p("precondition")}},
		{"dry-run", []string{monday, p("dry-run")}},
		{"hostile-label", []string{monday, p("hostile-label")}},
		{"empty-target", []string{monday, p("bad-target")}},
		{"two-files", []string{monday, p("memory"), p("unmatched")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runSim(t, append([]string{"simulate"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden := filepath.Join(simDir, tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./remediator/cli -run TestSimulateGolden -update to write it)", err)
			}
			if out != string(want) {
				t.Errorf("simulation differs from %s (rerun with -update if the change is meant):\n--- got\n%s\n--- want\n%s", golden, out, want)
			}
		})
	}
}

// Bad input to the simulator ends with exit 1 and says what is wrong where.
func TestSimulateErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return testutil.WriteFile(t, dir, name, content) }
	notJSON := write("not.json", "{alerts: [")
	v3 := write("v3.json", `{"version":"3","status":"firing","alerts":[]}`)
	noName := write("noname.json", `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"service":"x"},"startsAt":"2026-03-02T09:00:00Z"}]}`)
	empty := write("empty.json", `{"version":"4","status":"firing","alerts":[]}`)
	badCfg := write("bad.yml", "playbooks:\n  - name: x\n    bogus: 1\n")
	good := filepath.Join(simDir, "memory.json")
	for _, tc := range []struct {
		name   string
		config string
		args   []string
		want   []string
	}{
		{"not JSON", "", []string{notJSON}, []string{notJSON, "malformed JSON", "version 4"}},
		{"version 3", "", []string{v3}, []string{v3, `unsupported notification version "3"`}},
		{"alert without a name", "", []string{noName}, []string{noName, "the webhook would reject alert 0: no alertname label"}},
		{"no alerts", "", []string{empty}, []string{empty, "holds no alerts"}},
		{"bad playbooks", badCfg, []string{good}, []string{badCfg + ":3:"}},
		{"bad --at", "", []string{"--at", "tomorrow", good}, []string{`--at "tomorrow"`}},
		{"state unreachable", "", []string{"--state", "http://127.0.0.1:1", good}, []string{"--state", "cannot reach the remediator at http://127.0.0.1:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config
			if cfg == "" {
				cfg = filepath.Join(simDir, "playbooks.yml")
			}
			code, out, errOut := runShared(t, cfg, "", append([]string{"simulate"}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}
