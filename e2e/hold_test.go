package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

// The scenarios of this file prove what "healed" means since the hold: a step counts only after
// the target stayed healthy for verify.stable_for, a fault back within the hold fails the step,
// and an alert back within the relapse window marks the heal relapsed.

const (
	// refillRateMB and refillRatio bring a flushed target back above the warning threshold (80%)
	// within a few seconds, well inside a 15s hold, and stay below the critical one, so the
	// memory never nears the OOM kill.
	refillRateMB = "64"
	refillRatio  = 0.86
	// gapSeconds is how long each start of the scrape-gap scenario's container is partitioned:
	// long enough for the alert's series to go stale, shorter than ServiceDown's `for:` (15s), so
	// the gap is seen by the hold and by no other playbook.
	gapSeconds = 7
)

// stepVerify returns the verification the remediator runs for a step of a playbook, from the
// playbook file the stack runs (loading fills in what a step leaves to its playbook).
func (s *stack) stepVerify(t *testing.T, playbook, step string) config.Verify {
	t.Helper()
	for _, pb := range s.playbooks.Playbooks {
		if pb.Name != playbook {
			continue
		}
		for i, st := range pb.Steps {
			if st.Name == step || config.DefaultStepName(i, st.Action()) == step {
				return st.Verify
			}
		}
	}
	t.Fatalf("the playbooks have no step %s in playbook %s", step, playbook)
	return config.Verify{}
}

// promRange is a range query from..to at the evaluation interval.
func promRange(from, to time.Time) promv1.Range {
	return promv1.Range{Start: from, End: to, Step: promEvalInterval}
}

// waitState waits until the remediator shows target in state and returns when it first saw it.
func (s *stack) waitState(t *testing.T, target, state string, timeout time.Duration) (time.Time, bool) {
	var at time.Time
	ok := testutil.Poll(timeout, 200*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts, err := fetchTargets(ctx, s.remURL)
		if err != nil {
			return false
		}
		for _, tv := range ts {
			if tv.Name == target && tv.State == state {
				at = time.Now()
				return true
			}
		}
		return false
	})
	return at, ok
}

// samples returns the raw samples of a selector (one series) from..to, as Prometheus stored them:
// their timestamps are the scrapes'.
func (s *stack) samples(t *testing.T, selector string, from, to time.Time) []model.SamplePair {
	t.Helper()
	window := to.Sub(from).Round(time.Second) + time.Second
	q := fmt.Sprintf("%s[%ds]", selector, int(window.Seconds()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := s.prom.Query(ctx, q, to)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		t.Fatalf("query %s: %s, not a matrix", q, v.Type())
	}
	if len(m) != 1 {
		t.Fatalf("query %s: %d series, want 1: %v", q, len(m), m)
	}
	return m[0].Values
}

// 10. A fix that does not hold: the flush frees the memory and the alert stops firing, but the
// leak comes back as soon as the target is stabilizing (the test leaks again). The alert is
// pending within the hold: the flush is not credited (flapped), and the playbook escalates to
// the restart, which holds.
func flapDuringHold(t *testing.T, s *stack, tl *timeline) {
	c := cUser
	before, startTime := inspect(t, c), s.processStart(t, c)
	tl.Injected = s.fillMemory(t, c, "flushable")

	// The fault comes back the moment the flush is being held.
	refilled := make(chan time.Time, 1)
	go func() {
		defer close(refilled)
		at, ok := s.waitState(t, c, "stabilizing", fireTimeout+healTimeout)
		if !ok {
			t.Errorf("%s never showed stabilizing", c)
			return
		}
		t.Logf("%s %s stabilizing: leaking again", clock(at), c)
		refilled <- s.fillMemoryTo(t, c, "flushable", refillRateMB, refillRatio)
	}()
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	refill, ok := <-refilled
	if !ok {
		t.FailNow()
	}

	flush, ok := h.step("flush-cache")
	switch {
	case !ok:
		t.Fatalf("the flush did not run: %s", h)
	case flush.Outcome != "failed" || flush.Reason != "flapped":
		t.Errorf("flush-cache ended %s (%s), want failed (flapped): the leak came back %.1fs into its hold",
			flush.Outcome, flush.Reason, refill.Sub(flush.StabilizingSince).Seconds())
	case flush.StabilizingSince.IsZero() || refill.Before(flush.StabilizingSince):
		t.Errorf("flush-cache's hold began at %s, the leak came back at %s: not within the hold",
			clock(flush.StabilizingSince), clock(refill))
	}
	// The old check, the alert no longer firing, passed: the step's hold began. What the hold
	// saw came before the heal was credited.
	restart, ok := h.step("restart")
	if !ok || restart.Outcome != "succeeded" {
		t.Errorf("want the restart to heal %s after the flap, ran %v", c, ranActions(h))
	}
	if len(h.Steps) > 0 && h.Steps[len(h.Steps)-1].Name != "restart" {
		t.Errorf("the heal went past the restart: %s", h)
	}
	assertRestarted(t, s, c, before, startTime)
	if r := s.memoryRatio(t, c); r > 0.5 {
		t.Errorf("%s memory still at %.0f%% of its limit after the restart", c, r*100)
	}
	tl.Note = fmt.Sprintf("flush held from %s, leak back at %s, flapped at %s; restart healed (seconds after injection)",
		tl.since(flush.StabilizingSince), tl.since(refill), tl.since(flush.End))
}

// 11. A restart whose scrape gap would have passed the old check. Every start of this
// container begins with a short partition (its environment), so after the restart Prometheus
// cannot scrape it: its memory series go stale and the alert is gone while the target is down.
// The old check (the alert no longer firing) passes in the gap; the heal is verified only after
// the target was scraped healthy for the whole hold.
func scrapeGap(t *testing.T, s *stack, tl *timeline) {
	c := cGap
	s.addService(t, &service{Container: c, Service: "catalog-service", Port: s.addrs.Ports[c], Heal: true,
		Env: map[string]string{"FAULTS": fmt.Sprintf("partition:%d", gapSeconds)}})
	defer s.removeContainer(c)
	s.waitTargetsUp(t, time.Minute)

	tl.Injected = s.fillMemory(t, c, "unflushable")
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	restart, ok := h.step("restart")
	if !ok || restart.Outcome != "succeeded" || restart.StabilizingSince.IsZero() {
		t.Fatalf("want the restart to heal %s, with its hold: %s", c, h)
	}
	hold := time.Duration(s.stepVerify(t, h.Playbook, restart.Name).StableFor)

	// The gap, from the scrapes Prometheus stored: the last failed one after the restart began,
	// and the first good one after it.
	ups := s.samples(t, fmt.Sprintf(`up{container=%q}`, c), restart.Start.Add(-10*time.Second), h.Ended)
	var lastDown, firstUp time.Time
	for _, p := range ups {
		at := p.Timestamp.Time()
		if at.Before(restart.Start) {
			continue
		}
		switch {
		case p.Value == 0:
			lastDown, firstUp = at, time.Time{}
		case !lastDown.IsZero() && firstUp.IsZero():
			firstUp = at
		}
	}
	if lastDown.IsZero() {
		t.Fatalf("no failed scrape of %s after the restart began at %s: there was no gap to prove anything with; up: %v",
			c, clock(restart.Start), ups)
	}
	if firstUp.IsZero() {
		t.Fatalf("%s was not scraped healthy after its gap (last failed scrape %s) before the heal was verified at %s",
			c, clock(lastDown), clock(h.Ended))
	}

	// The old check would have passed in the gap: a moment when the target was down and no
	// firing series of the alert was there.
	gap := fmt.Sprintf(`up{container=%q} == 0 unless on(container) ALERTS{alertname="ServiceMemoryHigh",alertstate="firing",container=%q}`, c, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := s.prom.QueryRange(ctx, gap, promRange(restart.Start, firstUp))
	if err != nil {
		t.Fatalf("query %s: %v", gap, err)
	}
	var passedOld time.Time
	if m, ok := v.(model.Matrix); ok && len(m) > 0 && len(m[0].Values) > 0 {
		passedOld = m[0].Values[0].Timestamp.Time()
	}
	if passedOld.IsZero() {
		t.Errorf("the alert kept firing through %s's scrape gap (%s to %s): the old check would not have passed in it",
			c, clock(restart.Start), clock(firstUp))
	}

	// The new one: healed only once the target was scraped healthy for the hold.
	if d := h.Ended.Sub(firstUp); d < hold {
		t.Errorf("verified %.1fs after the first healthy scrape (%s), want at least the hold, %s",
			d.Seconds(), clock(firstUp), hold)
	}
	if !restart.StabilizingSince.Before(firstUp) {
		t.Logf("the restart's checks passed at %s, after the gap ended (%s)", clock(restart.StabilizingSince), clock(firstUp))
	}
	tl.Note = fmt.Sprintf("restart at %s; scrapes failed until %s, the alert gone and the target down from %s "+
		"(the old check passes); checks passed at %s; first healthy scrape %s; verified %s, %.1fs after it (hold %s)",
		tl.since(restart.Start), tl.since(lastDown), tl.since(passedOld), tl.since(restart.StabilizingSince),
		tl.since(firstUp), tl.since(h.Ended), h.Ended.Sub(firstUp).Seconds(), hold)
}

// 12. A relapse after a verified heal: the flush heals the leak and holds, then the leak comes
// back within the relapse window. The heal keeps its result and gains its relapse, and
// remediator_heals_relapsed_total counts it; the new alert is healed again.
func relapseAfterHeal(t *testing.T, s *stack, tl *timeline) {
	c := cUser
	relapsedBefore := s.relapsedTotal(t, "memory-high")
	tl.Injected = s.fillMemory(t, c, "flushable")
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	if acted := ranActions(h); len(acted) != 1 || !strings.Contains(acted[0], ":http=succeeded") {
		t.Errorf("want the flush alone to heal, ran %v", acted)
	}
	window := time.Duration(s.stepVerify(t, h.Playbook, "flush-cache").RelapseWindow)

	back := s.fillMemory(t, c, "flushable")
	if back.Sub(h.Ended) >= window {
		t.Fatalf("the leak came back %s after the heal, outside the relapse window %s", back.Sub(h.Ended), window)
	}
	var got heal
	if !testutil.Poll(fireTimeout, poll, func() bool {
		got = s.healByID(t, c, h.ID)
		return got.Relapse != nil
	}) {
		t.Fatalf("heal %s of %s not marked relapsed after its alert came back: %s", h.ID, c, got)
	}
	if got.Result != "healed" {
		t.Errorf("the relapsed heal's result changed to %s, want it kept as healed", got.Result)
	}
	if r := got.Relapse; r.At.Before(back) || r.Alert.Name != "ServiceMemoryHigh" || r.Alert.StartsAt.Before(h.Ended) {
		t.Errorf("relapse %+v: want ServiceMemoryHigh, started after the heal ended (%s) and seen after the leak came back (%s)",
			*r, clock(h.Ended), clock(back))
	}
	if !testutil.Poll(30*time.Second, poll, func() bool { return s.relapsedTotal(t, "memory-high") > relapsedBefore }) {
		t.Errorf("remediator_heals_relapsed_total{playbook=\"memory-high\"} stayed at %.0f", relapsedBefore)
	}
	// The new alert is decided as any other: healed again, after the cooldown.
	h2 := s.waitHeal(t, c, h.Ended, healTimeout)
	t.Logf("%s", h2)
	if h2.ID == h.ID || h2.Result != "healed" {
		t.Errorf("the relapse was not healed again: %s", h2)
	}
	s.alerts.waitAllGone(t, "ServiceMemoryHigh", map[string]string{"container": c}, back, resolveTimeout)
	tl.Note = fmt.Sprintf("leak back %.1fs after the heal; relapse recorded %.1fs after the heal; healed again at %s (seconds after injection)",
		back.Sub(h.Ended).Seconds(), got.Relapse.At.Sub(h.Ended).Seconds(), tl.since(h2.Ended))
}

// relapsedTotal reads remediator_heals_relapsed_total for a playbook from the remediator itself.
func (s *stack) relapsedTotal(t *testing.T, playbook string) float64 {
	v, _ := testutil.Sample(testutil.Scrape(t, s.remURL+"/metrics"), "remediator_heals_relapsed_total", map[string]string{"playbook": playbook})
	return v
}

// healByID returns one heal of the target's history.
func (s *stack) healByID(t *testing.T, target, id string) heal {
	for _, h := range s.heals(t, target) {
		if h.ID == id {
			return h
		}
	}
	t.Fatalf("heal %s of %s is gone from the history", id, target)
	return heal{}
}
