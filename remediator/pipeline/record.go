package pipeline

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/store"
)

// The record stage: every decision and every step leaves a durable trace. A heal is written
// before its first action (with the attempt charged to the budget), before and after each
// action, and at its end, so a crash anywhere shows up as "interrupted" after the restart.

// recordStart charges the attempt to the target's budget and builds the heal's record. It is
// written with the heal's first write (writeHeal): usually the start of its first step, so that
// one write of the intake log, not two, stands between the decision and the first action.
func (p *Pipeline) recordStart(d *decision) *store.Heal {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	t := p.target(d.target)
	t.Playbook = d.playbook.Name
	if !d.dryRun {
		t.Attempts = append(t.Attempts, now)
		budgetUse(t, d.playbook.Budget, now)
	}
	d.startPending = true
	return &store.Heal{
		Target:   d.target,
		Playbook: d.playbook.Name,
		Alert: store.AlertRef{
			Name:        d.alert.Labels["alertname"],
			Fingerprint: d.alert.Fingerprint,
			StartsAt:    d.alert.StartsAt,
			Labels:      d.alert.Labels,
			Annotations: keptAnnotations(d.alert.Annotations),
		},
		Started: now,
		Result:  store.HealRunning,
		Steps:   []store.StepRecord{},
	}
}

// writeHeal writes the heal as it is now and returns once it is on disk. The first write starts
// it in the store: the heal with its ID, the target (its attempt charged) and the episode
// acting, in one record.
func (p *Pipeline) writeHeal(d *decision, h *store.Heal) error {
	if !d.startPending {
		return p.store.UpdateHeal(h)
	}
	p.mu.Lock()
	p.flushWrites()
	// Queued under the lock, so that no later write of the target overtakes it, and waited for
	// without it: the next alert's decision does not wait for this heal's disk write.
	done := p.store.QueueNewHeal(h, *p.target(d.target), d.episode)
	p.mu.Unlock()
	if err := <-done; err != nil {
		return err
	}
	d.startPending = false
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.target(d.target)
	t.LastHealID, t.LastHealAt, t.LastHealResult = h.ID, h.Started, store.HealRunning
	p.publish(t)
	p.logger.Info("heal started", "heal", h.ID, "target", d.target, "playbook", d.playbook.Name,
		"alertname", h.Alert.Name, "dry_run", d.dryRun)
	return nil
}

// Bounds on the alert annotations a heal record keeps: they come from the alert, so they are
// untrusted and must not grow the history without limit.
const (
	maxAnnotations     = 16
	maxAnnotationValue = 2 << 10
	maxAnnotationName  = 128
)

// firstAnnotations are kept before any other, whatever their names sort like.
var firstAnnotations = []string{"summary", "description", "runbook_url"}

// keptAnnotations copies the alert's annotations within the bounds: summary, description and
// runbook_url first, then the others by name (long names left out); long values cut, marked with "…".
func keptAnnotations(a template.KV) map[string]string {
	if len(a) == 0 {
		return nil
	}
	names := make([]string, 0, len(a))
	for _, n := range firstAnnotations {
		if _, ok := a[n]; ok {
			names = append(names, n)
		}
	}
	rest := make([]string, 0, len(a))
	for n := range a {
		if !slices.Contains(firstAnnotations, n) && len(n) <= maxAnnotationName {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)
	kept := make(map[string]string, min(len(names), maxAnnotations))
	for _, n := range names[:min(len(names), maxAnnotations)] {
		v := a[n]
		if len(v) > maxAnnotationValue {
			v = strings.ToValidUTF8(v[:maxAnnotationValue], "") + "…"
		}
		kept[n] = v
	}
	return kept
}

// Heal is one heal of the history, by ID; false when there is none.
func (p *Pipeline) Heal(id string) (store.Heal, bool, error) { return p.store.Heal(id) }

// recordStep appends a finished (or skipped) step and counts it. acted says whether the action
// really ran, so its outcome feeds the adaptive statistics.
func (p *Pipeline) recordStep(h *store.Heal, d *decision, rec store.StepRecord, dur time.Duration, acted bool) {
	h.Steps = append(h.Steps, rec)
	if err := p.writeHeal(d, h); err != nil {
		p.logger.Error("record step", "heal", h.ID, "err", err)
	}
	p.m.steps.WithLabelValues(d.playbook.Name, rec.Name, rec.Action, rec.Outcome).Inc()
	p.logger.Info("heal step", "heal", h.ID, "target", d.target, "step", rec.Name, "action", rec.Action,
		"outcome", rec.Outcome, "reason", rec.Reason, "err", rec.Error)
	if !acted {
		return
	}
	p.m.stepDuration.WithLabelValues(d.playbook.Name, rec.Action).Observe(dur.Seconds())
	p.mu.Lock()
	p.recordOutcome(d.playbook.Name, rec.Name, d.alert.Labels["alertname"], outcomeOf(rec), rec.End)
	p.mu.Unlock()
}

func (p *Pipeline) recordEnd(d *decision, h *store.Heal, dur time.Duration) {
	if d.startPending {
		// Nothing was written yet (the alert resolved before the first step): the heal gets its
		// ID and its attempt with this write, and its end with the next.
		if err := p.writeHeal(d, h); err != nil {
			p.logger.Error("cannot record heal start", "target", d.target, "err", err)
			return
		}
	}
	p.mu.Lock()
	now := p.now()
	h.Ended = now
	t := p.target(d.target)
	if !d.dryRun {
		startCooldown(t, d.playbook.Cooldown, now)
	}
	t.LastHealID, t.LastHealAt, t.LastHealResult = h.ID, h.Started, h.Result
	if !d.dryRun {
		openRelapseWindow(t, d, h, now)
	}
	if h.Result == store.HealHealed {
		t.Firing.Delete(d.episode)
		if t.Firing.Len() == 0 {
			t.HealthySince = now
		}
	}
	p.noticeHealEnd(d, h)
	_, left := budgetUse(t, d.playbook.Budget, now)
	still := t.Firing.Has(d.episode)
	if still && h.Result == store.HealFailed && left == 0 {
		// The last allowed heal failed and the alert still fires: escalate now rather than
		// when the next delivery is refused.
		t.Suspended = true
	}
	if still && h.Result == store.HealFailed {
		// The alert still fires: decide again when the cooldown ends, until the budget is
		// spent, rather than waiting for Alertmanager's repeat interval.
		p.park(d)
	}
	p.publish(t)
	p.flushWrites()
	// As in writeHeal: queued under the lock, waited for without it.
	done := p.store.QueueFinishHeal(h, *t, d.episode, d.inboxKey)
	p.mu.Unlock()
	if err := <-done; err != nil {
		p.logger.Error("record heal end", "heal", h.ID, "err", err)
	}
	p.m.heals.WithLabelValues(d.playbook.Name, h.Result).Inc()
	p.m.healDuration.WithLabelValues(d.playbook.Name).Observe(dur.Seconds())
	if h.Result == store.HealHealed && !d.alert.StartsAt.IsZero() {
		p.m.timeToHeal.WithLabelValues(d.playbook.Name).Observe(now.Sub(d.alert.StartsAt).Seconds())
	}
	if d.dryRun {
		p.m.suppressed.WithLabelValues(ReasonDryRun).Inc()
	}
	p.logger.Info("heal finished", "heal", h.ID, "target", d.target, "playbook", d.playbook.Name,
		"result", h.Result, "reason", h.Reason, "duration", dur)
}

// finishDecision records a decision that a stage stopped before any action. Lock held.
func (p *Pipeline) finishDecision(d *decision, v verdict) {
	switch v.outcome {
	case outcomeUnmatched:
		p.m.alerts.WithLabelValues(outcomeUnmatched).Inc()
	case outcomeDeduplicated:
		p.m.alerts.WithLabelValues(outcomeDeduplicated).Inc()
	case outcomeSuppressed:
		p.m.suppressed.WithLabelValues(v.reason).Inc()
	}
	p.m.stopped.WithLabelValues(v.stage).Inc()
	p.noticeDeclined(d, v)
	p.logger.Info("alert decided without a heal", "alertname", d.alert.Labels["alertname"], "target", d.target,
		"stage", v.stage, "outcome", v.outcome, "reason", v.reason, "detail", v.detail)
	if v.outcome == outcomeSuppressed && parkable[v.reason] && d.target != "" {
		// Keep the newest blocked decision per target, to be decided again when the block
		// lifts (resume, cooldown end, budget reset), instead of waiting for Alertmanager to
		// repeat the notification.
		d.blockedBy = v.reason
		p.park(d)
	}
	p.closeDecision(d, v.outcome, v.detail)
}

// park holds a decision back until its block lifts (retryParked decides it again), replacing any
// older one for the target. Lock held.
func (p *Pipeline) park(d *decision) {
	p.parked[d.target] = d
	p.heldChanged(d.target)
}

var parkable = map[string]bool{ReasonPaused: true, ReasonTimeWindow: true, ReasonCooldown: true, ReasonBudget: true, ReasonBlastRadius: true}

// closeDecision closes the episode in the store and removes its inbox entry.
func (p *Pipeline) closeDecision(d *decision, outcome, detail string) {
	if outcome == outcomeDeduplicated && detail == dedupeBusy {
		return // the entry belongs to the job already waiting or running
	}
	state := store.EpisodeSuppressed
	switch outcome {
	case outcomeDeduplicated:
		if detail != superseded {
			p.closes = append(p.closes, store.Close{InboxKey: d.inboxKey, DropOnly: true})
			return
		}
	case outcomeResolved:
		state = store.EpisodeResolved
	}
	p.closes = append(p.closes, store.Close{EpisodeKey: d.episode, InboxKey: d.inboxKey, State: state, At: p.now()})
}

const (
	dedupeBusy = "episode already waiting or healing"
	superseded = "superseded by a newer alert for the same target"
)
