package loadtest

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Recovery is a stand-in for the demo services' recovery endpoints (POST /recover/{target}): it
// counts the calls the remediator's real http steps make, how many ran at once, and when each
// began, so tests judge the remediator from the outside.
type Recovery struct {
	// Delay is how long each call takes; Hang makes calls block until the caller gives up.
	Delay time.Duration
	Hang  bool
	// Notify, when set, receives each call's target as it arrives (never blocking the call).
	Notify chan string

	mu          sync.Mutex
	inFlight    int
	maxInFlight int
	starts      []time.Time
	perTarget   map[string]int
	release     chan struct{}
}

// Release ends every hanging call, now and later (before closing the server).
func (r *Recovery) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.release == nil {
		r.release = make(chan struct{})
	}
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *Recovery) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	target := strings.TrimPrefix(req.URL.Path, "/recover/")
	r.mu.Lock()
	if r.perTarget == nil {
		r.perTarget = map[string]int{}
	}
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	r.starts = append(r.starts, time.Now())
	r.perTarget[target]++
	if r.release == nil {
		r.release = make(chan struct{})
	}
	release := r.release
	r.mu.Unlock()
	if r.Notify != nil {
		select {
		case r.Notify <- target:
		default:
		}
	}
	defer func() {
		r.mu.Lock()
		r.inFlight--
		r.mu.Unlock()
	}()
	if r.Hang {
		select {
		case <-req.Context().Done():
		case <-release:
		}
		return
	}
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
		case <-req.Context().Done():
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Calls is the number of calls so far.
func (r *Recovery) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.starts)
}

// MaxInFlight is the most calls that ran at once.
func (r *Recovery) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}

// Starts returns when each call began, in order.
func (r *Recovery) Starts() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.starts...)
}

// PerTarget returns the calls per target.
func (r *Recovery) PerTarget() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.perTarget))
	for k, v := range r.perTarget {
		out[k] = v
	}
	return out
}

// MaxStartsInWindow returns the largest number of calls that began within any window of length d.
func MaxStartsInWindow(starts []time.Time, d time.Duration) int {
	best, lo := 0, 0
	for hi := range starts {
		for starts[hi].Sub(starts[lo]) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
