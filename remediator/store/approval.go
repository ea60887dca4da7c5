package store

import (
	"encoding/json"
	"time"

	"github.com/prometheus/alertmanager/template"
	bolt "go.etcd.io/bbolt"
)

// Approvals and the override history live in buckets of their own, created on first use, so
// files written before they existed open unchanged.
var (
	bucketApprovals = []byte("approvals")
	bucketOverrides = []byte("overrides")
)

// Approval states of a step that needs a person's answer.
const (
	ApprovalAwaiting = "awaiting"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
	// ApprovalTimedOut: nobody answered in time; the step is declined.
	ApprovalTimedOut = "timed_out"
)

// StepDeclined is the outcome of a step that did not act because its approval was rejected or
// timed out.
const StepDeclined = "declined"

// Approval is what a step record keeps of its approval: who answered what, and when.
type Approval struct {
	State     string    `json:"state"`
	Requested time.Time `json:"requested"`
	Deadline  time.Time `json:"deadline"`
	Decided   time.Time `json:"decided,omitzero"`
	// By names the credential that answered (empty for a timeout).
	By      string `json:"by,omitempty"`
	Comment string `json:"comment,omitempty"`
}

// PendingApproval is what a restart needs to resume a heal that waits for a person: the heal is
// recorded as running, and this says where it stopped and what it was about.
type PendingApproval struct {
	HealID   string `json:"heal_id"`
	Step     int    `json:"step"`
	StepName string `json:"step_name"`
	Target   string `json:"target"`
	Playbook string `json:"playbook"`
	// Episode and InboxKey close the alert's episode when the heal ends.
	Episode  string         `json:"episode"`
	InboxKey string         `json:"inbox_key"`
	Alert    template.Alert `json:"alert"`
	// ForPlaybook: the playbook's approval (asked once per heal), not the step's own.
	ForPlaybook bool      `json:"for_playbook,omitempty"`
	Requested   time.Time `json:"requested"`
	Deadline    time.Time `json:"deadline"`
}

// PutPendingApproval records a heal that starts waiting for a person.
func (s *Store) PutPendingApproval(a PendingApproval) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketApprovals)
		if err != nil {
			return err
		}
		return put(b, []byte(a.HealID), a)
	})
}

// DeletePendingApproval forgets a pending approval once it is answered or moot.
func (s *Store) DeletePendingApproval(healID string) error {
	return s.update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketApprovals); b != nil {
			return b.Delete([]byte(healID))
		}
		return nil
	})
}

// PendingApprovals lists the heals waiting for a person.
func (s *Store) PendingApprovals() ([]PendingApproval, error) {
	var out []PendingApproval
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketApprovals)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var a PendingApproval
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// Override actions in the history.
const (
	OverridePause  = "pause"
	OverrideResume = "resume"
	OverrideReset  = "reset"
)

// Override is one change a person made through the API: who paused, resumed or reset what.
type Override struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	// Target is empty for the global pause.
	Target string    `json:"target,omitempty"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
	Until  time.Time `json:"until,omitzero"`
}

// OverridesKept bounds the override history: the oldest entries go first.
const OverridesKept = 1000

// RecordOverride appends to the override history.
func (s *Store) RecordOverride(o Override) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketOverrides)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := put(b, seqKey(seq), o); err != nil {
			return err
		}
		// Overrides are rare (a person's action), so counting them on each write is cheap.
		n := 0
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			n++
		}
		var drop [][]byte
		for k, _ := c.First(); k != nil && n > OverridesKept; k, _ = c.Next() {
			drop = append(drop, append([]byte(nil), k...))
			n--
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Overrides lists the override history newest first, of one target (the global pause is "") or
// of all when all is set; limit 0 means 100.
func (s *Store) Overrides(target string, all bool, limit int) ([]Override, error) {
	if limit <= 0 {
		limit = 100
	}
	out := []Override{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOverrides)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var o Override
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			if all || o.Target == target {
				out = append(out, o)
			}
		}
		return nil
	})
	return out, err
}
