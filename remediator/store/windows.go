package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/template"
	bolt "go.etcd.io/bbolt"
)

// The guards' state: what the global rate limit and the blast radius remember of the recent
// past, and the alerts the guards hold back. Kept on disk so that a remediator that crashes and
// restarts in a loop cannot start a fresh burst of heals each time, nor forget that half of a
// playbook's targets just failed, nor the alerts it was waiting to decide again. Their buckets
// are created on first write; a state file of an older version has none and reads as empty.
var (
	bucketRateLimit   = []byte("rate_limit")
	bucketBlastRadius = []byte("blast_radius")
	bucketHeldBack    = []byte("held_back")

	keyHealStarts = []byte("heal_starts")
)

// TargetSeen is when a playbook's target last had an alert, as the blast radius counts it.
type TargetSeen struct {
	Playbook string
	Target   string
	At       time.Time
}

// GuardWindows is what the guards' windows held when last written.
type GuardWindows struct {
	// HealStarts are the starts charged to the global rate limit, oldest first.
	HealStarts []time.Time
	Seen       []TargetSeen
}

// HeldBack is an alert a guard holds back, to be decided again when the block lifts: the
// newest per target.
type HeldBack struct {
	Target     string         `json:"target"`
	InboxKey   string         `json:"inbox_key"`
	EpisodeKey string         `json:"episode_key"`
	Alert      template.Alert `json:"alert"`
	// BlockedBy is the reason that held it back last.
	BlockedBy string `json:"blocked_by,omitempty"`
}

// GuardsChange is one write to the guards' state.
type GuardsChange struct {
	// HealStarts, when not nil, replaces the rate limit's starts.
	HealStarts []time.Time
	Seen       []TargetSeen
	// Forget are playbook targets the blast radius no longer counts (At is ignored).
	Forget []TargetSeen
	// Hold replaces the held-back alert of its target; Release drops those of the targets.
	Hold    []HeldBack
	Release []string
}

// GuardWindows reads the guards' windows.
func (s *Store) GuardWindows() (GuardWindows, error) {
	var w GuardWindows
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRateLimit); b != nil {
			if _, err := get(b, keyHealStarts, &w.HealStarts); err != nil {
				return fmt.Errorf("rate limit starts: %w", err)
			}
		}
		b := tx.Bucket(bucketBlastRadius)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			playbook, target, ok := bytes.Cut(k, []byte{0})
			var at time.Time
			if !ok || at.UnmarshalText(v) != nil {
				// One bad record must not keep the remediator from starting; without it the
				// blast radius counts one target fewer until the next alert.
				s.logger.Warn("dropping an unreadable blast-radius record", "key", string(k))
				return nil
			}
			w.Seen = append(w.Seen, TargetSeen{Playbook: string(playbook), Target: string(target), At: at})
			return nil
		})
	})
	return w, err
}

// HeldBack lists the held-back alerts. An unreadable record is dropped alone, with a log line.
func (s *Store) HeldBack() ([]HeldBack, error) {
	var out []HeldBack
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeldBack)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var h HeldBack
			if err := json.Unmarshal(v, &h); err != nil {
				s.logger.Warn("dropping an unreadable held-back alert", "target", string(k), "err", err)
				return nil
			}
			out = append(out, h)
			return nil
		})
	})
	return out, err
}

// HeldBackOf reads the held-back alerts of targets, by target, as every write queued before the
// call leaves them.
func (s *Store) HeldBackOf(targets []string) (map[string]HeldBack, error) {
	if err := s.Flush(); err != nil {
		return nil, err
	}
	out := make(map[string]HeldBack, len(targets))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeldBack)
		if b == nil {
			return nil
		}
		for _, t := range targets {
			v := b.Get([]byte(t))
			if v == nil {
				continue
			}
			var h HeldBack
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("held-back alert of %s: %w", t, err)
			}
			out[t] = h
		}
		return nil
	})
	return out, err
}

// SaveGuardsLater queues c to be committed with the next write that is waited for (or alone
// shortly after) and returns at once. Queued before a heal's start record, it is on disk no
// later than that record, so before the heal's first action.
func (s *Store) SaveGuardsLater(c GuardsChange) <-chan error {
	fail := func(err error) <-chan error {
		done := make(chan error, 1)
		done <- err
		return done
	}
	starts, err := json.Marshal(c.HealStarts)
	if err != nil {
		return fail(err)
	}
	seen := make([]keyValue, 0, len(c.Seen))
	for _, t := range c.Seen {
		at, err := t.At.MarshalText()
		if err != nil {
			return fail(fmt.Errorf("blast radius time of %s/%s: %w", t.Playbook, t.Target, err))
		}
		seen = append(seen, keyValue{seenKey(t), at})
	}
	held := make([]keyValue, 0, len(c.Hold))
	for _, h := range c.Hold {
		buf, err := json.Marshal(h)
		if err != nil {
			return fail(fmt.Errorf("held-back alert of %s: %w", h.Target, err))
		}
		held = append(held, keyValue{[]byte(h.Target), buf})
	}
	return s.updateLater(func(tx *bolt.Tx) error {
		if c.HealStarts != nil {
			b, err := tx.CreateBucketIfNotExists(bucketRateLimit)
			if err != nil {
				return err
			}
			if err := b.Put(keyHealStarts, starts); err != nil {
				return err
			}
		}
		if len(seen) > 0 || len(c.Forget) > 0 {
			b, err := tx.CreateBucketIfNotExists(bucketBlastRadius)
			if err != nil {
				return err
			}
			if err := putEncoded(b, seen); err != nil {
				return err
			}
			for _, t := range c.Forget {
				if err := b.Delete(seenKey(t)); err != nil {
					return err
				}
			}
		}
		if len(held) == 0 && len(c.Release) == 0 {
			return nil
		}
		b, err := tx.CreateBucketIfNotExists(bucketHeldBack)
		if err != nil {
			return err
		}
		for _, target := range c.Release {
			if err := b.Delete([]byte(target)); err != nil {
				return err
			}
		}
		return putEncoded(b, held)
	}, nil) // no inbox keys: windows never close a decision
}

// seenKey is playbook NUL target: neither may contain a NUL (both are validated names).
func seenKey(t TargetSeen) []byte {
	return []byte(t.Playbook + "\x00" + t.Target)
}
