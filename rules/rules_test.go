package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

func ruleFilePaths(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("*.yml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no rule files in rules/ (%v)", err)
	}
	return paths
}

func testFilePaths(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no unit test files in rules/tests/ (%v)", err)
	}
	return paths
}

func runPromtool(t *testing.T, bin string, args ...string) {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: ok in %s", filepath.Base(bin), strings.Join(args[:2], " "), time.Since(start).Round(time.Millisecond))
}

func TestPromtoolCheckRules(t *testing.T) {
	for name, bin := range testutil.Promtools(t) {
		t.Run(name, func(t *testing.T) {
			runPromtool(t, bin, append([]string{"check", "rules"}, ruleFilePaths(t)...)...)
		})
	}
}

func TestPromtoolTestRules(t *testing.T) {
	for name, bin := range testutil.Promtools(t) {
		t.Run(name, func(t *testing.T) {
			runPromtool(t, bin, append([]string{"test", "rules"}, testFilePaths(t)...)...)
		})
	}
}

// TestEveryAlertFiresAndStaysSilentInUnitTests is the reason the unit tests can be trusted: a
// new alerting rule (or a new severity of one) without both cases fails here.
func TestEveryAlertFiresAndStaysSilentInUnitTests(t *testing.T) {
	rfs := loadFiles[ruleFile](t, ruleFilePaths(t))
	tfs := loadFiles[testFile](t, testFilePaths(t))
	for _, p := range coverageProblems(rfs, tfs) {
		t.Error(p)
	}
}

func TestCoverageProblems(t *testing.T) {
	const rules = `
groups:
  - name: g
    rules:
      - record: x:y:z
        expr: up
      - alert: A
        expr: up == 0
        labels: {severity: warning}
      - alert: A
        expr: up == 0
        labels: {severity: critical}
`
	const firingWarning = `
          - exp_labels: {severity: warning}
            exp_annotations: {summary: s, description: d, runbook_url: r}`
	const firingCritical = `
          - exp_labels: {severity: critical}
            exp_annotations: {summary: s, description: d, runbook_url: r}`
	unitTestFile := func(cases ...string) string {
		s := "rule_files: [../rules.yml]\ntests:\n  - name: t\n    alert_rule_test:\n"
		for _, c := range cases {
			s += "      - eval_time: 1m\n        alertname: A\n        exp_alerts:" + c + "\n"
		}
		return s
	}
	cases := []struct {
		name  string
		rules string
		test  string
		want  []string
	}{
		{
			name:  "fully covered",
			rules: rules,
			test:  unitTestFile(" []", firingWarning, firingWarning+firingCritical),
		},
		{
			name:  "critical never fires",
			rules: rules,
			test:  unitTestFile(" []", firingWarning),
			want:  []string{"alert A/critical has no unit test where it fires"},
		},
		{
			name:  "never silent",
			rules: rules,
			test:  unitTestFile(firingWarning + firingCritical),
			want: []string{
				"alert A/critical has no unit test where it does not fire",
				"alert A/warning has no unit test where it does not fire",
			},
		},
		{
			name:  "no tests at all",
			rules: rules,
			test:  "rule_files: [../rules.yml]\n",
			want: []string{
				"alert A/critical has no unit test where it does not fire",
				"alert A/critical has no unit test where it fires",
				"alert A/warning has no unit test where it does not fire",
				"alert A/warning has no unit test where it fires",
			},
		},
		{
			name:  "firing without annotations does not count",
			rules: rules,
			test: unitTestFile(" []", firingWarning, `
          - exp_labels: {severity: critical}`),
			want: []string{
				`TESTFILE: test "t" at 1m: expected alert A/critical does not assert annotations [summary description runbook_url]`,
				"alert A/critical has no unit test where it fires",
			},
		},
		{
			name:  "a silent case for an alert the test does not load counts for nothing",
			rules: rules,
			test:  "rule_files: [../other.yml]\ntests:\n  - name: t\n    alert_rule_test:\n      - eval_time: 1m\n        alertname: A\n        exp_alerts: []\n",
			want: []string{
				"TESTFILE: rule file ../other.yml is not one of the checked rule files",
				`TESTFILE: test "t" at 1m: alert A is not defined in the test's rule files`,
				"alert A/critical has no unit test where it does not fire",
				"alert A/critical has no unit test where it fires",
				"alert A/warning has no unit test where it does not fire",
				"alert A/warning has no unit test where it fires",
			},
		},
		{
			name:  "unknown severity",
			rules: rules,
			test: unitTestFile(" []", firingWarning+firingCritical, `
          - exp_labels: {severity: page}
            exp_annotations: {summary: s, description: d, runbook_url: r}`),
			want: []string{`TESTFILE: test "t" at 1m: expected alert A with severity "page", which no rule defines`},
		},
		{
			name:  "alert without severity",
			rules: "groups:\n  - name: g\n    rules:\n      - alert: B\n        expr: up == 0\n",
			test:  "rule_files: [../rules.yml]\n",
			want:  []string{"RULEFILE: alert B has no severity label"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rulePath := filepath.Join(dir, "rules.yml")
			testPath := filepath.Join(dir, "tests", "t.yml")
			if err := os.MkdirAll(filepath.Dir(testPath), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rulePath, []byte(tc.rules), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(testPath, []byte(tc.test), 0o644); err != nil {
				t.Fatal(err)
			}
			rfs := loadFiles[ruleFile](t, []string{rulePath})
			tfs := loadFiles[testFile](t, []string{testPath})
			got := coverageProblems(rfs, tfs)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], testPath, "TESTFILE")
				got[i] = strings.ReplaceAll(got[i], rulePath, "RULEFILE")
			}
			want := append([]string(nil), tc.want...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// contractAlerts are the alert names and severities other parts rely on: the remediator's
// playbooks match them, Alertmanager routes them and the dashboards show them.
var contractAlerts = map[string][]string{
	"ServiceMemoryHigh":                 {"critical", "warning"},
	"ServiceCPUHigh":                    {"critical", "warning"},
	"ServiceErrorRateHigh":              {"critical", "warning"},
	"ServiceLatencyHigh":                {"critical", "warning"},
	"ServicePoolSaturated":              {"critical", "warning"},
	"ServicePoolWaiters":                {"critical"},
	"ServiceCircuitOpen":                {"warning"},
	"ServiceDown":                       {"critical"},
	"ServiceNotReady":                   {"warning"},
	"RemediatorBudgetExhausted":         {"critical"},
	"RemediatorHealsFailing":            {"warning"},
	"RemediatorHealsRelapsing":          {"warning"},
	"RemediatorDown":                    {"critical"},
	"RemediatorConfigReloadFailed":      {"warning"},
	"RemediatorWebhookDeliveryFailing":  {"critical"},
	"RemediatorAlertmanagerUnreachable": {"critical"},
	"RemediatorNotificationsTruncated":  {"warning"},
}

// TestAlertsFollowTheContract checks what promtool does not: the names, labels and annotations
// that routing, playbooks and people depend on, and demo-sized `for:` durations.
func TestAlertsFollowTheContract(t *testing.T) {
	got := map[string][]string{}
	forEachAlert(t, func(r rule, where string) {
		got[r.Alert] = append(got[r.Alert], r.Labels["severity"])
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: annotation %s is missing", where, a)
			}
		}
		if !strings.Contains(r.Annotations["description"], "$value") {
			t.Errorf("%s: the description does not show the measured value ($value)", where)
		}
		if r.For != "" {
			d, err := time.ParseDuration(r.For)
			if err != nil || d > time.Minute {
				t.Errorf("%s: for: %s is not a duration a demo can wait (at most 1m; production values go in a comment)", where, r.For)
			}
		}
		remediation, hasRemediation := r.Labels["remediation"]
		if strings.HasPrefix(r.Alert, "Remediator") {
			if hasRemediation {
				t.Errorf("%s: the remediator must never be asked to heal its own failure (remediation label)", where)
			}
			if r.Labels["team"] != "remediator" {
				t.Errorf("%s: label team=remediator is missing", where)
			}
		} else {
			if hasRemediation && remediation != "auto" {
				t.Errorf("%s: remediation=%q, want \"auto\" or no label", where, remediation)
			}
			if !strings.Contains(r.Expr, `job="demo-services"`) && !strings.HasPrefix(r.Expr, "instance") {
				t.Errorf("%s: expression %q reads neither job=\"demo-services\" nor a recorded instance series", where, r.Expr)
			}
		}
	})
	for name, sevs := range got {
		slices.Sort(sevs)
		if want, ok := contractAlerts[name]; !ok {
			t.Errorf("alert %s is not in the contract (add it there first)", name)
		} else if !slices.Equal(sevs, want) {
			t.Errorf("alert %s has severities %v, the contract says %v", name, sevs, want)
		}
	}
	for name := range contractAlerts {
		if _, ok := got[name]; !ok {
			t.Errorf("contract alert %s has no rule", name)
		}
	}
}

// forEachAlert calls check for every alerting rule of rules/*.yml, with where naming the rule in
// messages (file, alert name and severity).
func forEachAlert(t *testing.T, check func(r rule, where string)) {
	t.Helper()
	for _, rf := range loadFiles[ruleFile](t, ruleFilePaths(t)) {
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					check(r, rf.Path+": "+r.Alert+"/"+r.Labels["severity"])
				}
			}
		}
	}
}
