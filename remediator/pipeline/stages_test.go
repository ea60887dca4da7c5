package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

func TestCooldownAfter(t *testing.T) {
	c := config.Cooldown{Initial: model.Duration(time.Minute), Factor: 2, Max: model.Duration(5 * time.Minute)}
	tests := []struct {
		n    int
		c    config.Cooldown
		want time.Duration
	}{
		{1, c, time.Minute},
		{2, c, 2 * time.Minute},
		{3, c, 4 * time.Minute},
		{4, c, 5 * time.Minute}, // ceiling
		{60, c, 5 * time.Minute},
		{0, c, 0},
		{3, config.Cooldown{Initial: model.Duration(time.Minute), Factor: 0.5}, time.Minute}, // factor < 1 never shrinks
		{2, config.Cooldown{}, 0},
	}
	for _, tc := range tests {
		if got := cooldownAfter(tc.c, tc.n); got != tc.want {
			t.Errorf("cooldownAfter(%+v, %d) = %s, want %s", tc.c, tc.n, got, tc.want)
		}
	}
}

func TestCooldownResetsAfterHealthy(t *testing.T) {
	c := config.Cooldown{Initial: model.Duration(time.Minute), Factor: 2, ResetAfter: model.Duration(10 * time.Minute)}
	now := t0
	tests := []struct {
		name   string
		target store.Target
		want   int
	}{
		{"healthy long enough", store.Target{Consecutive: 3, HealthySince: now.Add(-11 * time.Minute)}, 0},
		{"healthy too briefly", store.Target{Consecutive: 3, HealthySince: now.Add(-time.Minute)}, 3},
		{"still firing", store.Target{Consecutive: 3, HealthySince: now.Add(-time.Hour), Firing: firingSet(map[string]store.Firing{"x": {}})}, 3},
		{"never healthy", store.Target{Consecutive: 2}, 2},
	}
	for _, tc := range tests {
		tg := tc.target
		resetCooldownIfHealthy(&tg, c, now)
		if tg.Consecutive != tc.want {
			t.Errorf("%s: consecutive %d, want %d", tc.name, tg.Consecutive, tc.want)
		}
	}
}

func TestBudgetUse(t *testing.T) {
	b := config.Budget{Attempts: 3, Window: model.Duration(time.Hour)}
	now := t0
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	spent := []time.Time{ago(time.Minute), ago(2 * time.Minute), ago(3 * time.Minute)}
	tests := []struct {
		name          string
		attempts      []time.Time
		b             config.Budget
		wasSuspended  bool
		used, left    int
		wantSuspended bool
	}{
		{"empty", nil, b, false, 0, 3, false},
		{"two in window", []time.Time{ago(time.Minute), ago(2 * time.Minute)}, b, false, 2, 1, false},
		// Counting never suspends: only a refused or a failed last heal does.
		{"spent, not yet refused", spent, b, false, 3, 0, false},
		{"spent and suspended stays suspended", spent, b, true, 3, 0, true},
		{"window moved on lifts the suspension", []time.Time{ago(2 * time.Hour), ago(time.Minute), ago(3 * time.Minute)}, b, true, 2, 1, false},
		{"unlimited", []time.Time{ago(time.Minute)}, config.Budget{}, true, 1, -1, false},
	}
	for _, tc := range tests {
		tg := store.Target{Attempts: append([]time.Time(nil), tc.attempts...), Suspended: tc.wasSuspended}
		used, left := budgetUse(&tg, tc.b, now)
		if used != tc.used || left != tc.left || tg.Suspended != tc.wantSuspended {
			t.Errorf("%s: used %d left %d suspended %v, want %d %d %v", tc.name, used, left, tg.Suspended, tc.used, tc.left, tc.wantSuspended)
		}
	}
}

func TestBlastRadius(t *testing.T) {
	now := t0
	mk := func(n int, age time.Duration) map[string]time.Time {
		m := map[string]time.Time{}
		for i := range n {
			m[string(rune('a'+i))] = now.Add(-age)
		}
		return m
	}
	tests := []struct {
		name string
		br   config.BlastRadius
		seen map[string]time.Time
		stop bool
	}{
		{"disabled", config.BlastRadius{}, mk(10, 0), false},
		{"under count", config.BlastRadius{MaxTargets: 3, Window: model.Duration(time.Minute)}, mk(3, 0), false},
		{"over count", config.BlastRadius{MaxTargets: 3, Window: model.Duration(time.Minute)}, mk(4, 0), true},
		{"old failures do not count", config.BlastRadius{MaxTargets: 3, Window: model.Duration(time.Minute)}, mk(4, time.Hour), false},
		{"ratio with two failing is not a storm", config.BlastRadius{MaxRatio: 0.5, Window: model.Duration(time.Minute)}, mk(2, 0), false},
		{"ratio over", config.BlastRadius{MaxRatio: 0.5, Window: model.Duration(time.Minute)}, mk(3, 0), true},
	}
	for _, tc := range tests {
		d := &decision{playbook: &config.Playbook{Name: "pb", BlastRadius: tc.br}, now: now}
		if v := blastRadius(blastMemory{"pb": tc.seen}, d); v.stop != tc.stop || (v.stop && v.reason != ReasonBlastRadius) {
			t.Errorf("%s: %+v, want stop=%v", tc.name, v, tc.stop)
		}
	}
}

func TestStateOf(t *testing.T) {
	now := t0
	p := &Pipeline{inFlight: map[string]*job{"busy": {}, "holding": {}}, stabilizing: map[string]bool{"holding": true}, cfg: &config.Config{Playbooks: []*config.Playbook{
		{Name: "pb", Cooldown: config.Cooldown{ResetAfter: model.Duration(10 * time.Minute)}},
	}}}
	firing := func(sev string) store.FiringSet { return firingSet(map[string]store.Firing{"e": {Severity: sev}}) }
	tests := []struct {
		name   string
		t      store.Target
		global bool
		want   string
	}{
		{"healthy", store.Target{Name: "x", Playbook: "pb"}, false, StateHealthy},
		{"warning fires", store.Target{Name: "x", Firing: firing("warning")}, false, StateDegraded},
		{"critical fires", store.Target{Name: "x", Firing: firing("critical")}, false, StateFailing},
		{"healing", store.Target{Name: "busy", Firing: firing("critical")}, false, StateRecovering},
		{"in a step's hold", store.Target{Name: "holding", Firing: firing("critical")}, false, StateStabilizing},
		// Healthy once held: stabilizing is the hold itself, not a time after it.
		{"recently healed", store.Target{Name: "x", Playbook: "pb", LastHealAt: now.Add(-time.Minute), HealthySince: now.Add(-time.Minute)}, false, StateHealthy},
		{"paused beats the hold", store.Target{Name: "holding", Pause: store.Pause{Active: true}}, false, StatePaused},
		{"suspended beats firing", store.Target{Name: "x", Suspended: true, Firing: firing("critical")}, false, StateSuspended},
		{"paused beats suspended", store.Target{Name: "x", Suspended: true, Pause: store.Pause{Active: true}}, false, StatePaused},
		{"pause expired", store.Target{Name: "x", Pause: store.Pause{Active: true, Until: now.Add(-time.Second)}}, false, StateHealthy},
		{"global pause", store.Target{Name: "x"}, true, StatePaused},
	}
	for _, tc := range tests {
		p.global = store.Pause{Active: tc.global}
		if got := p.stateOf(&tc.t, now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestForgetIdleTargets(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	now := time.Now()
	h.p.mu.Lock()
	old := now.Add(-48 * time.Hour)
	h.p.targets["idle"] = &store.Target{Name: "idle", LastHealAt: old, HealthySince: old}
	h.p.targets["paused"] = &store.Target{Name: "paused", LastHealAt: old, HealthySince: old, Pause: store.Pause{Active: true}}
	h.p.targets["recent"] = &store.Target{Name: "recent", LastHealAt: now.Add(-time.Hour), HealthySince: now.Add(-time.Hour)}
	h.p.targets["firing"] = &store.Target{Name: "firing", LastHealAt: old, Firing: firingSet(map[string]store.Firing{"e": {}})}
	h.p.forgetIdleTargets(now, 24*time.Hour)
	var names []string
	for n := range h.p.targets {
		names = append(names, n)
	}
	_, kept := h.p.targets["idle"]
	h.p.mu.Unlock()
	if len(names) != 3 || kept {
		t.Fatalf("targets left %v, want all but idle", names)
	}
}

func TestGuards(t *testing.T) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC) // a Monday, noon
	window := func(start, end string) []config.TimeWindow {
		return []config.TimeWindow{{Weekdays: []string{"monday"}, Start: start, End: end}}
	}
	tests := []struct {
		name    string
		global  store.Pause
		target  store.Pause
		pb      config.Playbook
		dryRun  bool
		reason  string
		wantDry bool
	}{
		{"nothing in the way", store.Pause{}, store.Pause{}, config.Playbook{}, false, "", false},
		{"global pause", store.Pause{Active: true}, store.Pause{}, config.Playbook{}, false, ReasonPaused, false},
		{"expired global pause", store.Pause{Active: true, Until: now.Add(-time.Minute)}, store.Pause{}, config.Playbook{}, false, "", false},
		{"target pause", store.Pause{}, store.Pause{Active: true, Until: now.Add(time.Minute)}, config.Playbook{}, false, ReasonPaused, false},
		{"inside time window", store.Pause{}, store.Pause{}, config.Playbook{TimeWindows: window("09:00", "17:00")}, false, "", false},
		{"outside time window", store.Pause{}, store.Pause{}, config.Playbook{TimeWindows: window("13:00", "17:00")}, false, ReasonTimeWindow, false},
		{"global dry run", store.Pause{}, store.Pause{}, config.Playbook{}, true, "", true},
		{"playbook dry run", store.Pause{}, store.Pause{}, config.Playbook{DryRun: true}, false, "", true},
	}
	for _, tc := range tests {
		s := newGuards(&tc.global, targetSet{"x": {Name: "x", Pause: tc.target}}, blastMemory{}, tc.dryRun)
		pb := tc.pb
		pb.Name = "pb"
		d := &decision{playbook: &pb, target: "x", now: now}
		v := s.decide(context.Background(), d)
		if v.reason != tc.reason || v.stop != (tc.reason != "") || d.dryRun != tc.wantDry {
			t.Errorf("%s: verdict %+v dryRun %v, want reason %q dryRun %v", tc.name, v, d.dryRun, tc.reason, tc.wantDry)
		}
	}
}

func TestPreconditions(t *testing.T) {
	tmpl := func(s string) config.Template {
		tt, err := config.NewTemplate(s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	tests := []struct {
		name   string
		prom   *fakeProm
		pcs    []config.Precondition
		stop   bool
		detail string
	}{
		{"none", nil, nil, false, ""},
		{"holds", &fakeProm{queryOK: true}, []config.Precondition{{Query: tmpl(`up{instance="{{ .Labels.instance }}"}`)}}, false, ""},
		{"does not hold", &fakeProm{}, []config.Precondition{{Query: tmpl(`up == 1`), Description: "another replica is up"}}, true, `"another replica is up" does not hold`},
		{"prometheus down", &fakeProm{down: true}, []config.Precondition{{Query: tmpl(`up`)}}, true, "connection refused"},
		{"no prometheus", nil, []config.Precondition{{Query: tmpl(`up`)}}, true, "none configured"},
	}
	for _, tc := range tests {
		v := newVerifier(tc.prom)
		d := &decision{playbook: &config.Playbook{Name: "pb", Preconditions: tc.pcs}, alert: alert("A", "c1", "firing"), target: "c1"}
		d.alert.Labels["instance"] = "c1:8080"
		got := newPreconditions(v).decide(context.Background(), d)
		if got.stop != tc.stop || (tc.stop && (got.reason != ReasonPrecondition || !strings.Contains(got.detail, tc.detail))) {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}

// A held-back alert keeps its labels and annotations in the store, not in memory, and gets them
// back when it is decided again: the heal it starts then records them, also after a restart.
func TestHeldBackAlertGetsItsLabelsBack(t *testing.T) {
	for _, restart := range []bool{false, true} {
		dir := t.TempDir()
		h := newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner())
		if err := h.p.Pause("", 0, "holding"); err != nil {
			t.Fatal(err)
		}
		a := alert("ServiceMemoryHigh", "c1", "firing")
		a.Annotations = template.KV{"summary": "memory high on c1", "runbook_url": "docs/runbooks.md"}
		h.deliver(a)
		h.idle()
		h.p.mu.Lock()
		d := h.p.parked["c1"]
		h.p.flushWrites()
		if d == nil || !d.stored || d.alert.Labels != nil || d.alert.Annotations != nil {
			h.p.mu.Unlock()
			t.Fatalf("held-back decision %+v: want it stored, without labels and annotations", d)
		}
		h.p.mu.Unlock()
		if restart {
			h.stop()
			h = newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner())
		}
		if err := h.p.Resume(""); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(h.heals()) == 1 })
		got := h.heals()[0].Alert
		if got.Labels["instance"] != "c1:8080" || got.Annotations["summary"] != "memory high on c1" {
			t.Errorf("restart %v: the heal of the held-back alert recorded %+v, want its labels and annotations", restart, got)
		}
	}
}

// Each stage has its remediator_decisions_stopped_total series from the start, and the stage that
// stops an alert is the one counted.
func TestStoppingStageIsCounted(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() == "remediator_decisions_stopped_total" {
			for _, m := range mf.GetMetric() {
				series[m.GetLabel()[0].GetValue()] = true
			}
		}
	}
	for _, s := range h.p.stages {
		if !series[s.name] {
			t.Errorf("stage %s has no remediator_decisions_stopped_total series", s.name)
		}
	}
	if len(series) != len(h.p.stages) {
		t.Errorf("series for %v, want one per stage (two stages share a name?)", series)
	}

	h.deliverUnmatchedThenCooldown()
	for stage, want := range map[string]float64{"dedupe": 0, "match": 1, "guards": 0, "cooldown": 1, "budget": 0} {
		if got := h.counter("stopped", stage); got != want {
			t.Errorf("stopped{stage=%q} = %v, want %v", stage, got, want)
		}
	}
}

// Preconditions run in the heal's goroutine, after the heal got its turn and before any action;
// one that does not hold stops the heal under its own stage name.
func TestPreconditionStopsBeforeActing(t *testing.T) {
	yaml := playbooks(t, edit{"  heals_per_minute: 1000\n", "  heals_per_minute: 1000\n  prometheus_url: http://prometheus:9090\n"},
		edit{"    steps:\n", "    preconditions:\n      - {query: 'up == 1', description: another replica is up}\n    steps:\n"})
	h := newHarness(t, yaml, quietProm()) // answers no sample: does not hold
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	if calls := h.runner.Calls(); len(calls) != 0 || len(h.heals()) != 0 {
		t.Fatalf("acted although the precondition does not hold: %v", calls)
	}
	if h.counter("stopped", "preconditions") != 1 || h.counter("suppressed", ReasonPrecondition) != 1 {
		t.Fatalf("stopped{preconditions} %v suppressed{precondition} %v, want 1 and 1",
			h.counter("stopped", "preconditions"), h.counter("suppressed", ReasonPrecondition))
	}
}
