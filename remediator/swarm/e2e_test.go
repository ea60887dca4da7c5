package swarm

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/store"
)

const e2ePlaybooks = `playbooks:
  - name: swarm-service-down
    match: ['alertname="SwarmServiceDown"']
    target: '{{ .Labels.service_name }}'
    steps:
      - name: restart-tasks
        swarm: {action: force-update}
        timeout: 90s
        verify: {timeout: 60s}
      - name: scale-out
        swarm: {action: scale, by: 1, min: 1, max: 3}
        timeout: 90s
`

// TestPlaybookEndToEnd drives a whole remediator from Alertmanager's webhook payload: the alert
// names a service by the label Prometheus' Swarm discovery gives it, the playbook's first step
// force-updates it, and the heal counts as healed once Alertmanager sends the resolved
// notification. Only the first step runs: escalation stops at the first verified heal.
func TestPlaybookEndToEnd(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 2, labels: optIn})
	before := waitRunning(t, name, 2)
	rem, err := loadtest.Start(loadtest.Options{
		Dir: t.TempDir(), Playbooks: e2ePlaybooks, Token: "swarm-token", Tick: 50 * time.Millisecond,
		Actuators: []action.Actuator{newActuator(t, Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rem.Stop(); err != nil {
			t.Error(err)
		}
	}()
	alert := loadtest.Alert{Name: "SwarmServiceDown", Target: "unused", Severity: "critical",
		Extra: map[string]string{"service_name": name}, StartsAt: time.Now().Add(-time.Minute)}
	if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("swarm", alert)); err != nil || code != http.StatusAccepted {
		t.Fatalf("posting the alert: %d %s %v", code, body, err)
	}

	// The tasks are replaced; then the alert clears and Alertmanager says so.
	deadline := time.Now().Add(90 * time.Second)
	for inspect(t, name, "{{.Spec.TaskTemplate.ForceUpdate}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}") != "1 completed" {
		if time.Now().After(deadline) {
			t.Fatalf("the playbook did not force-update the service within 90s: %s", dockerCLI(t, "service", "ps", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	alert.Resolved = true
	if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("swarm", alert)); err != nil || code != http.StatusAccepted {
		t.Fatalf("posting the resolved alert: %d %s %v", code, body, err)
	}

	h := waitHeal(t, rem, name, 90*time.Second)
	t.Logf("heal %s: %+v", h.Result, h.Steps)
	if h.Result != store.HealHealed || len(h.Steps) != 1 {
		t.Fatalf("heal %q with %d steps (%+v), want healed by the first step", h.Result, len(h.Steps), h.Steps)
	}
	st := h.Steps[0]
	if st.Name != "restart-tasks" || st.Action != "swarm" || st.Outcome != store.StepSucceeded ||
		!strings.Contains(st.Detail, "force-updated service "+name) || !strings.Contains(st.Detail, "2/2 tasks running on the current spec") {
		t.Errorf("step recorded as %+v, want restart-tasks succeeded with the force-update's detail", st)
	}
	after := runningTasks(t, name)
	for _, id := range after {
		for _, old := range before {
			if id == old {
				t.Errorf("task %s survived the heal", id)
			}
		}
	}
	if len(after) != 2 || inspect(t, name, "{{.Spec.Mode.Replicated.Replicas}}") != "2" {
		t.Errorf("after the heal %d tasks run and the spec has %s replicas, want 2 and 2 (the scale step must not run)",
			len(after), inspect(t, name, "{{.Spec.Mode.Replicated.Replicas}}"))
	}
}

// TestPlaybookRefused: through the same path, an alert about a service that did not opt in
// ends in a failed heal whose every step says why, and the service is untouched.
func TestPlaybookRefused(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 0})
	version := inspect(t, name, "{{.Version.Index}}")
	rem, err := loadtest.Start(loadtest.Options{
		Dir: t.TempDir(), Playbooks: e2ePlaybooks, Tick: 50 * time.Millisecond,
		Actuators: []action.Actuator{newActuator(t, Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rem.Stop(); err != nil {
			t.Error(err)
		}
	}()
	alert := loadtest.Alert{Name: "SwarmServiceDown", Target: "unused", Severity: "critical",
		Extra: map[string]string{"service_name": name}, StartsAt: time.Now().Add(-time.Minute)}
	if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("swarm", alert)); err != nil || code != http.StatusAccepted {
		t.Fatalf("posting the alert: %d %s %v", code, body, err)
	}
	h := waitHeal(t, rem, name, 30*time.Second)
	t.Logf("heal %s: %+v", h.Result, h.Steps)
	if h.Result != store.HealFailed || len(h.Steps) != 2 {
		t.Fatalf("heal %q with %d steps, want failed after both steps", h.Result, len(h.Steps))
	}
	for _, st := range h.Steps {
		if st.Outcome != store.StepFailed || !strings.Contains(st.Error, "has not opted in: service label remediator.enable=true is missing") {
			t.Errorf("step %s recorded as %q with error %q, want failed for want of opt-in", st.Name, st.Outcome, st.Error)
		}
	}
	if got := inspect(t, name, "{{.Version.Index}}"); got != version {
		t.Errorf("the service changed (version %s, was %s)", got, version)
	}
}

// waitHeal polls the heal history API until the target's newest heal has finished.
func waitHeal(t *testing.T, rem *loadtest.Remediator, target string, within time.Duration) store.Heal {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(rem.URL + "/api/v1/heals?target=" + url.QueryEscape(target))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Heals []store.Heal `json:"heals"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Heals) > 0 && out.Heals[0].Result != store.HealRunning {
			return out.Heals[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished heal of %s within %s (history: %+v)", target, within, out.Heals)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
