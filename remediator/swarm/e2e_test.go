package swarm

import (
	"net/http"
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
        verify: {timeout: 60s, stable_for: 1s}   # the resolved notification proves it; hold briefly
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
	rem, alert := startRemediator(t, name)
	// The tasks are replaced; then the alert clears and Alertmanager says so.
	deadline := time.Now().Add(90 * time.Second)
	for inspect(t, name, "{{.Spec.TaskTemplate.ForceUpdate}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}") != "1 completed" {
		if time.Now().After(deadline) {
			t.Fatalf("the playbook did not force-update the service within 90s: %s", dockerCLI(t, "service", "ps", name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	alert.Resolved = true
	post(t, rem, alert)

	h := waitHeal(t, rem, name, 90*time.Second)
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
	rem, _ := startRemediator(t, name)
	h := waitHeal(t, rem, name, 30*time.Second)
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

// startRemediator runs a remediator in this process with the swarm actuator and the playbooks
// above, and posts the alert about service as Alertmanager would.
func startRemediator(t *testing.T, service string) (*loadtest.Remediator, loadtest.Alert) {
	t.Helper()
	rem, err := loadtest.Start(loadtest.Options{
		Dir: t.TempDir(), Playbooks: e2ePlaybooks, Token: "swarm-token", Tick: 50 * time.Millisecond,
		Actuators: []action.Actuator{newActuator(t, Options{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rem.Stop(); err != nil {
			t.Error(err)
		}
	})
	// service_name is the label Prometheus' Swarm discovery rules commonly give it.
	alert := loadtest.Alert{Name: "SwarmServiceDown", Target: "unused", Severity: "critical",
		Extra: map[string]string{"service_name": service}, StartsAt: time.Now().Add(-time.Minute)}
	post(t, rem, alert)
	return rem, alert
}

func post(t *testing.T, rem *loadtest.Remediator, alert loadtest.Alert) {
	t.Helper()
	if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("swarm", alert)); err != nil || code != http.StatusAccepted {
		t.Fatalf("posting the alert (resolved: %v): %d %s %v", alert.Resolved, code, body, err)
	}
}

func waitHeal(t *testing.T, rem *loadtest.Remediator, target string, within time.Duration) store.Heal {
	t.Helper()
	h, err := rem.WaitHeal(target, within)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("heal %s: %+v", h.Result, h.Steps)
	return h
}
