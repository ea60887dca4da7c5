package store

import (
	"time"

	"github.com/prometheus/alertmanager/template"
)

// Episode states. An episode is one firing of one alert: fingerprint plus startsAt. It is
// pending while it has an entry in the inbox; only acting and resolved are stored (files of
// older versions may hold "pending", which, like done, means "decide anew").
const (
	// EpisodeActing: a heal for it has started.
	EpisodeActing = "acting"
	// EpisodeDone: its heal finished; a later re-delivery (Alertmanager's repeat) is decided anew
	// and meets the cooldown and the budget. Not stored: closing an episode as done deletes its
	// record, since a missing record means the same.
	EpisodeDone = "done"
	// EpisodeSuppressed: decided without a heal (unmatched, guard, cooldown, budget, superseded).
	// Not stored either, for the same reason.
	EpisodeSuppressed = "suppressed"
	// EpisodeResolved: Alertmanager said it resolved; it is never acted on again.
	EpisodeResolved = "resolved"
)

// InboxEntry is an accepted alert waiting to be decided.
type InboxEntry struct {
	// Key is unique per episode and status, so a repeated delivery overwrites nothing.
	Key        string         `json:"key"`
	EpisodeKey string         `json:"episode_key"`
	Resolved   bool           `json:"resolved"`
	Alert      template.Alert `json:"alert"`
	Receiver   string         `json:"receiver,omitempty"`
	GroupKey   string         `json:"group_key,omitempty"`
	ReceivedAt time.Time      `json:"received_at"`
}

// Episode is the idempotency record of one alert episode.
type Episode struct {
	State   string    `json:"state"`
	HealID  string    `json:"heal_id,omitempty"`
	Updated time.Time `json:"updated"`
}

// Heal results.
const (
	HealRunning     = "running"
	HealHealed      = "healed"
	HealFailed      = "failed"
	HealInterrupted = "interrupted"
	HealDryRun      = "dry_run"
)

// Step outcomes.
const (
	StepRunning     = "running"
	StepSucceeded   = "succeeded"
	StepFailed      = "failed"
	StepSkipped     = "skipped"
	StepDryRun      = "dry_run"
	StepInterrupted = "interrupted"
)

// Heal is one attempt to heal one target for one alert episode.
type Heal struct {
	ID       string       `json:"id"`
	Target   string       `json:"target"`
	Playbook string       `json:"playbook"`
	Alert    AlertRef     `json:"alert"`
	Started  time.Time    `json:"started"`
	Ended    time.Time    `json:"ended,omitzero"`
	Result   string       `json:"result"`
	Reason   string       `json:"reason,omitempty"`
	Steps    []StepRecord `json:"steps"`
	// Silences are the Alertmanager silences the heal made for its alert while it acted.
	Silences []string `json:"silences,omitempty"`
}

// AlertRef identifies the alert that triggered a heal.
type AlertRef struct {
	Name        string            `json:"name"`
	Fingerprint string            `json:"fingerprint"`
	StartsAt    time.Time         `json:"startsAt"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// StepRecord is one step of a heal.
type StepRecord struct {
	Name    string    `json:"name"`
	Action  string    `json:"action"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome string    `json:"outcome"`
	// Reason says why a step was skipped or failed verification.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Pause is a manual override: Active until Until (zero: until resumed).
type Pause struct {
	Active bool      `json:"active"`
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// In reports whether the pause is in force at now.
func (p Pause) In(now time.Time) bool {
	return p.Active && (p.Until.IsZero() || now.Before(p.Until))
}

// Target is everything remembered about one healed thing. Zero fields are left out of the state
// file: ten thousand targets are rewritten there as they change.
type Target struct {
	Name     string `json:"name"`
	Playbook string `json:"playbook,omitempty"`
	// Attempts are the start times of heals inside the budget window (interrupted ones count).
	Attempts      []time.Time `json:"attempts,omitempty"`
	Suspended     bool        `json:"suspended,omitempty"`
	CooldownUntil time.Time   `json:"cooldown_until,omitzero"`
	// Consecutive counts heals since the target was last healthy for the reset time; it grows
	// the cooldown.
	Consecutive int `json:"consecutive,omitempty"`
	// HealthySince is when the target's last alert resolved (zero while something fires).
	HealthySince time.Time `json:"healthy_since,omitzero"`
	Pause        Pause     `json:"pause,omitzero"`
	// Firing holds the alerts now firing on this target, by episode key.
	Firing         FiringSet `json:"firing,omitzero"`
	LastHealID     string    `json:"last_heal_id,omitempty"`
	LastHealResult string    `json:"last_heal_result,omitempty"`
	LastHealAt     time.Time `json:"last_heal_at,omitzero"`
	State          string    `json:"state"`
}

// StepStats are the recent outcomes (true = healed) of one playbook step for one alert name.
type StepStats struct {
	Outcomes []bool `json:"outcomes"`
}

// Ratio is the success ratio and the number of samples.
func (s StepStats) Ratio() (float64, int) {
	if len(s.Outcomes) == 0 {
		return 0, 0
	}
	ok := 0
	for _, o := range s.Outcomes {
		if o {
			ok++
		}
	}
	return float64(ok) / float64(len(s.Outcomes)), len(s.Outcomes)
}

// Add appends an outcome, keeping the newest max.
func (s *StepStats) Add(ok bool, max int) {
	s.Outcomes = append(s.Outcomes, ok)
	if len(s.Outcomes) > max {
		s.Outcomes = s.Outcomes[len(s.Outcomes)-max:]
	}
}
