package pipeline

import (
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/remediator/store"
)

// A heal whose alert comes back within the relapse window (30m, the built-in default) is marked
// relapsed, keeping its result, and its success is taken back from the step's statistics; after
// the window, for the heal's own episode, or for an alert that started before the heal held,
// nothing is a relapse.
func TestRelapse(t *testing.T) {
	clock := newFakeClock(t0)
	h := newHarnessIn(t, t.TempDir(), playbooks(t, shortCooldown), quietProm(), newFakeRunner(), withClock(clock))
	episode := func(after time.Duration) template.Alert {
		a := alert("ServiceMemoryHigh", "c1", "firing")
		a.StartsAt = t0.Add(after)
		return a
	}
	relapsed := func() float64 { return testutil.ToFloat64(h.p.m.relapsed.WithLabelValues("memory-high")) }

	h.deliver(episode(0))
	h.idle()
	clock.advance(31 * time.Minute)
	h.deliver(episode(31 * time.Minute)) // the window of the first heal has closed
	h.idle()
	if got := relapsed(); got != 0 {
		t.Fatalf("alert after the window counted as a relapse: %v", got)
	}
	late := episode(30 * time.Minute) // started before the second heal: a late delivery
	cooled := h.counter("suppressed", ReasonCooldown)
	h.deliver(late)
	h.idle()
	if got := relapsed(); got != 0 || h.counter("suppressed", ReasonCooldown) != cooled+1 {
		t.Fatalf("an alert older than the heal counted as a relapse (%v), or was not decided", got)
	}
	late.Status = "resolved" // it waits out the cooldown; let it go before time moves
	h.deliver(late)
	h.idle()
	clock.advance(5 * time.Minute)
	back := episode(36 * time.Minute)
	h.deliver(back)
	h.idle()
	cooled = h.counter("suppressed", ReasonCooldown)
	h.deliver(back) // a repeat of the third heal's own episode
	h.idle()
	if h.counter("suppressed", ReasonCooldown) != cooled+1 {
		t.Fatal("the repeated delivery was not decided")
	}

	hs := h.heals() // newest first
	if len(hs) != 3 {
		t.Fatalf("heals = %+v", hs)
	}
	second, first := hs[1], hs[2]
	if first.Relapse != nil || hs[0].Relapse != nil {
		t.Errorf("relapse on the wrong heal: first %+v, third %+v", first.Relapse, hs[0].Relapse)
	}
	if r := second.Relapse; second.Result != store.HealHealed || r == nil || !r.At.Equal(t0.Add(36*time.Minute)) ||
		!r.Alert.StartsAt.Equal(back.StartsAt) || r.Alert.Name != "ServiceMemoryHigh" {
		t.Fatalf("second heal: result %s relapse %+v", second.Result, second.Relapse)
	}
	if got := relapsed(); got != 1 {
		t.Errorf("remediator_heals_relapsed_total = %v, want 1", got)
	}
	// Three successes of flush-cache, one taken back.
	key := statsKey("memory-high", "flush-cache", "ServiceMemoryHigh")
	h.p.mu.Lock()
	stats := h.p.stats[key]
	ratio, _ := weigh(stats, clock.Now(), halfLife(h.p.playbookByName("memory-high").Adaptive))
	h.p.mu.Unlock()
	if n := len(stats.Outcomes); n != 3 || ratio < 0.66 || ratio > 0.67 {
		t.Errorf("flush-cache statistics: ratio %.2f over %d, want 2/3 over 3", ratio, n)
	}
	if got := testutil.ToFloat64(h.p.m.successRatio.WithLabelValues("memory-high", "flush-cache", "ServiceMemoryHigh")); got != ratio {
		t.Errorf("remediator_step_success_ratio = %v, want %v", got, ratio)
	}
	// The relapse survives in the store, as the API shows it.
	stored, _, err := h.st.Heal(second.ID)
	if err != nil || stored.Relapse == nil {
		t.Errorf("stored heal has no relapse: %+v %v", stored, err)
	}
}
