package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/remediator/store"
)

// A heal start charges the rate limit in the store too: a pipeline built again on the same
// store holds the next heal back for the rest of the window, an alert it held back is still
// there after another restart (its inbox entry), and it heals once the window has passed.
func TestRateLimitSurvivesRestart(t *testing.T) {
	// One heal a minute, bucket of one: the window is a minute.
	yaml := playbooks(t, edit{"heals_per_minute: 1000", "heals_per_minute: 1"})
	dir := t.TempDir()
	clock := newFakeClock(t0)
	start := func() *harness { return newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner(), withClock(clock)) }
	deferred := func(h *harness) float64 { return testutil.ToFloat64(h.p.m.deferred.WithLabelValues(ReasonRateLimit)) }

	h := start()
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	if hs := h.heals(); len(hs) != 1 {
		t.Fatalf("first heal: %d heals", len(hs))
	}
	h.stop()

	clock.advance(10 * time.Second)
	h = start()
	h.deliver(alert("ServiceMemoryHigh", "c2", "firing"))
	waitFor(t, func() bool { return deferred(h) == 1 })
	if hs := h.heals(); len(hs) != 1 || len(h.runner.Calls()) != 0 {
		t.Fatalf("a heal started 10s after the last one, with a limit of one a minute: %d heals, calls %v", len(hs), h.runner.Calls())
	}
	h.stop()

	clock.advance(10 * time.Second)
	h = start()
	waitFor(t, func() bool { return deferred(h) == 1 }) // the held-back alert, decided again
	if hs := h.heals(); len(hs) != 1 {
		t.Fatalf("still inside the window: %d heals", len(hs))
	}
	clock.advance(time.Minute)
	h.p.kickDispatcher() // its timer waits on the real clock
	h.idle()
	hs := h.heals()
	if len(hs) != 2 || hs[0].Target != "c2" || hs[0].Result != store.HealHealed {
		t.Fatalf("after the window: %+v", hs)
	}
}

// The blast radius remembers across a restart which targets just had an alert; an alert it
// holds back is decided again, and heals, once the other targets no longer count.
func TestBlastRadiusSurvivesRestartAndLifts(t *testing.T) {
	yaml := playbooks(t, edit{"blast_radius: {max_targets: 0, max_ratio: 0}", "blast_radius: {max_targets: 1, max_ratio: 0, window: 1m}"})
	dir := t.TempDir()
	clock := newFakeClock(t0)
	start := func() *harness { return newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner(), withClock(clock)) }

	h := start()
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	h.stop()

	clock.advance(10 * time.Second)
	h = start()
	h.deliver(alert("ServiceMemoryHigh", "c2", "firing"))
	h.idle()
	if got := h.counter("suppressed", ReasonBlastRadius); got != 1 || len(h.heals()) != 1 {
		t.Fatalf("c1 failed 10s before the restart, c2 now, at most one at once: suppressed %v, %d heals", got, len(h.heals()))
	}
	// c1 still counts for half a minute more.
	clock.advance(30 * time.Second)
	time.Sleep(10 * h.p.tick)
	if len(h.heals()) != 1 {
		t.Fatalf("c2 healed while c1's alert is inside the window")
	}
	clock.advance(30 * time.Second)
	waitFor(t, func() bool { return len(h.heals()) == 2 })
	h.idle()
	if hs := h.heals(); hs[0].Target != "c2" || hs[0].Result != store.HealHealed {
		t.Fatalf("held-back c2 not healed once the guard lifted: %+v", hs[0])
	}
}

// A target held back by the blast radius keeps counting as failing while its alert fires, so
// two targets that keep failing together stay held back (as they would if Alertmanager sent
// them again), rather than being let through once their first alerts are old.
func TestBlastRadiusHoldsWhileTargetsStillFail(t *testing.T) {
	yaml := playbooks(t, edit{"blast_radius: {max_targets: 0, max_ratio: 0}", "blast_radius: {max_targets: 1, max_ratio: 0, window: 1m}"})
	clock := newFakeClock(t0)
	h := newHarnessIn(t, t.TempDir(), yaml, quietProm(), newFakeRunner(), withClock(clock))
	h.p.mu.Lock()
	h.p.blast.see("memory-high", "c0", t0) // a target failing just now
	h.p.mu.Unlock()
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"), alert("ServiceMemoryHigh", "c2", "firing"))
	h.idle()
	if got := h.counter("suppressed", ReasonBlastRadius); got != 2 {
		t.Fatalf("suppressed %v, want both held back", got)
	}
	for range 3 {
		clock.advance(time.Minute)
		time.Sleep(5 * h.p.tick)
	}
	if hs := h.heals(); len(hs) != 0 {
		t.Fatalf("healed %d targets while two keep failing together", len(hs))
	}
	// c2 recovers: c1 alone is failing now and heals.
	r := alert("ServiceMemoryHigh", "c2", "resolved")
	r.EndsAt = clock.Now()
	h.deliver(r)
	clock.advance(2 * time.Minute)
	waitFor(t, func() bool { return len(h.heals()) == 1 })
	if hs := h.heals(); hs[0].Target != "c1" {
		t.Fatalf("healed %s, want c1", hs[0].Target)
	}
}

// An alert held back by the cooldown is kept across a restart: the pipeline built again on the
// same store decides it when the cooldown ends, without Alertmanager sending it again. One whose
// alert resolved meanwhile is dropped, not acted on.
func TestHeldBackAlertSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(t0)
	start := func() *harness {
		return newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner(), withClock(clock))
	}
	episode := func(container string, at time.Duration) template.Alert {
		a := alert("ServiceMemoryHigh", container, "firing")
		a.StartsAt = t0.Add(at)
		return a
	}

	h := start()
	for _, c := range []string{"c1", "c2"} {
		h.deliver(episode(c, 0))
		h.idle()
		clock.advance(time.Second) // the rate limit runs on the fake clock too
	}
	// New episodes inside the one-hour cooldowns the heals started: held back.
	h.deliver(episode("c1", time.Minute), episode("c2", time.Minute))
	h.idle()
	if got := h.counter("suppressed", ReasonCooldown); got != 2 || len(h.heals()) != 2 {
		t.Fatalf("cooldown suppressed %v, %d heals", got, len(h.heals()))
	}
	resolved := episode("c2", time.Minute)
	resolved.Status = "resolved"
	h.deliver(resolved)
	h.idle()
	h.stop()

	clock.advance(2 * time.Hour)
	h = start()
	waitFor(t, func() bool { return len(h.heals()) == 3 })
	h.idle()
	hs := h.heals()
	if hs[0].Target != "c1" || !hs[0].Alert.StartsAt.Equal(t0.Add(time.Minute)) || hs[0].Alert.Labels["container"] != "c1" {
		t.Fatalf("heal after the restart: %+v", hs[0])
	}
	time.Sleep(10 * h.p.tick)
	if hs := h.heals(); len(hs) != 3 {
		t.Fatalf("the resolved c2 alert was acted on after the restart: %+v", hs[0])
	}
	if held, err := h.st.HeldBack(); err != nil || len(held) != 0 {
		t.Fatalf("held-back alerts left in the store: %+v %v", held, err)
	}
}
