package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// peopleRules fire on the demo service's leaks: the flushable one a flush heals, the other not.
const peopleRules = `
groups:
  - name: people-in-the-loop
    rules:
      - alert: LeakFlushable
        expr: demo_memory_leaked_bytes{kind="flushable"} > 0
        labels: {severity: critical, remediation: auto, container: demo-flush}
        annotations: {runbook_url: "https://runbooks.example/leak"}
      - alert: LeakUnflushable
        expr: demo_memory_leaked_bytes{kind="unflushable"} > 0
        labels: {severity: critical, remediation: auto, container: demo-stuck}
        annotations: {runbook_url: "https://runbooks.example/leak"}
`

// peoplePlaybooks silence while healing. The failing heal verifies for longer than the person's
// route waits (group_wait 20s in the shipped alertmanager.yml), so the test shows that the
// silence, not the timing, keeps the person from being paged while it acts.
const peoplePlaybooks = `
global:
  prometheus_url: "%s"
  alertmanager: {url: "%s"}
defaults:
  silence: true
  cooldown: {initial: 1h, factor: 1, max: 1h, reset_after: 1m}
  budget: {attempts: 1, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  verify: {timeout: 25s, interval: 500ms, stable_for: 5s}
playbooks:
  - name: leak
    match: ['alertname=~"Leak.+"']
    steps:
      - name: flush-cache
        http: {method: POST, url: 'http://{{ .Labels.instance }}/recover/flush-cache', expect_status: [200, 202, 204]}
  - name: pool
    match: ['alertname="PoolSaturated"']
    blast_radius: {max_targets: 1, window: 5m}
    steps:
      - name: settle
        wait: 1s
        verify: {skip: true}
`

// shippedAlertmanagerConfig is alertmanager/alertmanager.yml with the receivers' URLs and the
// token file pointed at the test's; routes and timings are the shipped ones.
func shippedAlertmanagerConfig(t *testing.T, remediatorURL, oncallURL, chatURL, tokenFile string) string {
	t.Helper()
	return deriveAlertmanagerConfig(t,
		replacement{`http://remediator:9096/webhook`, remediatorURL + "/webhook"},
		replacement{`credentials_file: \S+`, "credentials_file: " + tokenFile},
		replacement{`http://pager:9097/oncall`, oncallURL},
		replacement{`http://pager:9097/chat`, chatURL},
	)
}

// TestPeopleInTheLoop runs the whole loop for real: a demo service's fault, Prometheus' rule,
// the shipped Alertmanager configuration and the remediator. A heal that succeeds pages nobody;
// one that fails pages a person with the original alert within one group interval of its end;
// one the blast radius declines reaches the person as RemediationDeclined with its reason.
func TestPeopleInTheLoop(t *testing.T) {
	bins := buildBinaries(t)
	testutil.LookPath(t, "prometheus-alertmanager", "alertmanager")
	testutil.LookPath(t, "prometheus")
	dir := t.TempDir()
	token := testutil.WriteFile(t, dir, "token", "am-t0ken")
	// Neither Prometheus nor Alertmanager yet: the remediator learns of them on reload, as
	// when an operator adds them.
	initial := peoplePlaybooks[strings.Index(peoplePlaybooks, "defaults:"):]
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", initial)
	demo := testutil.StartServer(t, "demo-service", bins+"/demo-service", "/readyz", "serve", "--service.name=user-service")
	rem := testutil.StartServer(t, "remediator", bins+"/remediator", "/-/ready",
		"--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--webhook.token-file="+token,
		"--web.external-url=http://remediator.test", "--log.level=debug")
	oncall, chat := testutil.StartReceiver(t), testutil.StartReceiver(t)
	am := testutil.StartAlertmanager(t, shippedAlertmanagerConfig(t, rem.URL, oncall.URL+"/oncall", chat.URL+"/chat", token))
	rules := testutil.WriteFile(t, dir, "rules.yml", peopleRules)
	prom := testutil.StartPrometheus(t, fmt.Sprintf(`
global: {scrape_interval: 1s, evaluation_interval: 1s}
alerting:
  alertmanagers:
    - static_configs: [{targets: ["%s"]}]
scrape_configs:
  - job_name: demo
    static_configs: [{targets: ["%s"], labels: {service: user-service}}]
`, strings.TrimPrefix(am, "http://"), strings.TrimPrefix(demo.URL, "http://")), rules)
	testutil.WriteFile(t, dir, "playbooks.yml", fmt.Sprintf(peoplePlaybooks, prom, am))
	if err := rem.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the reload that adds Prometheus and Alertmanager", func() bool {
		return strings.Contains(testutil.GetText(t, rem.URL+"/metrics"), `remediator_config_reloads_total{result="success"} 1`)
	})
	// groupInterval is the shipped alertmanager.yml's; the margin covers a loaded machine.
	const groupInterval, margin = 10 * time.Second, 3 * time.Second

	silenceState := func(id string) string {
		var s struct {
			Status struct{ State string } `json:"status"`
		}
		testutil.GetJSON(t, am+"/api/v2/silence/"+id, &s)
		return s.Status.State
	}
	// healOf waits for the target's heal to end and returns it.
	healOf := func(target string, within time.Duration) healJSON {
		t.Helper()
		var h healJSON
		testutil.Eventually(t, within, "the heal of "+target+" to end", func() bool {
			hs := heals(t, rem.URL, "?target="+target)
			if len(hs) == 0 || hs[0].Result == "running" {
				return false
			}
			h = hs[0]
			return true
		})
		return h
	}

	t.Run("a heal that succeeds pages nobody", func(t *testing.T) {
		testutil.Call(t, http.MethodPost, demo.URL+"/chaos/memory-leak?rate_mb=2&kind=flushable")
		fired := time.Now()
		h := healOf("demo-flush", 60*time.Second)
		if h.Result != "healed" || len(h.Silences) != 1 {
			t.Fatalf("heal %+v, want healed with its silence listed", h)
		}
		if s := silenceState(h.Silences[0]); s != "expired" {
			t.Errorf("the heal's silence is %s after it healed, want expired", s)
		}
		// The person's route would have flushed by group_wait plus a group interval.
		time.Sleep(time.Until(fired.Add(20*time.Second + groupInterval + margin)))
		if at, _, paged := oncall.FiringAlert(map[string]string{"alertname": "LeakFlushable"}); paged {
			t.Errorf("a person was paged at %s for an alert the remediator healed", at)
		}
		if _, a, ok := chat.FiringAlert(map[string]string{"alertname": "RemediationPerformed", "target": "demo-flush", "original_alertname": "LeakFlushable"}); !ok {
			t.Error("chat never heard that the heal was performed")
		} else if ann := a.Annotations; ann["heal_url"] != "http://remediator.test/api/v1/heals/"+h.ID {
			t.Errorf("RemediationPerformed annotations %v", ann)
		}
	})

	t.Run("a heal that fails pages a person with the original alert", func(t *testing.T) {
		testutil.Call(t, http.MethodPost, demo.URL+"/chaos/memory-leak?rate_mb=2&kind=unflushable")
		h := healOf("demo-stuck", 90*time.Second)
		if h.Result != "failed" || len(h.Silences) != 1 {
			t.Fatalf("heal %+v, want failed with its silence listed", h)
		}
		var ended time.Time
		var full struct {
			Started time.Time `json:"started"`
			Ended   time.Time `json:"ended"`
		}
		testutil.GetJSON(t, rem.URL+"/api/v1/heals/"+h.ID, &full)
		ended = full.Ended
		if full.Ended.Sub(full.Started) < 20*time.Second {
			t.Fatalf("the heal ran %s, less than the person's group_wait: the test would not show the silence at work", full.Ended.Sub(full.Started))
		}
		var at time.Time
		testutil.Eventually(t, groupInterval+margin+5*time.Second, "the person to be paged with the original alert", func() bool {
			var ok bool
			at, _, ok = oncall.FiringAlert(map[string]string{"alertname": "LeakUnflushable", "container": "demo-stuck"})
			return ok
		})
		if at.Before(ended) {
			t.Errorf("the person was paged at %s, while the heal acted (it ended at %s)", at, ended)
		}
		if late := at.Sub(ended); late > groupInterval+margin {
			t.Errorf("the person was paged %s after the heal failed, more than one group interval (%s)", late, groupInterval)
		}
		t.Logf("paged %s after the heal failed", at.Sub(ended).Round(100*time.Millisecond))
		if s := silenceState(h.Silences[0]); s != "expired" {
			t.Errorf("the heal's silence is %s after it failed, want expired", s)
		}
		if _, a, ok := oncall.FiringAlert(map[string]string{"alertname": "RemediationFailed", "target": "demo-stuck", "original_alertname": "LeakUnflushable"}); !ok {
			t.Error("no RemediationFailed at the person's receiver")
		} else if ann := a.Annotations; ann["runbook_url"] != "https://runbooks.example/leak" {
			t.Errorf("RemediationFailed annotations %v, want the original runbook_url", ann)
		}
	})

	t.Run("a declined heal reaches a person with its reason", func(t *testing.T) {
		for _, c := range []string{"pool-a", "pool-b"} {
			postAlert(t, am, amAlert{Labels: map[string]string{"alertname": "PoolSaturated", "remediation": "auto", "severity": "warning",
				"service": c, "instance": c + ":8080", "container": c}, StartsAt: time.Now()})
		}
		testutil.Eventually(t, 30*time.Second, "RemediationDeclined at the person's receiver", func() bool {
			_, _, ok := oncall.FiringAlert(map[string]string{"alertname": "RemediationDeclined", "reason": "blast_radius", "original_alertname": "PoolSaturated"})
			return ok
		})
	})
}
