package pipeline

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/store"
)

func TestHealFirstStepVerified(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealHealed || steps(hs[0]) != "flush-cache=succeeded;" {
		t.Fatalf("heals = %+v", hs)
	}
	if got := h.runner.Calls(); len(got) != 1 || got[0] != "c1/flush-cache" {
		t.Fatalf("calls = %v", got)
	}
	if h.counter("heals", "memory-high", "healed") != 1 {
		t.Fatal("heals_total{healed} not 1")
	}
}

func TestEscalation(t *testing.T) {
	tests := []struct {
		name       string
		failAction bool
		firing     bool
		want       string
		result     string
	}{
		{"action fails, next step heals", true, false, "flush-cache=failed;restart=succeeded;", store.HealHealed},
		{"nothing verifies", false, true, "flush-cache=failed;restart=failed;", store.HealFailed},
		{"prometheus down during verification", false, false, "flush-cache=failed;restart=failed;", store.HealFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prom := &fakeProm{firing: map[string]bool{"ServiceMemoryHigh": tc.firing}, down: strings.Contains(tc.name, "down")}
			h := newHarness(t, playbooks(t, fastVerify), prom)
			h.runner.fail["flush-cache"] = tc.failAction
			h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
			h.idle()
			hs := h.heals()
			if len(hs) != 1 || steps(hs[0]) != tc.want || hs[0].Result != tc.result {
				t.Fatalf("heals = %+v", hs)
			}
			for _, s := range hs[0].Steps {
				if s.Outcome == store.StepFailed && s.Error == "" {
					t.Errorf("failed step %s has no error text", s.Name)
				}
				if prom.down && !strings.Contains(s.Error, "prometheus query failed: connection refused") {
					t.Errorf("step %s: error %q does not say Prometheus is down", s.Name, s.Error)
				}
			}
		})
	}
}

func TestResolvedNeverActs(t *testing.T) {
	h := newHarness(t, playbooks(t), nil)
	h.deliver(alert("ServiceMemoryHigh", "c1", "resolved"))
	h.idle()
	if len(h.runner.Calls()) != 0 || len(h.heals()) != 0 {
		t.Fatalf("resolved alert acted: %v", h.runner.Calls())
	}
}

func TestResolvedNotificationVerifiesWithoutPrometheus(t *testing.T) {
	h := newHarness(t, playbooks(t), nil)
	h.runner.delay = 50 * time.Millisecond
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	time.Sleep(20 * time.Millisecond)
	h.deliver(alert("ServiceMemoryHigh", "c1", "resolved"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealHealed || len(h.runner.Calls()) != 1 {
		t.Fatalf("heals = %+v calls %v", hs, h.runner.Calls())
	}
}

func TestResolvedDropsWaitingHeal(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	h.runner.block = make(chan struct{})
	h.deliver(alert("ServiceMemoryHigh", "a", "firing"))
	waitFor(t, func() bool { return len(h.runner.Calls()) == 1 })
	h.deliver(alert("ServiceMemoryHigh", "b", "firing"))
	time.Sleep(50 * time.Millisecond)
	h.deliver(alert("ServiceMemoryHigh", "b", "resolved"))
	time.Sleep(50 * time.Millisecond)
	close(h.runner.block)
	h.idle()
	if calls := h.runner.Calls(); len(calls) != 1 || calls[0] != "a/flush-cache" {
		t.Fatalf("calls = %v, want only a's", calls)
	}
}

func TestDuplicateDeliveriesOneHeal(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); h.deliver(alert("ServiceMemoryHigh", "c1", "firing")) }()
	}
	wg.Wait()
	h.idle()
	if n := len(h.heals()); n != 1 {
		t.Fatalf("%d heals, want 1", n)
	}
	if n := len(h.runner.Calls()); n != 1 {
		t.Fatalf("%d actions, want 1", n)
	}
}

func TestSerializeOneAtATimeAndCoalesce(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	h.runner.after = func() {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	h.runner.block = make(chan struct{})
	h.deliver(alert("ServiceMemoryHigh", "a", "firing"))
	waitFor(t, func() bool { return len(h.runner.Calls()) == 1 })
	// Five episodes for b while a heals: one waiting heal, four coalesced away.
	for i := range 5 {
		a := alert("ServiceMemoryHigh", "b", "firing")
		a.StartsAt = t0.Add(time.Duration(i) * time.Minute)
		h.deliver(a)
	}
	h.deliver(alert("ServiceMemoryHigh", "c", "firing"))
	waitFor(t, func() bool { h.p.mu.Lock(); defer h.p.mu.Unlock(); return len(h.p.waiting) == 2 })
	close(h.runner.block)
	h.idle()
	if maxInFlight != 1 {
		t.Errorf("max in flight %d, want 1", maxInFlight)
	}
	got := strings.Join(h.runner.Calls(), ",")
	if got != "a/flush-cache,b/flush-cache,c/flush-cache" {
		t.Errorf("calls %s", got)
	}
	if d := h.counter("alerts", "deduplicated"); d != 4 {
		t.Errorf("deduplicated %v, want 4", d)
	}
}

func TestBudgetSuspendsAndResetResumes(t *testing.T) {
	yaml := playbooks(t, shortCooldown, budgetOf(2), fastVerify)
	h := newHarness(t, yaml, firingProm("ServiceMemoryHigh"))
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	// The alert keeps firing: after the first failed heal and its 1ms cooldown, the held-back
	// decision runs again, until the budget of two is spent.
	waitFor(t, func() bool {
		return h.counter("suspended", "c1") == 1
	})
	h.idle()
	time.Sleep(100 * time.Millisecond)
	if n := len(h.heals()); n != 2 {
		t.Fatalf("%d heals, want exactly the budget (2)", n)
	}
	if h.counter("state", "c1") != StateValues[StateSuspended] {
		t.Fatalf("state %v, want suspended", h.counter("state", "c1"))
	}
	if h.counter("suppressed", ReasonBudget) < 1 {
		t.Fatal("no budget suppression counted")
	}
	calls := len(h.runner.Calls())
	if err := h.p.Reset("c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(h.heals()) == 3 && len(h.runner.Calls()) > calls })
	if err := h.p.Reset("nope"); err != ErrUnknownTarget {
		t.Fatalf("reset unknown: %v", err)
	}
}

// The person is paged when the last allowed heal has failed, not while it is still running.
func TestBudgetSuspendsOnlyAfterTheLastHealFails(t *testing.T) {
	yaml := playbooks(t, budgetOf(1), fastVerify)
	runner := &fakeRunner{fail: map[string]bool{}, block: make(chan struct{})}
	h := newHarnessIn(t, t.TempDir(), yaml, firingProm("ServiceMemoryHigh"), runner)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	waitFor(t, func() bool { return len(runner.Calls()) == 1 })
	_ = h.p.TargetList(TargetPage{}) // a read must not change the target's state
	if got := h.counter("suspended", "c1"); got != 0 {
		t.Fatalf("suspended %v while the only allowed heal is still running", got)
	}
	close(runner.block)
	waitFor(t, func() bool { return h.counter("suspended", "c1") == 1 })
}

func TestPauseHoldsBackAndResumeHeals(t *testing.T) {
	for _, target := range []string{"", "c1"} {
		t.Run("target="+target, func(t *testing.T) {
			h := newHarness(t, playbooks(t), quietProm())
			if err := h.p.Pause(target, 0, "maintenance"); err != nil {
				t.Fatal(err)
			}
			a := alert("ServiceMemoryHigh", "c1", "firing")
			a.Annotations = template.KV{"summary": "memory high on c1"}
			a.GeneratorURL = "http://prometheus:9090/graph"
			h.deliver(a)
			h.idle()
			time.Sleep(60 * time.Millisecond)
			if len(h.runner.Calls()) != 0 || h.counter("suppressed", ReasonPaused) != 1 {
				t.Fatalf("paused but acted: %v", h.runner.Calls())
			}
			if h.counter("state", "c1") != StateValues[StatePaused] {
				t.Fatalf("state %v, want paused", h.counter("state", "c1"))
			}
			if err := h.p.Resume(target); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(h.heals()) == 1 })
			// The held-back decision acts on the alert as delivered.
			waitFor(t, func() bool { return len(h.runner.Alerts()) > 0 })
			acted := h.runner.Alerts()[0]
			if !maps.Equal(acted.Labels, a.Labels) || !maps.Equal(acted.Annotations, a.Annotations) ||
				acted.GeneratorURL != a.GeneratorURL || !acted.StartsAt.Equal(a.StartsAt) || acted.Fingerprint == "" {
				t.Fatalf("acted on %+v, want %+v", acted, a)
			}
		})
	}
}

func TestPauseWithDurationExpires(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	if err := h.p.Pause("", time.Second, ""); err != nil {
		t.Fatal(err)
	}
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	if len(h.runner.Calls()) != 0 {
		t.Fatal("acted while paused")
	}
	waitFor(t, func() bool { return len(h.heals()) == 1 })
}

func TestDryRun(t *testing.T) {
	yaml := playbooks(t, edit{"  max_concurrent_heals: 1\n", "  max_concurrent_heals: 1\n  dry_run: true\n"})
	h := newHarness(t, yaml, quietProm())
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealDryRun || steps(hs[0]) != "flush-cache=dry_run;restart=dry_run;" {
		t.Fatalf("heals = %+v", hs)
	}
	if len(h.runner.Calls()) != 0 {
		t.Fatal("dry run acted")
	}
	if h.counter("suppressed", ReasonDryRun) != 1 {
		t.Fatal("dry run not counted")
	}
}

func TestUnmatchedAndCooldown(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	h.deliverUnmatchedThenCooldown()
	if h.counter("alerts", "unmatched") != 1 || h.counter("suppressed", ReasonCooldown) != 1 || len(h.heals()) != 1 {
		t.Fatalf("unmatched %v cooldown %v heals %d", h.counter("alerts", "unmatched"), h.counter("suppressed", ReasonCooldown), len(h.heals()))
	}
}

func TestRestartDecidesInbox(t *testing.T) {
	dir := t.TempDir()
	// Accepted by a process that died before deciding.
	h := newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner())
	h.stop()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries := acceptOnly(t, st, alert("ServiceMemoryHigh", "c1", "firing"))
	st.Close()
	if entries != 1 {
		t.Fatal("not accepted")
	}
	h2 := newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner())
	waitFor(t, func() bool { return len(h2.heals()) == 1 })
	h2.idle()
	if inbox, _ := h2.st.Inbox(); len(inbox) != 0 {
		t.Fatalf("inbox not emptied: %v", inbox)
	}
}

func TestInterruptedHealIsNotRepeated(t *testing.T) {
	dir := t.TempDir()
	r := &fakeRunner{fail: map[string]bool{}, block: make(chan struct{})}
	h := newHarnessIn(t, dir, playbooks(t), quietProm(), r)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	waitFor(t, func() bool { return len(r.Calls()) == 1 })
	h.stop() // the heal never finishes
	r2 := newFakeRunner()
	h2 := newHarnessIn(t, dir, playbooks(t), quietProm(), r2)
	h2.deliver(alert("ServiceMemoryHigh", "c1", "firing")) // Alertmanager re-sends
	h2.idle()
	hs := h2.heals()
	if len(hs) != 1 || hs[0].Result != store.HealInterrupted {
		t.Fatalf("heals = %+v", hs)
	}
	if len(r2.Calls()) != 0 {
		t.Fatalf("second action for the same episode: %v", r2.Calls())
	}
	tv := h2.p.TargetList(TargetPage{}).Targets
	if len(tv) != 1 || tv[0].AttemptsUsed != 1 {
		t.Fatalf("targets = %+v, want the interrupted attempt counted", tv)
	}
	if h2.counter("heals", "memory-high", "interrupted") != 1 {
		t.Fatal("interrupted heal not counted")
	}
}

func TestAdaptiveSkipsHopelessStep(t *testing.T) {
	yaml := playbooks(t, shortCooldown, budgetOf(100),
		edit{"  step_timeout: 2s\n", "  step_timeout: 2s\n  adaptive: {enabled: true, min_samples: 2, min_success_ratio: 0.5}\n"})
	h := newHarness(t, yaml, quietProm())
	h.runner.fail["flush-cache"] = true
	for i := range 3 {
		a := alert("ServiceMemoryHigh", "c1", "firing")
		a.StartsAt = t0.Add(time.Duration(i) * time.Minute)
		h.deliver(a)
		h.idle()
		time.Sleep(5 * time.Millisecond)
	}
	hs := h.heals()
	if len(hs) != 3 {
		t.Fatalf("%d heals", len(hs))
	}
	if got := steps(hs[0]); got != "flush-cache=skipped;restart=succeeded;" {
		t.Fatalf("third heal steps %s, want flush skipped", got)
	}
	if !strings.Contains(hs[0].Steps[0].Reason, "adaptive") {
		t.Fatalf("skip reason %q", hs[0].Steps[0].Reason)
	}
}

// A recovery endpoint that hangs is cut off by the step timeout, with a clear reason, and the
// playbook escalates.
func TestHangingActionTimesOut(t *testing.T) {
	yaml := playbooks(t, edit{"step_timeout: 2s", "step_timeout: 200ms"})
	h := newHarness(t, yaml, quietProm())
	h.runner.block = make(chan struct{}) // never closed: every action hangs until its timeout
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	start := time.Now()
	h.idle()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("heal took %s; the step timeouts should bound it", d)
	}
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealFailed || len(hs[0].Steps) != 2 {
		t.Fatalf("heals %+v", hs)
	}
	for _, s := range hs[0].Steps {
		if s.Reason != "action timed out after 200ms" || !strings.Contains(s.Error, "deadline exceeded") {
			t.Errorf("step %s: reason %q error %q", s.Name, s.Reason, s.Error)
		}
	}
}

// The API lists a large fleet a page at a time, by name, with what all targets add up to.
func TestTargetListPages(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	if err := h.p.Pause("", 0, "paging"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c4", "c2", "c5", "c1", "c3"} {
		h.deliver(alert("ServiceMemoryHigh", c, "firing"))
	}
	h.idle()
	var names []string
	after, pages := "", 0
	for {
		l := h.p.TargetList(TargetPage{After: after, Limit: 2})
		pages++
		if l.Total != 5 || l.Firing != 5 || l.States[StatePaused] != 5 {
			t.Fatalf("page %d: total %d, firing %d, states %v; want 5 targets, 5 alerts, all paused", pages, l.Total, l.Firing, l.States)
		}
		for _, v := range l.Targets {
			names = append(names, v.Name)
		}
		if l.Next == "" {
			break
		}
		after = l.Next
	}
	if fmt.Sprint(names) != "[c1 c2 c3 c4 c5]" || pages != 3 {
		t.Fatalf("pages of 2 listed %v in %d pages, want c1..c5 in 3", names, pages)
	}
	if all := h.p.TargetList(TargetPage{}); len(all.Targets) != 5 || all.Next != "" {
		t.Fatalf("without a limit: %d targets, next %q; want all 5", len(all.Targets), all.Next)
	}
	if rest := h.p.TargetList(TargetPage{After: "c25", Limit: 10}); len(rest.Targets) != 3 || rest.Targets[0].Name != "c3" {
		t.Fatalf("after a name that is no target: %+v, want c3, c4, c5", rest.Targets)
	}
}

// Past the series limit, the suspended targets and then the most urgent states keep their
// per-target series, and remediator_targets still counts every target.
func TestTargetSeriesPastTheLimit(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	h.p.mu.Lock()
	for name, state := range map[string]string{"a": StateHealthy, "b": StateDegraded, "c": StateFailing, "d": StatePaused, "e": StateRecovering} {
		tg := h.p.target(name)
		tg.State, tg.Suspended = state, name == "d"
	}
	h.p.mu.Unlock()
	for _, c := range []struct {
		limit int
		want  string
	}{
		{3, "[d c e]"},
		{4, "[d c e b]"},
		{5, "[a b c d e]"},
		{0, "[a b c d e]"},
	} {
		samples, counts, omitted := h.p.targetSamples(c.limit)
		var names []string
		for _, s := range samples {
			names = append(names, s.name)
		}
		if c.limit >= 5 || c.limit == 0 {
			slices.Sort(names) // every target, in no particular order
		}
		if fmt.Sprint(names) != c.want || omitted != 5-len(names) {
			t.Errorf("limit %d: series for %v (%d omitted), want %s", c.limit, names, omitted, c.want)
		}
		if counts[StateDegraded] != 1 || counts[StatePaused] != 1 || len(counts) != 5 {
			t.Errorf("limit %d: targets per state %v, want one in each of five", c.limit, counts)
		}
	}
}

// Alertmanager may never send an episode's resolve (send_resolved off, a lost notification):
// when the same alert fires again with a later startsAt, the earlier episode is over, so the
// target has one alert firing and only the later episode is healed.
func TestRefiringAlertEndsItsEarlierEpisode(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	if err := h.p.Pause("c1", 0, "maintenance"); err != nil {
		t.Fatal(err)
	}
	first := alert("ServiceMemoryHigh", "c1", "firing")
	again := first
	again.StartsAt = first.StartsAt.Add(10 * time.Minute)
	h.deliver(first)
	h.deliver(again)
	h.idle()
	if tv := h.p.TargetList(TargetPage{}).Targets; len(tv) != 1 || len(tv[0].Firing) != 1 {
		t.Fatalf("targets = %+v, want c1 with one alert firing", tv)
	}
	if err := h.p.Resume("c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(h.heals()) == 1 })
	h.idle()
	if hs := h.heals(); len(hs) != 1 || !hs[0].Alert.StartsAt.Equal(again.StartsAt) || len(h.runner.Calls()) != 1 {
		t.Fatalf("heals = %+v, calls %v; want one, of the later episode", hs, h.runner.Calls())
	}
}
