package leak

import (
	"sync/atomic"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDripKeepsOnlyWhileRunning: steps run at the interval and what they take is kept; once
// stopped no step runs and a step that was under way cannot keep what it took.
func TestDripKeepsOnlyWhileRunning(t *testing.T) {
	var d Drip
	if d.Running() {
		t.Fatal("zero Drip is running")
	}
	var kept atomic.Int64
	taken := make(chan Keep, 1)
	d.Start(time.Millisecond, func(keep Keep) {
		if keep(func() { kept.Add(1) }) {
			select {
			case taken <- keep:
			default:
			}
		}
	})
	if !d.Running() {
		t.Fatal("not running after Start")
	}
	waitFor(t, "three steps kept", func() bool { return kept.Load() >= 3 })
	d.Stop()
	if d.Running() {
		t.Fatal("running after Stop")
	}
	time.Sleep(10 * time.Millisecond) // a step that was under way at Stop ends
	n := kept.Load()
	time.Sleep(20 * time.Millisecond)
	if got := kept.Load(); got != n {
		t.Errorf("%d steps kept after Stop", got-n)
	}
	if late := <-taken; late(func() { kept.Add(1) }) {
		t.Error("a step of a stopped drip kept what it took")
	}
}

// TestDripRestart: Start on a running drip ends the old run, whose steps can keep nothing more.
func TestDripRestart(t *testing.T) {
	var d Drip
	defer d.Stop()
	first := make(chan Keep, 1)
	d.Start(time.Millisecond, func(keep Keep) {
		select {
		case first <- keep:
		default:
		}
	})
	old := <-first
	var second atomic.Int64
	d.Start(time.Millisecond, func(keep Keep) { keep(func() { second.Add(1) }) })
	if old(func() {}) {
		t.Error("a step of the replaced run kept what it took")
	}
	waitFor(t, "the new run keeps", func() bool { return second.Load() > 0 })
}
