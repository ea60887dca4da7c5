package store

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// maxGroup bounds one group commit so a burst cannot hold the writer for long.
const maxGroup = 1024

// backgroundDelay is how long a background write (see ApplyLater) waits for a foreground one to
// share its commit with. Under load every commit carries both and no fsync is spent on the
// background writes alone; when idle, they are on disk this much later.
const backgroundDelay = 5 * time.Millisecond

// writeReq is one write waiting for the commit that holds it.
type writeReq struct {
	// fn does the write inside the shared transaction. It may run more than once (a failed
	// group is retried request by request), so it must start from a clean result each time.
	// Without fn, the request only asks for the intake log to be applied.
	fn         func(tx *bolt.Tx) error
	background bool
	// keys are the inbox and episode keys the write changes, and barrier says it changes
	// episodes not known in advance: deliveries touching them wait for it (see inboxIndex).
	keys    []string
	barrier bool
	queued  time.Time
	// logMark is the last log record handed to the committer when the write was queued: fn
	// runs after the records up to it are applied and before any later one, so that neither a
	// heal logged after a queued target write nor one logged before it is overwritten by the
	// older of the two.
	logMark uint64
	done    chan error // buffered: the committer never blocks on an answer
}

// queue holds the requests not yet taken by the goroutine that serves them, in the order they
// came.
type queue[T any] struct {
	mu     sync.Mutex
	reqs   []T
	closed bool
	wake   chan struct{} // buffered 1: there is something in reqs, or closed
}

func newQueue[T any]() queue[T] { return queue[T]{wake: make(chan struct{}, 1)} }

func (q *queue[T]) push(r T) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.reqs = append(q.reqs, r)
	q.signal()
	return nil
}

// signal wakes the server without blocking.
func (q *queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close refuses new requests and wakes the server to serve what is queued and stop.
func (q *queue[T]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// writeQueue holds the writes not yet taken by the committer: a write is committed in the same
// transaction as those queued before it, or after them.
type writeQueue struct{ queue[*writeReq] }

// take removes up to maxGroup queued writes. It leaves background-only queues younger than
// backgroundDelay in place and says how long until the oldest is due.
func (q *writeQueue) take(now time.Time, group []*writeReq) ([]*writeReq, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.reqs) == 0 {
		return group, 0
	}
	if !q.closed {
		foreground := false
		for _, r := range q.reqs {
			if !r.background {
				foreground = true
				break
			}
		}
		if wait := backgroundDelay - now.Sub(q.reqs[0].queued); !foreground && wait > 0 {
			return group, wait
		}
	}
	n := min(len(q.reqs), maxGroup)
	group = append(group, q.reqs[:n]...)
	clear(q.reqs[:n])
	q.reqs = q.reqs[n:]
	if len(q.reqs) > 0 {
		q.signal()
	}
	return group, 0
}

// update runs fn in the next group commit and returns once that commit is on disk (or failed).
// Every write of the store goes through the committer: the webhook's deliveries and the
// pipeline's decision records share one transaction and one fsync instead of queueing for
// bbolt's single writer one after the other, each paying its own.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return s.write(&writeReq{fn: fn, done: make(chan error, 1)})
}

// write queues r (with its keys unsettled until it commits) and waits for its commit.
func (s *Store) write(r *writeReq) error {
	if err := s.enqueue(r); err != nil {
		return err
	}
	return <-r.done
}

func (s *Store) enqueue(r *writeReq) error {
	r.logMark = s.log.handed.Load()
	s.index.unsettle(r)
	if err := s.queue.push(r); err != nil {
		s.index.settle(r)
		return err
	}
	return nil
}

// updateLater queues fn to ride along with the next foreground commit (or to be committed
// alone after backgroundDelay) and returns at once; done receives the result.
func (s *Store) updateLater(fn func(tx *bolt.Tx) error, keys []string) <-chan error {
	r := &writeReq{fn: fn, keys: keys, background: true, queued: time.Now(), done: make(chan error, 1)}
	if err := s.enqueue(r); err != nil {
		r.done <- err
	}
	return r.done
}

// committer is the single goroutine that writes. It commits at once whatever foreground
// requests are queued, in one transaction and one fsync; requests arriving meanwhile share the
// next commit. Unlike bbolt's Batch there is no timer on the webhook's path, so a lone delivery
// pays for its commit only. On Close it commits what is still queued, then stops.
func (s *Store) committer() {
	defer close(s.commitDone)
	group := make([]*writeReq, 0, 64)
	var timer *time.Timer
	for {
		var wait time.Duration
		group, wait = s.queue.take(time.Now(), group[:0])
		if len(group) > 0 {
			s.commitGroup(group)
			clear(group)
			continue
		}
		s.queue.mu.Lock()
		closed := s.queue.closed && len(s.queue.reqs) == 0
		s.queue.mu.Unlock()
		if closed {
			return
		}
		var due <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			due = timer.C
		}
		select {
		case <-s.queue.wake:
		case <-due:
		}
	}
}

// commitGroup runs all requests in one transaction, with the records the intake log holds
// (so a close finds the entry it drops). If that fails, each request is retried in its own
// transaction so that only the request at fault gets the error. The inbox index follows only
// what was committed.
func (s *Store) commitGroup(group []*writeReq) {
	s.applyWait.Store(false) // this commit applies what is logged so far
	err := s.commitWithLog(group)
	if err == nil || len(group) == 1 {
		s.index.end(err == nil, group)
		for _, r := range group {
			r.done <- err
		}
		return
	}
	for _, r := range group {
		err := s.commitWithLog([]*writeReq{r})
		s.index.end(err == nil, []*writeReq{r})
		r.done <- err
	}
}

// commitWithLog commits the group's writes in one transaction with the logged records not yet
// in the database, each write after the records logged before it was queued (logMark), then
// lets the log drop them. With nothing to apply, a group of apply-only requests commits nothing.
func (s *Store) commitWithLog(group []*writeReq) error {
	recs := s.log.unapplied()
	if applyOnly(group) && len(recs) == 0 {
		return nil
	}
	s.index.begin()
	err := s.db.Update(func(tx *bolt.Tx) error {
		packRecords(tx)
		next := 0
		for _, r := range group {
			if r.fn == nil {
				continue
			}
			n := next
			for n < len(recs) && recs[n].seq <= r.logMark {
				n++
			}
			if err := applyLog(tx, recs[next:n]); err != nil {
				return err
			}
			next = n
			if err := r.fn(tx); err != nil {
				return err
			}
		}
		return applyLog(tx, recs[next:])
	})
	if err != nil {
		return err
	}
	s.commits.Add(1)
	if len(recs) > 0 {
		if err := s.log.applied(len(recs), recs[len(recs)-1].seq); err != nil {
			s.logger.Error("cannot empty the intake log; it is replayed from where the state file says", "err", err)
		}
	}
	return nil
}

func applyOnly(group []*writeReq) bool {
	for _, r := range group {
		if r.fn != nil {
			return false
		}
	}
	return true
}

// packRecords lets the pages of targets and held-back alerts fill up before they split. bbolt
// splits a page at half full by default, right for keys that arrive in random order; but
// these records are mostly rewritten in place, and a fleet's targets first arrive in bursts of
// neighbouring names (mem-00001, mem-00002, ...), which would leave half of every page empty:
// pages that the memory-mapped file keeps resident when they are read.
func packRecords(tx *bolt.Tx) {
	for _, name := range [][]byte{bucketTargets, bucketHeldBack} {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = recordsFill
		}
	}
}

const recordsFill = 0.9
