package rules

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Path   string `yaml:"-"`
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// testFile is the part of a promtool unit test file the coverage check reads.
type testFile struct {
	Path      string   `yaml:"-"`
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string          `yaml:"name"`
		AlertRuleTest []alertRuleTest `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

type alertRuleTest struct {
	EvalTime  string `yaml:"eval_time"`
	Alertname string `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

// alertKey is what must be covered: two rules sharing a name differ by severity.
type alertKey struct{ Name, Severity string }

func (k alertKey) String() string { return k.Name + "/" + k.Severity }

// loadFiles decodes each YAML file of paths into a T that remembers where it came from.
func loadFiles[T any, PT interface {
	*T
	setPath(string)
}](t testing.TB, paths []string) []T {
	t.Helper()
	var out []T
	for _, p := range paths {
		var v T
		testutil.ReadYAML(t, p, &v)
		PT(&v).setPath(p)
		out = append(out, v)
	}
	return out
}

func (f *ruleFile) setPath(p string) { f.Path = p }
func (f *testFile) setPath(p string) { f.Path = p }

// coverageProblems returns, sorted, every reason the unit tests do not cover the alerting rules:
// an alert name and severity with no case where it fires (with its labels and annotations) or
// no case where it stays silent, and test cases naming alerts their rule files do not define.
// A case only counts for rules its test file loads: a case for an alert that is not loaded
// "passes" as silent without testing anything.
func coverageProblems(rules []ruleFile, tests []testFile) []string {
	defined := map[string]map[alertKey]bool{} // rule file (clean path) -> alerts it defines
	var problems []string
	all := map[alertKey]bool{}
	for _, rf := range rules {
		keys := map[alertKey]bool{}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				sev := r.Labels["severity"]
				if sev == "" {
					problems = append(problems, fmt.Sprintf("%s: alert %s has no severity label", rf.Path, r.Alert))
					continue
				}
				k := alertKey{r.Alert, sev}
				if all[k] {
					problems = append(problems, fmt.Sprintf("%s: alert %s is defined twice", rf.Path, k))
				}
				keys[k], all[k] = true, true
			}
		}
		defined[filepath.Clean(rf.Path)] = keys
	}

	firing := map[alertKey]bool{}
	silent := map[alertKey]bool{}
	for _, tf := range tests {
		loaded := map[alertKey]bool{}
		for _, rel := range tf.RuleFiles {
			p := rel
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(tf.Path), rel)
			}
			keys, ok := defined[filepath.Clean(p)]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: rule file %s is not one of the checked rule files", tf.Path, rel))
				continue
			}
			for k := range keys {
				loaded[k] = true
			}
		}
		for _, tc := range tf.Tests {
			for _, art := range tc.AlertRuleTest {
				where := fmt.Sprintf("%s: test %q at %s", tf.Path, tc.Name, art.EvalTime)
				severities := map[string]bool{}
				for k := range loaded {
					if k.Name == art.Alertname {
						severities[k.Severity] = true
					}
				}
				if len(severities) == 0 {
					problems = append(problems, fmt.Sprintf("%s: alert %s is not defined in the test's rule files", where, art.Alertname))
					continue
				}
				fired := map[string]bool{}
				for _, ea := range art.ExpAlerts {
					sev := ea.ExpLabels["severity"]
					if !severities[sev] {
						problems = append(problems, fmt.Sprintf("%s: expected alert %s with severity %q, which no rule defines", where, art.Alertname, sev))
						continue
					}
					var missing []string
					for _, a := range []string{"summary", "description", "runbook_url"} {
						if ea.ExpAnnotations[a] == "" {
							missing = append(missing, a)
						}
					}
					if len(missing) > 0 {
						problems = append(problems, fmt.Sprintf("%s: expected alert %s/%s does not assert annotations %v", where, art.Alertname, sev, missing))
						continue
					}
					fired[sev] = true
				}
				for sev := range severities {
					k := alertKey{art.Alertname, sev}
					if fired[sev] {
						firing[k] = true
					} else {
						silent[k] = true
					}
				}
			}
		}
	}

	for k := range all {
		if !firing[k] {
			problems = append(problems, fmt.Sprintf("alert %s has no unit test where it fires", k))
		}
		if !silent[k] {
			problems = append(problems, fmt.Sprintf("alert %s has no unit test where it does not fire", k))
		}
	}
	sort.Strings(problems)
	return problems
}
