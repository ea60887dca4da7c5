package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Accept records the alerts of one notification durably before the webhook answers, and tells
// for each whether it is new (true) or a repeat delivery of an episode already in progress
// (false). New alerts go to the intake log: concurrent deliveries share one append and one
// fdatasync (see logWriter), and Accept returns only once its alerts are on disk. A delivery of
// repeats only (Alertmanager's repeat_interval, its HA peers) is answered from the index
// without writing: what it repeats is on disk already.
func (s *Store) Accept(entries []InboxEntry) ([]bool, error) {
	for i := range entries {
		if entries[i].Key == "" || entries[i].EpisodeKey == "" {
			return nil, errors.New("inbox entry without a key or an episode key")
		}
	}
	if s.closing.Load() {
		return nil, ErrClosed
	}
	if s.index.repeats(entries) {
		return make([]bool, len(entries)), nil
	}
	// A decision or heal of one of these alerts is queued for the database: the answer depends
	// on it, so wait until it is committed, as if this delivery had queued behind it.
	if s.index.touches(entries) {
		if err := s.Flush(); err != nil {
			return nil, err
		}
	}
	// Encode in the caller's goroutine, concurrently with other deliveries, so the log writer
	// spends its time on the file only.
	r := &acceptReq{entries: entries, encoded: make([][]byte, len(entries)), fresh: make([]bool, len(entries)), done: make(chan error, 1)}
	for i := range entries {
		buf, err := json.Marshal(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("encode inbox entry %q: %w", entries[i].Key, err)
		}
		r.encoded[i] = buf
	}
	if err := s.intake.push(r); err != nil {
		return nil, err
	}
	if err := <-r.done; err != nil {
		return nil, err
	}
	return r.fresh, nil
}

// acceptReq is one delivery waiting for the log write that holds it, or one record of writes
// (writes set, encoded holding the record; see logWrites).
type acceptReq struct {
	entries []InboxEntry
	encoded [][]byte
	fresh   []bool
	writes  []bucketWrite
	synced  func()
	done    chan error
}

// intakeQueue holds the deliveries not yet taken by the log writer.
type intakeQueue struct{ queue[*acceptReq] }

// take removes up to maxGroup queued deliveries; done is true once closed and drained.
func (q *intakeQueue) take(group []*acceptReq) (_ []*acceptReq, done bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.reqs), maxGroup)
	group = append(group, q.reqs[:n]...)
	clear(q.reqs[:n])
	q.reqs = q.reqs[n:]
	return group, n == 0 && q.closed
}

// logWriter is the goroutine that writes the intake log. It takes every delivery queued,
// decides which alerts are new, appends them and syncs once for all, then publishes them to
// the index and answers. Deliveries arriving meanwhile share the next write; like the
// committer, it never waits for company, so a lone delivery pays for its own sync only.
func (s *Store) logWriter() {
	defer close(s.logDone)
	group := make([]*acceptReq, 0, 64)
	added := map[string]uint64{}
	var buf []byte
	var recs []logRecord
	for {
		var done bool
		group, done = s.intake.take(group[:0])
		if done {
			return
		}
		if len(group) == 0 {
			<-s.intake.wake
			continue
		}
		clear(added)
		buf, recs = buf[:0], recs[:0]
		s.index.mu.RLock()
		for _, r := range group {
			if r.writes != nil {
				seq := s.nextSeq
				s.nextSeq++
				buf = appendRecord(buf, seq, r.encoded[0])
				recs = append(recs, logRecord{seq: seq, value: r.encoded[0], writes: r.writes})
				continue
			}
			for i := range r.entries {
				e := &r.entries[i]
				if _, dup := added[e.Key]; dup || s.index.repeatLocked(e) {
					continue
				}
				seq := s.nextSeq
				s.nextSeq++
				added[e.Key] = seq
				r.fresh[i] = true
				buf = appendRecord(buf, seq, r.encoded[i])
				recs = append(recs, logRecord{seq: seq, key: e.Key, value: r.encoded[i]})
			}
		}
		s.index.mu.RUnlock()
		var err error
		if len(recs) > 0 && s.log.full() {
			err = s.Flush()
		}
		if err == nil && len(recs) > 0 {
			s.log.mu.Lock()
			err = s.log.write(buf, recs[len(recs)-1].seq)
			s.log.mu.Unlock()
			s.logSyncs.Add(1)
		}
		if err == nil && len(recs) > 0 {
			crashPoint("log-synced")
			// The committer has the records before anyone can ask it to close one of them.
			s.log.logged(recs)
			s.index.publish(added)
			for _, r := range group {
				if r.synced != nil {
					r.synced()
				}
			}
			s.applySoon()
		}
		for _, r := range group {
			if err != nil {
				clear(r.fresh)
			}
			r.done <- err
		}
		clear(group)
	}
}

// applySoon queues a background write, if none is queued, so that logged alerts reach the
// database with the next commit or after backgroundDelay.
func (s *Store) applySoon() {
	if s.applyWait.Swap(true) {
		return
	}
	r := &writeReq{background: true, queued: time.Now(), done: make(chan error, 1)} // no fn: apply only
	if s.queue.push(r) != nil {
		s.applyWait.Store(false)
	}
}

// applyLog moves logged records into the inbox bucket (alerts) or their buckets (writes)
// inside the committer's transaction and records the last one's sequence, so that Open replays
// only what follows it.
func applyLog(tx *bolt.Tx, recs []logRecord) error {
	if len(recs) == 0 {
		return nil
	}
	ib := tx.Bucket(bucketInbox)
	for _, r := range recs {
		if r.writes != nil {
			if err := applyWrites(tx, r.writes); err != nil {
				return err
			}
			continue
		}
		if err := ib.Put(seqKey(r.seq), r.value); err != nil {
			return err
		}
	}
	last := recs[len(recs)-1].seq
	if ib.Sequence() < last {
		if err := ib.SetSequence(last); err != nil {
			return err
		}
	}
	crashPoint("apply-tx")
	return tx.Bucket(bucketMeta).Put(keyAppliedSeq, seqKey(last))
}

// replayLog moves into the inbox bucket, at Open, the records the log holds beyond the last
// one applied; a crash came before the committer did.
func replayLog(tx *bolt.Tx, index *inboxIndex, records []logRecord, logger *slog.Logger) error {
	var applied uint64
	if v := tx.Bucket(bucketMeta).Get(keyAppliedSeq); len(v) == 8 {
		applied = binary.BigEndian.Uint64(v)
	}
	var replay []logRecord
	for _, r := range records {
		if r.seq <= applied {
			continue // already in the database: the log was not emptied before the crash
		}
		if len(r.value) > 0 && r.value[0] == recordWrites {
			ws, err := decodeWrites(r.value)
			if err != nil {
				logger.Error("dropping an unreadable intake log record", "seq", r.seq, "err", err)
				continue
			}
			replay = append(replay, logRecord{seq: r.seq, value: r.value, writes: ws})
			continue
		}
		var e struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(r.value, &e); err != nil || e.Key == "" {
			logger.Error("dropping an unreadable intake log record", "seq", r.seq, "err", err)
			continue
		}
		if _, dup := index.committed[e.Key]; dup {
			continue
		}
		index.committed[e.Key] = r.seq
		replay = append(replay, logRecord{seq: r.seq, key: e.Key, value: r.value})
	}
	if len(replay) > 0 {
		logger.Info("moved alerts from the intake log into the state file", "alerts", len(replay))
	}
	return applyLog(tx, replay)
}

// dropInbox removes an entry by its key, if it is there. Committer only.
func (s *Store) dropInbox(tx *bolt.Tx, key string) error {
	seq, ok := s.index.lookup(key)
	if !ok {
		return nil
	}
	s.index.remove(key)
	return tx.Bucket(bucketInbox).Delete(seqKey(seq))
}

// loadInbox rebuilds the index from the inbox bucket at Open, and moves entries of files
// written by older versions (keyed by episode and status) to sequence keys, oldest first. An
// entry that cannot be read is dropped with an error in the log: one lost alert (Alertmanager
// repeats it) is better than moving aside the budgets and history that the rest of the file holds.
func loadInbox(tx *bolt.Tx, index *inboxIndex, logger *slog.Logger) error {
	ib := tx.Bucket(bucketInbox)
	type legacy struct {
		key []byte
		e   InboxEntry
		v   []byte
	}
	var old []legacy
	var bad [][]byte
	err := ib.ForEach(func(k, v []byte) error {
		if len(k) != 8 {
			var le InboxEntry
			if err := json.Unmarshal(v, &le); err != nil || le.Key == "" {
				logger.Error("dropping an unreadable inbox entry", "key", string(k), "err", err)
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			old = append(old, legacy{key: append([]byte(nil), k...), e: le, v: append([]byte(nil), v...)})
			return nil
		}
		var e struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(v, &e); err != nil || e.Key == "" {
			logger.Error("dropping an unreadable inbox entry", "seq", binary.BigEndian.Uint64(k), "err", err)
			bad = append(bad, append([]byte(nil), k...))
			return nil
		}
		index.committed[e.Key] = binary.BigEndian.Uint64(k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range bad {
		if err := ib.Delete(k); err != nil {
			return err
		}
	}
	sort.SliceStable(old, func(i, j int) bool { return old[i].e.ReceivedAt.Before(old[j].e.ReceivedAt) })
	for _, l := range old {
		seq, err := ib.NextSequence()
		if err != nil {
			return err
		}
		if err := ib.Delete(l.key); err != nil {
			return err
		}
		if err := ib.Put(seqKey(seq), l.v); err != nil {
			return err
		}
		index.committed[l.e.Key] = seq
	}
	return nil
}

// loadEpisodes puts the episodes that change later deliveries (acting and resolved) in the
// index at Open. A record that cannot be read means "decide anew", as it did when read at intake.
func loadEpisodes(tx *bolt.Tx, index *inboxIndex) error {
	return tx.Bucket(bucketEpisodes).ForEach(func(k, v []byte) error {
		var ep Episode
		if json.Unmarshal(v, &ep) != nil {
			return nil
		}
		if st := stateOf(ep.State); st != episodeNone {
			index.states[string(k)] = st
		}
		return nil
	})
}

// Inbox lists accepted alerts not yet decided, in the order they were accepted: after a
// restart they are decided again.
func (s *Store) Inbox() ([]InboxEntry, error) {
	if err := s.Flush(); err != nil { // move what the log holds into the database first
		return nil, err
	}
	var out []InboxEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			var e InboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("inbox entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Episode reads an episode's state.
func (s *Store) Episode(key string) (Episode, bool, error) {
	var ep Episode
	var ok bool
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		var err error
		ok, err = getLogged(tx, logged, bucketEpisodes, []byte(key), &ep)
		return err
	})
	return ep, ok, err
}

// closeEpisode records how the episode ended and removes the inbox entry that it closes. Only
// two ends change what later deliveries get: acting (a heal started; set by NewHeal) and
// resolved. A done or suppressed episode is decided anew when delivered again, exactly like one
// never seen, so its record is deleted rather than written: deciding an alert then costs no
// write on the episodes' pages, which are as scattered as the fingerprints.
func (s *Store) closeEpisode(tx *bolt.Tx, episodeKey, inboxKey string, ep Episode) error {
	if episodeKey != "" {
		eb := tx.Bucket(bucketEpisodes)
		s.index.setEpisode(episodeKey, stateOf(ep.State))
		switch {
		case ep.State == EpisodeResolved || ep.State == EpisodeActing:
			if err := put(eb, []byte(episodeKey), ep); err != nil {
				return err
			}
		case eb.Get([]byte(episodeKey)) != nil:
			if err := eb.Delete([]byte(episodeKey)); err != nil {
				return err
			}
		}
	}
	if inboxKey == "" {
		return nil
	}
	return s.dropInbox(tx, inboxKey)
}

// Close is one buffered end of a decision: the episode's new state and its inbox entry removed
// (or, with DropOnly, just the inbox entry).
type Close struct {
	EpisodeKey string
	InboxKey   string
	State      string
	DropOnly   bool
	At         time.Time
}

// Apply writes targets and closes decisions in one transaction and returns when it is on disk.
func (s *Store) Apply(targets []Target, closes []Close) error {
	fn, err := s.applyTx(targets, closes)
	if err != nil {
		return err
	}
	return s.write(&writeReq{fn: fn, keys: closeKeys(closes), done: make(chan error, 1)})
}

// closeKeys are the inbox and episode keys that closes change.
func closeKeys(closes []Close) []string {
	keys := make([]string, 0, 2*len(closes))
	for _, c := range closes {
		keys = append(keys, c.InboxKey)
		if !c.DropOnly {
			keys = append(keys, c.EpisodeKey)
		}
	}
	return keys
}

// ApplyLater is Apply without waiting: the writes ride along with the next webhook delivery's
// commit, so recording decisions costs the webhook no fsync of its own. Losing them in a crash
// is safe: the alerts are still in the inbox and are decided again. Later writes are committed
// with or after these, never before.
func (s *Store) ApplyLater(targets []Target, closes []Close) <-chan error {
	fn, err := s.applyTx(targets, closes)
	if err != nil {
		done := make(chan error, 1)
		done <- err
		return done
	}
	return s.updateLater(fn, closeKeys(closes))
}

// Flush returns once every write asked for before it is on disk.
func (s *Store) Flush() error {
	return s.update(func(*bolt.Tx) error { return nil })
}

func (s *Store) applyTx(targets []Target, closes []Close) (func(tx *bolt.Tx) error, error) {
	// Encode outside the writer, like Accept.
	encoded, err := encodeTargets(targets)
	if err != nil {
		return nil, err
	}
	closes = append([]Close(nil), closes...) // the caller reuses its buffer
	return func(tx *bolt.Tx) error {
		if err := putEncoded(tx.Bucket(bucketTargets), encoded); err != nil {
			return err
		}
		for _, c := range closes {
			if c.DropOnly {
				if err := s.dropInbox(tx, c.InboxKey); err != nil {
					return err
				}
				continue
			}
			if err := s.closeEpisode(tx, c.EpisodeKey, c.InboxKey, Episode{State: c.State, Updated: c.At}); err != nil {
				return err
			}
		}
		return nil
	}, nil
}
