package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Accept records the alerts of one notification durably before the webhook answers, and tells
// for each whether it is new (true) or a repeat delivery of an episode already in progress
// (false). Concurrent deliveries share one commit and one fsync (see committer); Accept returns
// only after the commit holding its alerts is on disk.
func (s *Store) Accept(entries []InboxEntry) ([]bool, error) {
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
	r := &acceptReq{entries: entries, encoded: encoded, fresh: make([]bool, len(entries)), done: make(chan error, 1)}
	select {
	case s.acceptCh <- r:
	case <-s.quit:
		return nil, ErrClosed
	}
	if err := <-r.done; err != nil {
		return nil, err
	}
	return r.fresh, nil
}

// acceptTx records entries (encoded[i] is entries[i] as JSON) in tx and sets fresh[i] for each
// new one. It may run more than once for the same request (a failed group is retried request by
// request), so it starts from a clean result.
func acceptTx(tx *bolt.Tx, entries []InboxEntry, encoded [][]byte, fresh []bool) error {
	clear(fresh)
	ib, eb := tx.Bucket(bucketInbox), tx.Bucket(bucketEpisodes)
	for i := range entries {
		e := &entries[i]
		if ib.Get([]byte(e.Key)) != nil {
			continue
		}
		var ep Episode
		found, err := get(eb, []byte(e.EpisodeKey), &ep)
		if err != nil {
			return err
		}
		if found && !e.Resolved && (ep.State == EpisodePending || ep.State == EpisodeActing || ep.State == EpisodeResolved) {
			continue
		}
		if found && e.Resolved && ep.State == EpisodeResolved {
			continue
		}
		if !e.Resolved {
			if err := put(eb, []byte(e.EpisodeKey), Episode{State: EpisodePending, HealID: ep.HealID, Updated: e.ReceivedAt}); err != nil {
				return err
			}
		}
		if err := ib.Put([]byte(e.Key), encoded[i]); err != nil {
			return err
		}
		fresh[i] = true
	}
	return nil
}

// Inbox lists accepted alerts not yet decided, oldest first: after a restart they are decided
// again.
func (s *Store) Inbox() ([]InboxEntry, error) {
	var out []InboxEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInbox).ForEach(func(k, v []byte) error {
			var e InboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("inbox entry %q: %w", k, err)
			}
			out = append(out, e)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt.Before(out[j].ReceivedAt) })
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

// CloseEpisode sets an episode's final state for this delivery and removes its inbox entry.
func (s *Store) CloseEpisode(episodeKey, inboxKey, state string, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		var ep Episode
		if _, err := get(tx.Bucket(bucketEpisodes), []byte(episodeKey), &ep); err != nil {
			return err
		}
		ep.State, ep.Updated = state, now
		return closeEpisode(tx, episodeKey, inboxKey, ep)
	})
}

// DropInbox removes an inbox entry without touching its episode.
func (s *Store) DropInbox(inboxKey string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketInbox).Delete([]byte(inboxKey)) })
}

func closeEpisode(tx *bolt.Tx, episodeKey, inboxKey string, ep Episode) error {
	if episodeKey != "" {
		if err := put(tx.Bucket(bucketEpisodes), []byte(episodeKey), ep); err != nil {
			return err
		}
	}
	if inboxKey == "" {
		return nil
	}
	return tx.Bucket(bucketInbox).Delete([]byte(inboxKey))
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

// Apply writes targets and closes decisions in one transaction: the pipeline gathers the writes of
// many decisions and pays one fsync for them. Losing them in a crash is safe: the alerts are still
// in the inbox and are decided again.
func (s *Store) Apply(targets []Target, closes []Close) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bucketTargets)
		for _, t := range targets {
			if err := put(tb, []byte(t.Name), t); err != nil {
				return err
			}
		}
		eb := tx.Bucket(bucketEpisodes)
		for _, c := range closes {
			if c.DropOnly {
				if err := tx.Bucket(bucketInbox).Delete([]byte(c.InboxKey)); err != nil {
					return err
				}
				continue
			}
			var ep Episode
			if _, err := get(eb, []byte(c.EpisodeKey), &ep); err != nil {
				return err
			}
			ep.State, ep.Updated = c.State, c.At
			if err := closeEpisode(tx, c.EpisodeKey, c.InboxKey, ep); err != nil {
				return err
			}
		}
		return nil
	})
}
