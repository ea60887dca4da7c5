package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Concurrent deliveries share commits, yet each gets its own answer: a delivery that cannot be
// stored fails alone, a repeat of the same episode is new exactly once, and everything answered
// with success is in the file after reopening.
func TestAcceptGroupCommit(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	const senders, rounds = 16, 20
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		shared   int
		failures int
	)
	for g := range senders {
		wg.Go(func() {
			for r := range rounds {
				if g == 0 && r%5 == 0 {
					// An empty key cannot be stored: this delivery must fail, and only it.
					if _, err := s.Accept([]InboxEntry{{ReceivedAt: time.Now()}}); err == nil {
						t.Error("delivery with an empty key accepted")
					}
					mu.Lock()
					failures++
					mu.Unlock()
					continue
				}
				fresh, err := s.Accept([]InboxEntry{entry(fmt.Sprintf("g%d-r%d", g, r), false), entry("shared", false)})
				if err != nil {
					t.Errorf("sender %d round %d: %v", g, r, err)
					continue
				}
				if !fresh[0] {
					t.Errorf("sender %d round %d: unique alert not new", g, r)
				}
				if fresh[1] {
					mu.Lock()
					shared++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if shared != 1 {
		t.Errorf("shared episode new %d times, want once", shared)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Accept([]InboxEntry{entry("late", false)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("accept after close: %v, want ErrClosed", err)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before Open, %d after Close", before, n)
	}

	s, inbox := reopen(t, dir)
	if want := senders*rounds - failures + 1; len(inbox) != want {
		t.Fatalf("inbox after reopen has %d entries, want %d", len(inbox), want)
	}
}

// A background write (ApplyLater) is not lost: Flush waits for it, Close commits it before the
// file closes, and a write asked for after it never lands before it.
func TestBackgroundWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept([]InboxEntry{entry("a", false), entry("b", false), entry("c", false)}); err != nil {
		t.Fatal(err)
	}
	done := s.ApplyLater([]Target{{Name: "t1"}}, []Close{{EpisodeKey: "a", InboxKey: "a", State: EpisodeSuppressed, At: time.Now()}})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("Flush returned before the background write before it was committed")
	}
	if got := inboxKeys(t, s); got != "b c" {
		t.Fatalf("inbox %q after the flushed close of a", got)
	}

	// Ordered: the later foreground write sees the background one's close of b.
	later := s.ApplyLater(nil, []Close{{EpisodeKey: "b", InboxKey: "b", State: EpisodeSuppressed, At: time.Now()}})
	fresh, err := s.Accept([]InboxEntry{entry("b", false)})
	if err != nil || !fresh[0] {
		t.Fatalf("b closed in the background before this delivery: fresh %v %v, want new", fresh, err)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}

	// Close commits what is still queued.
	last := s.ApplyLater([]Target{{Name: "t2"}}, []Close{{EpisodeKey: "c", InboxKey: "c", State: EpisodeResolved, At: time.Now()}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-last:
		if err != nil {
			t.Fatalf("background write queued before Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("background write queued before Close was never answered")
	}
	if err := <-s.ApplyLater(nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("background write after Close: %v, want ErrClosed", err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := inboxKeys(t, s); got != "b" {
		t.Fatalf("inbox after reopen %q, want only the second delivery of b", got)
	}
	if _, ok, _ := s.Target("t2"); !ok {
		t.Error("target written in the background before Close is missing after reopen")
	}
	if ep, ok, _ := s.Episode("c"); !ok || ep.State != EpisodeResolved {
		t.Errorf("episode c after reopen: %+v %v, want resolved", ep, ok)
	}
}

// reopen opens the store in dir, closed at the end of the test, and reads its inbox.
func reopen(t *testing.T, dir string) (*Store, []InboxEntry) {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	inbox, err := s.Inbox()
	if err != nil {
		t.Fatal(err)
	}
	return s, inbox
}

// A heal's start goes through the intake log, target writes through the committer: each must
// be stored in the order it was asked for, whichever path it took, or a target's older record
// overwrites its newer one.
func TestLoggedHealAndQueuedWritesKeepTheirOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Queued before the heal started, committed after it was logged.
	before := s.ApplyLater([]Target{{Name: "before", State: "degraded"}}, nil)
	h1 := &Heal{Target: "before", Result: HealRunning, Started: time.Now()}
	if err := s.NewHeal(h1, Target{Name: "before", State: "recovering"}, "ep-before"); err != nil {
		t.Fatal(err)
	}
	// Queued after the heal started.
	h2 := &Heal{Target: "after", Result: HealRunning, Started: time.Now()}
	if err := s.NewHeal(h2, Target{Name: "after", State: "recovering"}, "ep-after"); err != nil {
		t.Fatal(err)
	}
	after := s.ApplyLater([]Target{{Name: "after", State: "healthy"}}, nil)
	for _, done := range []<-chan error{before, after} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = reopen(t, dir)
	for name, want := range map[string]string{"before": "recovering", "after": "healthy"} {
		if got, ok, err := s.Target(name); err != nil || !ok || got.State != want {
			t.Errorf("target %s after reopening: %+v %v %v, want state %s", name, got, ok, err, want)
		}
	}
}

// Heals started and updated through the log read the same as committed ones, at once: by ID,
// in the history newest first, among the running ones, with their episode acting.
func TestLoggedHealsReadAtOnce(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := func(name string) *Heal {
		h := &Heal{Target: name, Result: HealRunning, Started: time.Now(), Steps: []StepRecord{}}
		if err := s.NewHeal(h, Target{Name: name, State: "recovering"}, "ep-"+name); err != nil {
			t.Fatal(err)
		}
		return h
	}
	a := start("a")
	a.Result, a.Ended = HealHealed, time.Now()
	if err := s.FinishHeal(a, Target{Name: "a"}, "ep-a", ""); err != nil { // committed
		t.Fatal(err)
	}
	b, c := start("b"), start("c")
	b.Steps = append(b.Steps, StepRecord{Name: "flush", Outcome: StepRunning})
	if err := s.UpdateHeal(b); err != nil {
		t.Fatal(err)
	}
	hs, err := s.Heals(HealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	if want := []string{c.ID, b.ID, a.ID}; fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("history %v, want %v newest first", ids, want)
	}
	if got, ok, err := s.Heal(b.ID); err != nil || !ok || len(got.Steps) != 1 {
		t.Errorf("heal %s: %+v %v %v, want its step", b.ID, got, ok, err)
	}
	running, err := s.RunningHeals()
	if err != nil || len(running) != 2 {
		t.Errorf("running heals %+v %v, want b and c", running, err)
	}
	if ep, ok, err := s.Episode("ep-c"); err != nil || !ok || ep.State != EpisodeActing || ep.HealID != c.ID {
		t.Errorf("episode of c: %+v %v %v, want acting", ep, ok, err)
	}
	if fresh, err := s.Accept([]InboxEntry{{Key: "k", EpisodeKey: "ep-c"}}); err != nil || fresh[0] {
		t.Errorf("delivery of an acting episode: fresh %v %v, want a repeat", fresh, err)
	}
}
