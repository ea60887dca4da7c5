package faults

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/selfheal/selfheal/services/leak"
)

// leakBudget caps all leaks together.
type leakBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// take grants up to n bytes of what is left.
func (b *leakBudget) take(n int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.max > 0 {
		n = min(n, b.max-b.used)
	}
	b.used += max(n, 0)
	return n
}

func (b *leakBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// memoryLeak retains memory at a steady rate. The chunks are written to page by page, because
// memory that is allocated but never touched is not resident and would not show in RSS.
type memoryLeak struct {
	budget *leakBudget
	drip   leak.Drip

	mu     sync.Mutex
	chunks [][]byte
	bytes  int64
}

func newLeak(b *leakBudget) *memoryLeak { return &memoryLeak{budget: b} }

const leakTick = 100 * time.Millisecond

func (l *memoryLeak) start(rateMB float64) {
	chunk := int64(rateMB * (1 << 20) * leakTick.Seconds())
	l.drip.Start(leakTick, func(keep leak.Keep) { l.grow(chunk, keep) })
}

func (l *memoryLeak) grow(n int64, keep leak.Keep) {
	if n = l.budget.take(n); n <= 0 {
		return
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	kept := keep(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.chunks = append(l.chunks, b)
		l.bytes += n
	})
	if !kept { // stopped (or flushed) while this chunk was being made
		l.budget.give(n)
	}
}

func (l *memoryLeak) stop() { l.drip.Stop() }

func (l *memoryLeak) running() bool { return l.drip.Running() }

func (l *memoryLeak) size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// drop forgets the retained chunks and returns how many bytes they held.
func (l *memoryLeak) drop() int64 {
	l.mu.Lock()
	n := l.bytes
	l.chunks, l.bytes = nil, 0
	l.mu.Unlock()
	l.budget.give(n)
	return n
}

// freeOSMemory collects the dropped chunks and returns their pages to the kernel now rather
// than whenever the scavenger gets to them, so RSS falls where an operator can see it.
func freeOSMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
