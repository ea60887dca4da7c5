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

	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	inbox, err := s.Inbox()
	if err != nil {
		t.Fatal(err)
	}
	if want := senders*rounds - failures + 1; len(inbox) != want {
		t.Fatalf("inbox after reopen has %d entries, want %d", len(inbox), want)
	}
}
