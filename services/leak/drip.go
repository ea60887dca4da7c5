// Package leak holds what every leak fault of the demo services shares: a drip that takes one
// more thing (a chunk of memory, a database connection) at a steady rate until it is stopped,
// and never keeps what it took after a stop it raced with.
package leak

import (
	"sync"
	"time"
)

// Drip runs a step every interval while it is started. Its zero value is stopped and ready.
type Drip struct {
	mu   sync.Mutex
	stop chan struct{} // nil while stopped; a new one for each Start
}

// Keep runs keep, which records what a step took, only if the drip has not been stopped or
// restarted since that step began; it reports whether keep ran. A step that gets false must
// give back what it took: its owner already counted itself stopped (a flush or a reset that
// released everything must not see one more chunk or connection turn up afterwards).
type Keep func(keep func()) bool

// Start stops a drip already running and begins a new one that calls step every interval.
func (d *Drip) Start(interval time.Duration, step func(Keep)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
	stop := make(chan struct{})
	d.stop = stop
	keep := func(keep func()) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.stop != stop {
			return false
		}
		keep()
		return true
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				step(keep)
			}
		}
	}()
}

// Stop ends the drip; what it took so far is its owner's to keep or give back.
func (d *Drip) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopLocked()
}

func (d *Drip) stopLocked() {
	if d.stop != nil {
		close(d.stop)
		d.stop = nil
	}
}

// Running reports whether the drip is started.
func (d *Drip) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stop != nil
}
