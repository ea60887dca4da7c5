package testutil

import (
	"strings"
	"testing"
)

func TestStartPrometheusReplacesRuleFiles(t *testing.T) {
	rules := WriteFile(t, t.TempDir(), "r.yml", "groups:\n  - name: from-test\n    rules:\n      - record: x:up:sum\n        expr: sum(up)\n")
	// The config names a rule file that does not exist: StartPrometheus must replace it, or
	// Prometheus refuses to start.
	url := StartPrometheus(t, "global:\n  evaluation_interval: 1s\nrule_files: [/nonexistent/*.yml, /nonexistent.yml]\n", rules)
	var body struct {
		Data struct {
			Groups []struct {
				Name string `json:"name"`
			} `json:"groups"`
		} `json:"data"`
	}
	GetJSON(t, url+"/api/v1/rules", &body)
	if len(body.Data.Groups) != 1 || body.Data.Groups[0].Name != "from-test" {
		t.Errorf("rule groups %+v, want the one from the given rule file", body.Data.Groups)
	}
}

func TestStartAlertmanager(t *testing.T) {
	url := StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	var body struct {
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
	}
	GetJSON(t, url+"/api/v2/status", &body)
	if !strings.Contains(body.Config.Original, "receiver: blackhole") {
		t.Errorf("running config %q is not the one given", body.Config.Original)
	}
}

func TestReplaceRuleFilesRejectsBadYAML(t *testing.T) {
	if _, err := replaceRuleFiles("global: [", []string{"x.yml"}); err == nil {
		t.Error("no error for an unparsable config")
	}
}
