package faults

import (
	"math"
	"sync/atomic"
	"time"
)

// burner keeps ceil(cores) goroutines busy; each spins for its share of every slice and sleeps
// for the rest, so fractional cores burn fractionally.
type burner struct{ done chan struct{} }

const burnSlice = 10 * time.Millisecond

func startBurner(cores float64) *burner {
	b := &burner{done: make(chan struct{})}
	n := int(math.Ceil(cores))
	duty := cores / float64(n)
	for range n {
		go b.spin(duty)
	}
	return b
}

func (b *burner) spin(duty float64) {
	busy := time.Duration(duty * float64(burnSlice))
	x := uint64(1)
	for {
		select {
		case <-b.done:
			return
		default:
		}
		end := time.Now().Add(busy)
		for time.Now().Before(end) {
			for range 1000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		sink.Store(x)
		if idle := burnSlice - busy; idle > 0 {
			time.Sleep(idle)
		}
	}
}

// sink keeps the compiler from removing the work.
var sink atomic.Uint64

// stop ends the burn; a nil burner has nothing to end.
func (b *burner) stop() {
	if b != nil {
		close(b.done)
	}
}
