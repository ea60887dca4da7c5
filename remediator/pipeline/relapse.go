package pipeline

import (
	"context"
	"time"

	"github.com/selfheal/selfheal/remediator/store"
)

// relapse notices an alert of a target and playbook that was healed within the relapse window:
// that heal did not last. It never stops the decision (the new alert is decided as any other);
// it marks the old heal relapsed and takes its success back from the step's statistics, before
// the guards and the cooldown, which would stop a relapse most of the time.
type relapse struct {
	targets targetSet
	// relapsed records the relapse (heal record, statistics, metric).
	relapsed func(ref store.HealedRef, d *decision)
}

func newRelapse(targets targetSet, relapsed func(store.HealedRef, *decision)) relapse {
	return relapse{targets: targets, relapsed: relapsed}
}

func (s relapse) decide(_ context.Context, d *decision) verdict {
	t := s.targets.get(d.target)
	ref := t.Healed
	switch {
	case ref == nil:
	case !d.now.Before(ref.Until):
		t.Healed = nil // the window closed: the heal lasted
	case ref.Playbook == d.playbook.Name && ref.Episode != d.episode &&
		(d.alert.StartsAt.IsZero() || !d.alert.StartsAt.Before(ref.Since)):
		t.Healed = nil // one relapse per heal
		s.relapsed(*ref, d)
	}
	return proceed()
}

// openRelapseWindow remembers a healed heal on its target for the healing step's
// verify.relapse_window. Any other end leaves the window as it is: every heal starts from an
// alert that the relapse stage has already seen. Lock held.
func openRelapseWindow(t *store.Target, d *decision, h *store.Heal, now time.Time) {
	if h.Result != store.HealHealed || len(h.Steps) == 0 {
		return
	}
	t.Healed = nil
	healer := h.Steps[len(h.Steps)-1]
	for i, st := range d.playbook.Steps {
		if stepName(st, i) != healer.Name {
			continue
		}
		if w := time.Duration(stepVerify(d.playbook, st).RelapseWindow); w > 0 && healer.Outcome == store.StepSucceeded {
			since := healer.StabilizingSince
			if since.IsZero() {
				since = healer.Start // a step without verification
			}
			t.Healed = &store.HealedRef{HealID: h.ID, Playbook: d.playbook.Name, Step: healer.Name,
				Alertname: d.alert.Labels["alertname"], Episode: d.episode, Since: since, Until: now.Add(w)}
		}
		return
	}
}

// recordRelapse marks the heal relapsed, counts it in remediator_heals_relapsed_total, and turns
// one success of the healing step back into a failure. Lock held (an onArrival stage).
func (p *Pipeline) recordRelapse(ref store.HealedRef, d *decision) {
	p.logger.Warn("the alert came back after a heal: the heal relapsed", "heal", ref.HealID, "target", d.target,
		"playbook", ref.Playbook, "step", ref.Step, "alertname", d.alert.Labels["alertname"])
	p.m.relapsed.WithLabelValues(ref.Playbook).Inc()
	if h, ok, err := p.store.Heal(ref.HealID); err != nil || !ok {
		p.logger.Error("read the relapsed heal", "heal", ref.HealID, "found", ok, "err", err)
	} else {
		h.Relapse = &store.Relapse{At: d.now, Alert: store.AlertRef{
			Name: d.alert.Labels["alertname"], Fingerprint: d.alert.Fingerprint, StartsAt: d.alert.StartsAt,
		}}
		p.flushWrites()
		if err := p.store.UpdateHeal(&h); err != nil {
			p.logger.Error("record the relapse", "heal", ref.HealID, "err", err)
		}
	}
	p.recordOutcome(ref.Playbook, ref.Step, ref.Alertname, stepRelapsed, d.now)
}
