package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/store"
)

func simEntries(t *testing.T, alerts ...template.Alert) []store.InboxEntry {
	t.Helper()
	entries, errs := intake.Entries(&intake.Message{Data: &template.Data{Alerts: alerts}, Version: "4"}, time.Now())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return entries
}

// While a heal runs, a simulation of its own alert is deduplicated (the episode is handled), and
// another alert of the target would wait for the heal. The simulation acts on nothing and counts
// nothing.
func TestSimulateWhileHealing(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	h.runner.block = make(chan struct{})
	defer close(h.runner.block)
	first := alert("ServiceMemoryHigh", "c1", "firing")
	h.deliver(first)
	waitFor(t, func() bool { return len(h.runner.Calls()) == 1 })
	before := h.counter("alerts", "deduplicated")

	later := alert("ServiceMemoryHigh", "c1", "firing")
	later.StartsAt = t0.Add(time.Minute)
	sims := h.p.Simulate(context.Background(), simEntries(t, first, later))
	if len(sims) != 2 {
		t.Fatalf("simulations: %+v", sims)
	}
	if s := sims[0]; s.Decision != outcomeDeduplicated || s.StoppedBy != "dedupe" || s.Target != "c1" {
		t.Errorf("the healing episode: %s by %s (%s), target %q", s.Decision, s.StoppedBy, s.Detail, s.Target)
	}
	s := sims[1]
	if s.Decision != DecisionHeal || len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "is running now") {
		t.Errorf("a new episode of the healing target: %s by %s (%s), notes %q", s.Decision, s.StoppedBy, s.Detail, s.Notes)
	}
	if len(s.Steps) != 2 || s.Steps[0].Does != "POST http://c1:8080/recover/flush-cache" || s.Steps[1].Action != "docker" {
		t.Errorf("steps: %+v", s.Steps)
	}
	if calls := h.runner.Calls(); len(calls) != 1 {
		t.Errorf("the simulation acted: %v", calls)
	}
	if after := h.counter("alerts", "deduplicated"); after != before {
		t.Errorf("the simulation counted a deduplicated alert: %v -> %v", before, after)
	}
	h.p.mu.Lock()
	firing := h.p.targets["c1"].Firing.Len()
	h.p.mu.Unlock()
	if firing != 1 {
		t.Errorf("the simulation noted its alert on the live target: %d firing", firing)
	}
}

// A simulation from the API's view of a target: a spent budget stops it at the budget stage, and
// the stages after the first stop still answer.
func TestSimulateOfflineState(t *testing.T) {
	cfg := mustConfig(t, playbooks(t))
	now := t0.Add(time.Hour)
	cooldown := now.Add(time.Minute)
	left := 0
	state := SimulationState{Targets: []TargetView{{Name: "c1", Playbook: "memory-high", AttemptsUsed: 3, AttemptsLeft: &left,
		Suspended: true, CooldownUntil: &cooldown, Firing: []string{"ServiceMemoryHigh"}}}}
	sims := SimulateOffline(context.Background(), cfg, state, nil, now, simEntries(t, alert("ServiceMemoryHigh", "c1", "firing")))
	var got []string
	for _, v := range sims[0].Stages {
		got = append(got, v.Stage+"="+v.Verdict)
	}
	want := "dedupe=unknown match=pass relapse=pass guards=pass cooldown=stop budget=stop preconditions=pass"
	if strings.Join(got, " ") != want || sims[0].StoppedBy != "cooldown" {
		t.Errorf("stages %q stopped by %q, want %q stopped by cooldown", strings.Join(got, " "), sims[0].StoppedBy, want)
	}
}
