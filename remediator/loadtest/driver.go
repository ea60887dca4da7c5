package loadtest

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Client returns an HTTP client that keeps enough idle connections for conns concurrent
// senders, as Alertmanager's notifier does, and never goes through a proxy.
func Client(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Reply is the remediator's 202 body (intake.Result).
type Reply struct {
	Accepted     int `json:"accepted"`
	Resolved     int `json:"resolved"`
	Deduplicated int `json:"deduplicated"`
	Rejected     int `json:"rejected"`
}

// Delivery is what a Deliver run saw.
type Delivery struct {
	Sent      int
	Elapsed   time.Duration
	Statuses  map[int]int
	Errors    []error
	Latencies []time.Duration // sorted
	Replies   Reply           // summed over the 2xx answers
}

// Quantile returns the q-quantile (0..1) of the latencies.
func (d *Delivery) Quantile(q float64) time.Duration { return Quantile(d.Latencies, q) }

// Quantile returns the q-quantile of sorted durations (0 when empty).
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Deliver posts the bodies with the given number of concurrent senders, each taking the next
// body in order, and records every answer's status and latency.
func Deliver(post func(*http.Client, []byte) (int, string, error), bodies [][]byte, senders int) *Delivery {
	c := Client(senders)
	defer c.CloseIdleConnections()
	d := &Delivery{Statuses: map[int]int{}}
	var mu sync.Mutex
	next := make(chan []byte)
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Go(func() {
			for b := range next {
				t0 := time.Now()
				code, body, err := post(c, b)
				lat := time.Since(t0)
				var r Reply
				if err == nil && code/100 == 2 {
					_ = json.Unmarshal([]byte(body), &r)
				}
				mu.Lock()
				d.Sent++
				if err != nil {
					d.Errors = append(d.Errors, err)
				} else {
					d.Statuses[code]++
					d.Latencies = append(d.Latencies, lat)
					d.Replies.Accepted += r.Accepted
					d.Replies.Resolved += r.Resolved
					d.Replies.Deduplicated += r.Deduplicated
					d.Replies.Rejected += r.Rejected
				}
				mu.Unlock()
			}
		})
	}
	for _, b := range bodies {
		next <- b
	}
	close(next)
	wg.Wait()
	d.Elapsed = time.Since(start)
	slices.Sort(d.Latencies)
	return d
}

// add counts another Delivery's answers into d; the latencies stay unsorted until Interleave
// sorts them.
func (d *Delivery) add(o *Delivery) {
	d.Sent += o.Sent
	d.Elapsed += o.Elapsed
	for code, n := range o.Statuses {
		d.Statuses[code] += n
	}
	d.Errors = append(d.Errors, o.Errors...)
	d.Latencies = append(d.Latencies, o.Latencies...)
	d.Replies.Accepted += o.Replies.Accepted
	d.Replies.Resolved += o.Replies.Resolved
	d.Replies.Deduplicated += o.Replies.Deduplicated
	d.Replies.Rejected += o.Replies.Rejected
}

// Interleave delivers the bodies to every receiver, a slice of them at a time, taking the
// receivers in turn (and a different one first each round), so that a change in the machine's
// load falls on all of them alike instead of on whichever ran then. It returns one Delivery per
// receiver; each has had every body once.
func Interleave(posts []func(*http.Client, []byte) (int, string, error), bodies [][]byte, senders, rounds int) []*Delivery {
	out := make([]*Delivery, len(posts))
	for i := range out {
		out[i] = &Delivery{Statuses: map[int]int{}}
	}
	per := (len(bodies) + rounds - 1) / rounds
	for r := 0; r*per < len(bodies); r++ {
		slice := bodies[r*per : min((r+1)*per, len(bodies))]
		for k := range posts {
			i := (k + r) % len(posts)
			out[i].add(Deliver(posts[i], slice, senders))
		}
	}
	for _, d := range out {
		slices.Sort(d.Latencies)
	}
	return out
}
