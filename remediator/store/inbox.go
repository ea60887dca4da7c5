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
// (false). Concurrent deliveries share one commit and one fsync (see committer); Accept returns
// only after the commit holding its alerts is on disk. A delivery of repeats only (Alertmanager's
// repeat_interval, its HA peers) is answered from the index without a commit: what it repeats
// is on disk already.
func (s *Store) Accept(entries []InboxEntry) ([]bool, error) {
	if !s.closing.Load() && s.index.repeats(entries) {
		return make([]bool, len(entries)), nil
	}
	// Encode in the caller's goroutine, concurrently with other deliveries, so the single writer
	// spends its time on page work only.
	encoded := make([][]byte, len(entries))
	for i := range entries {
		buf, err := json.Marshal(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("encode inbox entry %q: %w", entries[i].Key, err)
		}
		encoded[i] = buf
	}
	fresh := make([]bool, len(entries))
	err := s.update(func(tx *bolt.Tx) error { return s.acceptTx(tx, entries, encoded, fresh) })
	if err != nil {
		return nil, err
	}
	return fresh, nil
}

// acceptTx appends the new entries (encoded[i] is entries[i] as JSON) to the inbox and sets
// fresh[i] for each. No episode is written: an episode with an entry in the inbox is pending by
// definition, and its record changes when the entry is decided.
func (s *Store) acceptTx(tx *bolt.Tx, entries []InboxEntry, encoded [][]byte, fresh []bool) error {
	clear(fresh)
	ib := tx.Bucket(bucketInbox)
	for i := range entries {
		e := &entries[i]
		if e.Key == "" || e.EpisodeKey == "" {
			return errors.New("inbox entry without a key or an episode key")
		}
		if s.index.isRepeat(e) {
			continue
		}
		seq, err := ib.NextSequence()
		if err != nil {
			return err
		}
		if err := ib.Put(seqKey(seq), encoded[i]); err != nil {
			return err
		}
		s.index.add(e.Key, seq)
		fresh[i] = true
	}
	return nil
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
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ok, err = get(tx.Bucket(bucketEpisodes), []byte(key), &ep)
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
