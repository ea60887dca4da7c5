package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/selfheal/selfheal/remediator/store"
)

// The alert goes pending again during the first step's hold, after its first look saw it gone:
// that step failed as flapped, and the playbook escalates to the restart, whose hold the target
// passes.
func TestFlapEscalates(t *testing.T) {
	prom := quietProm()
	prom.pendingAfter = 1
	h := newHarness(t, playbooks(t, fastVerify), prom)
	clearPendingOnRestart(h, prom)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || steps(hs[0]) != "flush-cache=failed;restart=succeeded;" || hs[0].Result != store.HealHealed {
		t.Fatalf("heals = %+v", hs)
	}
	flush, restart := hs[0].Steps[0], hs[0].Steps[1]
	if flush.Reason != ReasonFlapped || !strings.Contains(flush.Error, "ServiceMemoryHigh is pending again") {
		t.Errorf("flush-cache: reason %q error %q, want flapped saying the alert is pending again", flush.Reason, flush.Error)
	}
	if flush.StabilizingSince.IsZero() || restart.StabilizingSince.Before(flush.End) || restart.End.Sub(restart.StabilizingSince) < 60*time.Millisecond {
		t.Errorf("holds not recorded: flush %+v restart %+v", flush, restart)
	}
	if got := h.counter("heals", "memory-high", "healed"); got != 1 {
		t.Errorf("heals_total{healed} = %v", got)
	}
}

// clearPendingOnRestart takes the alert out of pending when the restart acts: its hold passes.
func clearPendingOnRestart(h *harness, prom *fakeProm) {
	h.runner.after = func() {
		if calls := h.runner.Calls(); calls[len(calls)-1] == "c1/restart" {
			prom.mu.Lock()
			prom.pending = nil
			prom.mu.Unlock()
		}
	}
}

// A target whose up series is missing (a scrape gap) is never held healthy, although the alert
// does not fire: no step heals.
func TestScrapeGapIsNotHealed(t *testing.T) {
	prom := quietProm()
	prom.gap = true
	h := newHarness(t, playbooks(t, fastVerify), prom)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || steps(hs[0]) != "flush-cache=failed;restart=failed;" || hs[0].Result != store.HealFailed {
		t.Fatalf("heals = %+v", hs)
	}
	for _, s := range hs[0].Steps {
		if s.Reason != ReasonNotStable || !strings.Contains(s.Error, `up{instance="c1:8080",job="demo"} == 1 returned no samples`) {
			t.Errorf("step %s: reason %q error %q", s.Name, s.Reason, s.Error)
		}
	}
}

// While the hold runs the target is stabilizing, and healthy once it held.
func TestStabilizingIsTheHold(t *testing.T) {
	h := newHarness(t, playbooks(t, edit{"stable_for: 60ms", "stable_for: 1s"}), quietProm())
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	waitFor(t, func() bool { return h.targetGauge("remediator_target_state", "c1") == StateValues[StateStabilizing] })
	h.idle()
	if got := h.targetGauge("remediator_target_state", "c1"); got != StateValues[StateHealthy] {
		t.Fatalf("state after the hold = %v, want healthy", got)
	}
}

// Without instance and job labels there is no up series to watch: the step fails saying what to
// set; a label value that would leave its quotes stays the matcher's value, never PromQL.
func TestHealthyQueryFromLabels(t *testing.T) {
	cfg := mustConfig(t, playbooks(t))
	d := &decision{playbook: cfg.Playbooks[0], target: "c1", alert: template.Alert{Labels: template.KV{"alertname": "X"}}}
	v := cfg.Playbooks[0].Steps[0].Verify
	if _, err := healthyQuery(v, d); err == nil || !strings.Contains(err.Error(), "set verify.healthy_query") {
		t.Errorf("no instance or job: %v", err)
	}
	d.alert.Labels["job"] = "demo"
	if q, err := healthyQuery(v, d); err != nil || q != `up{job="demo"} == 1` {
		t.Errorf("job only: %q %v", q, err)
	}
	injected := `x"} or vector(1) or up{a="`
	d.alert.Labels["instance"] = injected
	q, err := healthyQuery(v, d)
	if err != nil {
		t.Logf("refused: %v", err)
		return // refused: nothing pasted
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("rendered %q: %v", q, err)
	}
	var sel *parser.VectorSelector
	if be, ok := expr.(*parser.BinaryExpr); ok {
		sel, _ = be.LHS.(*parser.VectorSelector)
	}
	if sel == nil || len(sel.LabelMatchers) != 3 { // instance, job, __name__
		t.Fatalf("rendered %q is not one up selector == 1", q)
	}
	for _, m := range sel.LabelMatchers {
		if m.Name == "instance" && m.Value != injected {
			t.Errorf("instance matcher = %q, want the label's value %q", m.Value, injected)
		}
	}
}

// Without Prometheus a flap shows only as a new episode of the alert on the target that started
// after the step began.
func TestRefired(t *testing.T) {
	p := &Pipeline{targets: targetSet{}}
	began := t0.Add(time.Minute)
	d := &decision{target: "c1", episode: "own", alert: template.Alert{Labels: template.KV{"alertname": "ServiceMemoryHigh"}}}
	tests := []struct {
		name, episode, alertname string
		since                    time.Time
		want                     bool
	}{
		{"the healed episode itself", "own", "ServiceMemoryHigh", began.Add(time.Second), false},
		{"an episode from before the step", "old", "ServiceMemoryHigh", t0, false},
		{"another alert", "other", "ServiceCPUHigh", began.Add(time.Second), false},
		{"the alert again", "new", "ServiceMemoryHigh", began.Add(time.Second), true},
	}
	for _, tc := range tests {
		p.targets["c1"] = &store.Target{Name: "c1", Firing: firingSet(map[string]store.Firing{
			tc.episode: {Alertname: tc.alertname, Since: tc.since},
		})}
		if got := p.refired(d, began); got != tc.want {
			t.Errorf("%s: refired %v, want %v", tc.name, got, tc.want)
		}
	}
}
