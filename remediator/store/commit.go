package store

import (
	"errors"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by Accept after Close.
var ErrClosed = errors.New("store closed")

// maxGroup bounds one group commit so a burst cannot hold the writer for long.
const maxGroup = 1024

// acceptReq is one webhook delivery waiting for the commit that records it.
type acceptReq struct {
	entries []InboxEntry
	encoded [][]byte // entries as stored, encoded by the caller
	fresh   []bool
	done    chan error // buffered: the committer never blocks on an answer
}

// committer is the single goroutine behind Accept. It commits at once whatever deliveries are
// queued, in one transaction and one fsync; deliveries arriving meanwhile share the next commit.
// Unlike bbolt's Batch there is no timer, so a lone delivery pays for its commit only.
func (s *Store) committer() {
	defer close(s.commitDone)
	group := make([]*acceptReq, 0, 64)
	for {
		select {
		case <-s.quit:
			return
		case r := <-s.acceptCh:
			group = append(group[:0], r)
		}
	queued:
		for len(group) < maxGroup {
			select {
			case r := <-s.acceptCh:
				group = append(group, r)
			default:
				break queued
			}
		}
		s.commitGroup(group)
		clear(group)
	}
}

// commitGroup records all requests in one transaction. If that fails, each request is retried
// in its own transaction so that only the request at fault gets the error.
func (s *Store) commitGroup(group []*acceptReq) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, r := range group {
			if err := acceptTx(tx, r.entries, r.encoded, r.fresh); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(group) == 1 {
		for _, r := range group {
			r.done <- err
		}
		return
	}
	for _, r := range group {
		r.done <- s.db.Update(func(tx *bolt.Tx) error { return acceptTx(tx, r.entries, r.encoded, r.fresh) })
	}
}
