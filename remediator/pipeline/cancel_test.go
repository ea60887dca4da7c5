package pipeline

import (
	"testing"

	"github.com/selfheal/selfheal/remediator/store"
)

// withWait puts a long wait step before the playbook's steps.
var withWait = edit{"      - name: flush-cache\n", "      - name: settle\n        wait: 1h\n        timeout: 2h\n      - name: flush-cache\n"}

// The alert resolves during a wait step: the wait stops, the heal ends resolved, and no further
// step runs. The fake runner's wait returns only when its context ends, so nothing but the
// resolved alert can end it within the test.
func TestResolveCancelsWait(t *testing.T) {
	h := newHarness(t, playbooks(t, withWait), quietProm())
	h.runner.block = make(chan struct{})
	defer close(h.runner.block)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	waitFor(t, func() bool { return len(h.runner.Calls()) == 1 })
	h.deliver(alert("ServiceMemoryHigh", "c1", "resolved"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealResolved || steps(hs[0]) != "settle=cancelled;" {
		t.Fatalf("heals = %+v", hs)
	}
	if calls := h.runner.Calls(); len(calls) != 1 {
		t.Errorf("calls = %v, want only the wait", calls)
	}
	if h.counter("heals", "memory-high", store.HealResolved) != 1 || h.counter("heals", "memory-high", store.HealHealed) != 0 {
		t.Error("heals_total does not count the heal as resolved")
	}
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	if st, ok := h.p.stats[statsKey("memory-high", "settle", "ServiceMemoryHigh")]; ok {
		t.Errorf("a cancelled wait fed the statistics: %+v", st)
	}
}

// The alert resolves while an action runs: that step is finished, verified and held as usual.
// When it heals, the heal is healed; when it fails, the heal ends resolved before the next step,
// which never runs.
func TestResolveDuringAction(t *testing.T) {
	tests := []struct {
		name   string
		fail   bool
		result string
		steps  string
		reason string
	}{
		{"the step heals", false, store.HealHealed, "flush-cache=succeeded;", ""},
		{"the step fails", true, store.HealResolved, "flush-cache=failed;", "the alert resolved before step restart"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, playbooks(t), quietProm())
			h.runner.block = make(chan struct{})
			h.runner.fail["flush-cache"] = tc.fail
			h.resolveWhileActing(t)
			close(h.runner.block)
			h.idle()
			hs := h.heals()
			if len(hs) != 1 || hs[0].Result != tc.result || steps(hs[0]) != tc.steps || hs[0].Reason != tc.reason {
				t.Fatalf("heals = %+v", hs)
			}
			if !tc.fail && hs[0].Steps[0].StabilizingSince.IsZero() {
				t.Error("the healing step was not held")
			}
			if calls := h.runner.Calls(); len(calls) != 1 {
				t.Errorf("calls = %v, want only flush-cache", calls)
			}
		})
	}
}

// The step's fix resolves the alert (its resolved notification arrives while the step acts),
// then the alert comes back in the step's hold: the step flapped, and the resolution it heard
// of is over. The playbook escalates to the restart instead of ending resolved.
func TestFlapAfterResolveEscalates(t *testing.T) {
	prom := quietProm()
	prom.pendingAfter = 1
	h := newHarness(t, playbooks(t, fastVerify), prom)
	h.runner.block = make(chan struct{})
	clearPendingOnRestart(h, prom)
	h.resolveWhileActing(t)
	close(h.runner.block)
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || steps(hs[0]) != "flush-cache=failed;restart=succeeded;" || hs[0].Result != store.HealHealed {
		t.Fatalf("heals = %+v", hs)
	}
	if hs[0].Steps[0].Reason != ReasonFlapped {
		t.Errorf("flush-cache: reason %q, want %q", hs[0].Steps[0].Reason, ReasonFlapped)
	}
}

// resolveWhileActing delivers the alert, then its resolved notification while the first action
// runs (the runner must block), and waits until the running heal knows of it.
func (h *harness) resolveWhileActing(t *testing.T) {
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	waitFor(t, func() bool { return len(h.runner.Calls()) == 1 })
	h.deliver(alert("ServiceMemoryHigh", "c1", "resolved"))
	waitFor(t, func() bool {
		h.p.mu.Lock()
		defer h.p.mu.Unlock()
		j := h.p.inFlight["c1"]
		return j != nil && j.resolved
	})
}
