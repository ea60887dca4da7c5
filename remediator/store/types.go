package store

import (
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/action"
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
	// HealRestartedOutside: the alert went away because something other than the heal's steps
	// restarted or replaced the target (its restart policy after an OOM kill or a crash, a
	// person, another tool). The target may be up, but nothing was healed: the fault is likely
	// to return.
	HealRestartedOutside = "restarted_outside"
	// HealResolved: the alert resolved while the heal waited (a wait step, or between steps);
	// no step is credited with it.
	HealResolved = "resolved"
)

// Step outcomes.
const (
	StepRunning     = "running"
	StepSucceeded   = "succeeded"
	StepFailed      = "failed"
	StepSkipped     = "skipped"
	StepDryRun      = "dry_run"
	StepInterrupted = "interrupted"
	// StepUncredited: the step acted and its check passed, but the target had been restarted
	// outside the heal meanwhile, so the recovery is not the step's. Its statistics count it as
	// a failure.
	StepUncredited = "uncredited"
	// StepCancelled: a wait step cut short because the alert resolved.
	StepCancelled = "cancelled"
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
	// Incarnation is the run of the target's process the heal began with, when its platform
	// tells (see action.IncarnationReporter).
	Incarnation *action.Incarnation `json:"incarnation,omitempty"`
	// OutsideRestart is set when that run was replaced during the heal by something other than
	// its steps; Result is then restarted_outside.
	OutsideRestart *OutsideRestart `json:"outside_restart,omitempty"`
	// Relapse is set when the alert came back within the relapse window after this heal was
	// healed; Result keeps what the heal itself ended with.
	Relapse *Relapse `json:"relapse,omitempty"`
	// Silences are the Alertmanager silences the heal made for its alert while it acted.
	Silences []string `json:"silences,omitempty"`
}

// OutsideRestart is what happened to a target during a heal without the heal doing it.
type OutsideRestart struct {
	// Seen is when the heal noticed: when its alert resolved or a step's check passed.
	Seen time.Time `json:"seen"`
	// What says it in a sentence, from the target's state.
	What   string             `json:"what"`
	Before action.Incarnation `json:"before"`
	After  action.Incarnation `json:"after"`
}

// Relapse is the alert that came back after a healed heal.
type Relapse struct {
	At    time.Time `json:"at"`
	Alert AlertRef  `json:"alert"`
}

// AlertRef identifies the alert that triggered a heal.
type AlertRef struct {
	Name        string            `json:"name"`
	Fingerprint string            `json:"fingerprint"`
	StartsAt    time.Time         `json:"startsAt"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Annotations are the alert's (summary, description, runbook_url, ...), bounded: alert
	// content is untrusted and must not grow the history without limit.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// StepRecord is one step of a heal.
type StepRecord struct {
	Name    string    `json:"name"`
	Action  string    `json:"action"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome string    `json:"outcome"`
	// Exploration says why a step that adaptive statistics would skip was tried anyway.
	Exploration string `json:"exploration,omitempty"`
	// Reason says why a step was skipped or failed verification.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Evidence is what the step's target looked like just before its action (state, last log
	// lines), for steps whose actuator collects it; EvidenceError says why there is none.
	Evidence      *action.Evidence `json:"evidence,omitempty"`
	EvidenceError string           `json:"evidence_error,omitempty"`
	// Incarnation is the run of the target's process the step's action left, for a step of a
	// platform that tells: the heal expects that run, not another, when its alert resolves.
	Incarnation *action.Incarnation `json:"incarnation,omitempty"`
	// StabilizingSince is when the step verified and its hold began (zero: no hold).
	StabilizingSince time.Time `json:"stabilizing_since,omitzero"`
	// Approval is the person's answer when the step needed one (see approval.go).
	Approval *Approval `json:"approval,omitempty"`
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
	// Healed is the last healed heal while its relapse window is open.
	Healed *HealedRef `json:"healed,omitempty"`
}

// HealedRef is what a relapse needs of the heal it counts against.
type HealedRef struct {
	HealID   string `json:"heal_id"`
	Playbook string `json:"playbook"`
	// Step is the step that healed; its statistics pay for the relapse.
	Step      string `json:"step"`
	Alertname string `json:"alertname"`
	// Episode is the healed episode: its own repeat deliveries are no relapse.
	Episode string `json:"episode"`
	// Since is when the healing step's hold began: an alert that started before it is a late
	// delivery of the fault the heal dealt with, not a relapse.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// StepStats are the recent outcomes (true = healed) of one playbook step for one alert name.
type StepStats struct {
	Outcomes []bool `json:"outcomes"`
	// At is when each outcome was recorded, index by index, so that old outcomes can weigh
	// less. State files of older versions have none: their outcomes are dated when loaded.
	At []time.Time `json:"at,omitempty"`
	// Skipped counts the decisions that skipped the step since it last ran, for trying it
	// anyway every so often.
	Skipped int `json:"skipped,omitempty"`
}
