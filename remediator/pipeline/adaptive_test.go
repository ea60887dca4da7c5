package pipeline

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/remediator/store"
)

func TestWeighDecays(t *testing.T) {
	at := func(ago ...time.Duration) []time.Time {
		out := make([]time.Time, len(ago))
		for i, a := range ago {
			out[i] = t0.Add(-a)
		}
		return out
	}
	for _, tc := range []struct {
		name           string
		stats          store.StepStats
		ratio, samples float64
	}{
		{"none", store.StepStats{}, 0, 0},
		{"fresh", store.StepStats{Outcomes: []bool{true, false}, At: at(0, 0)}, 0.5, 2},
		{"one half-life old weighs half", store.StepStats{Outcomes: []bool{false, false}, At: at(time.Hour, time.Hour)}, 0, 1},
		{"old failures, new success", store.StepStats{Outcomes: []bool{false, false, true}, At: at(2*time.Hour, 2*time.Hour, 0)}, 1 / 1.5, 1.5},
		{"outcome from the future counts whole", store.StepStats{Outcomes: []bool{true}, At: at(-time.Minute)}, 1, 1},
		{"undated outcome counts whole", store.StepStats{Outcomes: []bool{true, false}, At: at(time.Hour)}, 0.5 / 1.5, 1.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ratio, samples := weigh(tc.stats, t0, time.Hour)
			if math.Abs(ratio-tc.ratio) > 1e-9 || math.Abs(samples-tc.samples) > 1e-9 {
				t.Fatalf("weigh = %v over %v, want %v over %v", ratio, samples, tc.ratio, tc.samples)
			}
		})
	}
}

func TestTakeBackSuccess(t *testing.T) {
	st := store.StepStats{}
	addOutcome(&st, true, t0)
	addOutcome(&st, false, t0.Add(time.Minute))
	addOutcome(&st, true, t0.Add(2*time.Minute))
	takeBackSuccess(&st, t0.Add(3*time.Minute))
	if got := outcomesString(st); got != "ok@0 fail@1 fail@3" {
		t.Fatalf("after a relapse: %s", got)
	}
	// No success left to take back: the relapse is a failure of its own.
	none := store.StepStats{Outcomes: []bool{false}, At: []time.Time{t0}}
	takeBackSuccess(&none, t0.Add(time.Minute))
	if got := outcomesString(none); got != "fail@0 fail@1" {
		t.Fatalf("relapse without a success: %s", got)
	}
	// At most statsKept outcomes are kept, their times with them.
	for i := range statsKept + 5 {
		addOutcome(&st, i%2 == 0, t0.Add(time.Duration(10+i)*time.Minute))
	}
	if len(st.Outcomes) != statsKept || len(st.At) != statsKept || !st.At[0].Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("kept %d outcomes, %d times, oldest %s", len(st.Outcomes), len(st.At), st.At[0])
	}
}

// outcomesString shows outcomes with their minutes after t0.
func outcomesString(st store.StepStats) string {
	var parts []string
	for i, ok := range st.Outcomes {
		s := "fail"
		if ok {
			s = "ok"
		}
		if i >= len(st.At) {
			parts = append(parts, s+"@undated")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s@%d", s, st.At[i].Sub(t0)/time.Minute))
	}
	return strings.Join(parts, " ")
}

// A step that keeps failing is skipped, tried again on every third decision (even across a
// restart, since the skips are stored), and runs again on its own once its failures have faded
// over a few half-lives; the heal record and a counter say when it was an exploration.
func TestAdaptiveStepRecovers(t *testing.T) {
	yaml := playbooks(t, shortCooldown, budgetOf(100), edit{"  step_timeout: 2s\n",
		"  step_timeout: 2s\n  adaptive: {enabled: true, min_samples: 3, min_success_ratio: 0.5, half_life: 1h, explore_every: 3}\n"})
	dir := t.TempDir()
	clock := newFakeClock(t0)
	runner := newFakeRunner()
	runner.fail["flush-cache"] = true
	h := newHarnessIn(t, dir, yaml, quietProm(), runner, withClock(clock))
	episode := 0
	heal := func() store.Heal {
		t.Helper()
		episode++
		a := alert("ServiceMemoryHigh", "c1", "firing")
		a.StartsAt = t0.Add(time.Duration(episode) * time.Minute)
		h.deliver(a)
		h.idle()
		clock.advance(time.Minute)
		hs := h.heals()
		if len(hs) != episode {
			t.Fatalf("%d heals after %d alerts", len(hs), episode)
		}
		return hs[0]
	}
	explorations := func() float64 {
		return testutil.ToFloat64(h.p.adaptive.explorations.WithLabelValues("memory-high", "flush-cache"))
	}
	for i := range 3 {
		if got := steps(heal()); got != "flush-cache=failed;restart=succeeded;" {
			t.Fatalf("heal %d: %s, want flush-cache tried while samples are few", i+1, got)
		}
	}
	for i := range 2 {
		hl := heal()
		if got := steps(hl); got != "flush-cache=skipped;restart=succeeded;" {
			t.Fatalf("skip %d: %s", i+1, got)
		}
		if !strings.Contains(hl.Steps[0].Reason, "success ratio 0.00 over 2.9 weighted heals is below 0.50") {
			t.Fatalf("skip reason %q", hl.Steps[0].Reason)
		}
	}

	// The two skips survive a restart: the next decision is the third, an exploration.
	h.stop()
	h = newHarnessIn(t, dir, yaml, quietProm(), runner, withClock(clock))
	hl := heal()
	if got := steps(hl); got != "flush-cache=failed;restart=succeeded;" {
		t.Fatalf("third decision after two skips: %s, want an exploration", got)
	}
	if !strings.Contains(hl.Steps[0].Exploration, "tried anyway after 2 skips (explore_every 3)") {
		t.Fatalf("exploration not on the heal record: %+v", hl.Steps[0])
	}
	if explorations() != 1 {
		t.Fatalf("explorations counted %v, want 1", explorations())
	}

	// The step works again, but its four failures still weigh: skipped.
	runner.fail["flush-cache"] = false
	if got := steps(heal()); got != "flush-cache=skipped;restart=succeeded;" {
		t.Fatalf("after the exploration: %s", got)
	}
	// Two half-lives on, four failures weigh one: too few to judge, so it runs, and heals.
	clock.advance(2 * time.Hour)
	if hl := heal(); steps(hl) != "flush-cache=succeeded;" || hl.Steps[0].Exploration != "" {
		t.Fatalf("after the failures faded: %s %+v", steps(hl), hl.Steps)
	}
	if explorations() != 1 {
		t.Fatalf("a step run because the record faded counted as an exploration")
	}
	ratio := testutil.ToFloat64(h.p.m.successRatio.WithLabelValues("memory-high", "flush-cache", "ServiceMemoryHigh"))
	if ratio < 0.5 || ratio > 0.6 {
		t.Fatalf("success ratio %v: the fresh success should outweigh four faded failures", ratio)
	}
}

// A state file written before outcomes had times loads; its outcomes are dated at the restart
// and fade from there.
func TestOlderStatsLoadAndFade(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := statsKey("memory-high", "flush-cache", "ServiceMemoryHigh")
	if err := st.PutStepStats(key, store.StepStats{Outcomes: []bool{false, false, true}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	clock := newFakeClock(t0)
	h := newHarnessIn(t, dir, playbooks(t), quietProm(), newFakeRunner(), withClock(clock))
	h.p.mu.Lock()
	loaded := h.p.stats[key]
	h.p.mu.Unlock()
	if got := outcomesString(loaded); got != "fail@0 fail@0 ok@0" {
		t.Fatalf("loaded %s", got)
	}
	if _, samples := weigh(loaded, t0.Add(24*time.Hour), 24*time.Hour); math.Abs(samples-1.5) > 1e-9 {
		t.Fatalf("a day later the three outcomes weigh %v, want 1.5", samples)
	}
}

// recordOutcome is the one way an outcome reaches the statistics: a relapse turns the heal's
// success into a failure, in memory, in the store and in the ratio metric.
func TestRecordOutcomeRelapse(t *testing.T) {
	clock := newFakeClock(t0)
	h := newHarnessIn(t, t.TempDir(), playbooks(t), quietProm(), newFakeRunner(), withClock(clock))
	h.p.mu.Lock()
	h.p.recordOutcome("memory-high", "restart", "ServiceMemoryHigh", stepHealed, t0)
	h.p.recordOutcome("memory-high", "restart", "ServiceMemoryHigh", stepHealed, t0)
	h.p.recordOutcome("memory-high", "restart", "ServiceMemoryHigh", stepRelapsed, t0)
	h.p.mu.Unlock()
	// The store writes the statistics behind the decision, in the order they were queued.
	waitFor(t, func() bool {
		stored, err := h.st.StepStats()
		if err != nil {
			t.Fatal(err)
		}
		return outcomesString(stored[statsKey("memory-high", "restart", "ServiceMemoryHigh")]) == "ok@0 fail@0"
	})
	if r := testutil.ToFloat64(h.p.m.successRatio.WithLabelValues("memory-high", "restart", "ServiceMemoryHigh")); r != 0.5 {
		t.Fatalf("success ratio %v, want 0.5", r)
	}
}
