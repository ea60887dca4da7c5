package pipeline

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/notify"
	"github.com/selfheal/selfheal/remediator/store"
)

// People hear of heals through Alertmanager (package notify): a heal silences its alert while it
// acts, and the pipeline raises its own alerts when a heal fails, is declined or a target is
// suspended, and when one heals. The hooks are few and in one place each: finishDecision for
// every stage that declines, recordEnd for every heal's end, publish for suspension, resolve for
// an alert that ends. None waits on the network but the silence a heal makes before acting.

// ReasonInvalidTarget is the decline reason of an alert a playbook matched whose target could not
// be named from its labels.
const ReasonInvalidTarget = "invalid_target"

// declineReasons are the reasons a decision stopped that people hear of. A cooldown is not among
// them: the heal only waits, and happens when it ends.
var declineReasons = map[string]bool{
	ReasonBlastRadius: true, ReasonPrecondition: true, ReasonTimeWindow: true, ReasonInvalidTarget: true,
	ReasonPaused: true, ReasonDryRun: true, ReasonBudget: true,
}

// silenceSlack is added to a heal's longest possible run for its silence's endsAt: the time
// between its steps (records, stage bookkeeping) and a margin for a slow machine.
const silenceSlack = 2 * time.Minute

// startNotices configures the notifier, sweeps silences of heals that ended and runs delivery.
func (p *Pipeline) startNotices(ctx context.Context) {
	p.notifier.Sweep(func(id string) bool {
		h, ok, err := p.store.Heal(id)
		return err == nil && ok && h.Result != store.HealRunning
	})
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.notifier.Run(ctx) }()
}

// configureNotices points the notifier at the configuration's Alertmanager. Lock held.
func (p *Pipeline) configureNotices(cfg *config.Config) {
	var am *config.Alertmanager
	if cfg != nil {
		am = cfg.Global.Alertmanager
	}
	if err := p.notifier.Configure(am); err != nil {
		p.logger.Error("cannot reach Alertmanager as configured; people will not hear of heals", "err", err)
	}
}

func originalAlert(d *decision) notify.AlertRef {
	return notify.AlertRef{Name: d.alert.Labels["alertname"], Severity: d.alert.Labels["severity"], RunbookURL: d.alert.Annotations["runbook_url"]}
}

// noticeDeclined raises RemediationDeclined for a decision a stage stopped. Lock held.
func (p *Pipeline) noticeDeclined(d *decision, v verdict) {
	if !declineReasons[v.reason] || d.playbook == nil {
		return
	}
	a := originalAlert(d)
	p.notifier.Raise(notify.Notice{
		Alertname: notify.AlertDeclined, Reason: v.reason, Target: d.target, Playbook: d.playbook.Name, Alert: a,
		Summary: fmt.Sprintf("%s on %s is not being healed (%s): %s", a.Name, d.target, v.reason, v.detail),
	})
}

// silenceWhileHealing silences the heal's alert until the heal ends, when its playbook asks for
// it, and lists the silence in the heal record. Only when verification asks Prometheus: without
// it a heal waits for the resolved notification, which a silence would hold back.
func (p *Pipeline) silenceWhileHealing(ctx context.Context, d *decision, h *store.Heal) {
	if !d.playbook.Silence || d.dryRun || !p.notifier.Enabled() {
		return
	}
	if p.verifier.Querier() == nil {
		// The heal has no ID yet: it gets one with its first write, after this.
		p.logger.Info("not silencing the alert while healing: verification waits for its resolved notification, which a silence would hold back; set global.prometheus_url",
			"target", d.target, "playbook", d.playbook.Name)
		return
	}
	// The silence names the heal, which must be on disk before anything acts for it.
	if err := p.writeHeal(d, h); err != nil {
		p.logger.Error("cannot record heal start; not silencing", "target", d.target, "err", err)
		return
	}
	ends := h.Started.Add(maxHealRun(d.playbook))
	id := p.notifier.Silence(ctx, h.ID, d.target, silenceLabels(d.alert.Labels), ends)
	if id == "" {
		return
	}
	h.Silences = append(h.Silences, id)
	if err := p.writeHeal(d, h); err != nil {
		p.logger.Error("record the heal's silence", "heal", h.ID, "silence", id, "err", err)
	}
}

// silenceLabels are the labels the heal's silence matches: the alert's, but for severity. The
// degraded and failing levels of one alert are one condition, which the heal's verification
// waits out as one (verify.StillFiring); the silence covers them alike, so that the critical
// level firing while a heal of the warning acts does not page a person for a heal under way.
func silenceLabels(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	delete(out, "severity")
	return out
}

// maxHealRun bounds how long a heal by pb can run: every step acting until its timeout and
// verifying until its own.
func maxHealRun(pb *config.Playbook) time.Duration {
	total := silenceSlack
	for _, st := range pb.Steps {
		total += stepTimeout(pb, st)
		if !st.Verify.Skip {
			vt := st.Verify.Timeout
			if vt <= 0 {
				vt = pb.Verify.Timeout
			}
			total += time.Duration(vt)
		}
	}
	return total
}

// noticeHealStarted ends the declines of a target that is now being healed.
func (p *Pipeline) noticeHealStarted(d *decision) {
	p.notifier.End(notify.AlertDeclined, d.target, "")
}

// noticeHealEnd expires the heal's silences and tells people how it ended: a failed heal pages
// (its alert, no longer silenced, reaches them too), a healed one is a notice and ends the
// failures and declines of its target, a dry run is a decline. Lock held; before the decision
// is parked, while it still has its alert's labels.
func (p *Pipeline) noticeHealEnd(d *decision, h *store.Heal) {
	p.notifier.Unsilence(h.Started.Add(maxHealRun(d.playbook)), h.Silences...)
	a := originalAlert(d)
	n := notify.Notice{Target: d.target, Playbook: d.playbook.Name, Alert: a, HealID: h.ID}
	switch h.Result {
	case store.HealHealed:
		p.notifier.End(notify.AlertFailed, d.target, "")
		p.notifier.End(notify.AlertDeclined, d.target, "")
		n.Alertname = notify.AlertPerformed
		n.Summary = fmt.Sprintf("Heal %s healed %s (%s) by playbook %s", h.ID, d.target, a.Name, d.playbook.Name)
	case store.HealFailed:
		n.Alertname = notify.AlertFailed
		n.Summary = fmt.Sprintf("Heal %s of %s (%s) by playbook %s failed: %s", h.ID, d.target, a.Name, d.playbook.Name, h.Reason)
	case store.HealDryRun:
		n.Alertname, n.Reason = notify.AlertDeclined, ReasonDryRun
		n.Summary = fmt.Sprintf("%s on %s was not healed: dry run; heal %s recorded what it would have done", a.Name, d.target, h.ID)
	default:
		return
	}
	p.notifier.Raise(n)
}

// noticeResolved ends the failures and declines about an alert that resolved. Lock held.
func (p *Pipeline) noticeResolved(target, alertname string) {
	p.notifier.End(notify.AlertFailed, target, alertname)
	p.notifier.End(notify.AlertDeclined, target, alertname)
}

// noticeSuspension raises RemediationSuspended when a target becomes suspended and ends it when
// the suspension lifts. Lock held; publish calls it for every target, so it is a map lookup
// unless something changed.
func (p *Pipeline) noticeSuspension(t *store.Target) {
	if t.Suspended == p.suspended[t.Name] {
		return
	}
	if !t.Suspended {
		delete(p.suspended, t.Name)
		p.notifier.End(notify.AlertSuspended, t.Name, "")
		return
	}
	p.suspended[t.Name] = true
	var a notify.AlertRef
	for f := range t.Firing.Alerts() {
		if a.Name == "" || f.Severity == "critical" {
			a.Name, a.Severity = f.Alertname, f.Severity
		}
	}
	p.notifier.Raise(notify.Notice{
		Alertname: notify.AlertSuspended, Target: t.Name, Playbook: t.Playbook, Alert: a, HealID: t.LastHealID,
		Summary: fmt.Sprintf("Healing %s is suspended: its attempt budget is spent; a person resets it (POST /api/v1/targets/<target>/reset) or the budget window moves on", t.Name),
	})
}

// noticeApproval raises RemediationAwaitingApproval while a heal waits for a person, with the
// approve and reject endpoints, and ends it when the wait ends, however it ends.
func (p *Pipeline) noticeApproval(ev ApprovalEvent) {
	name := ev.Alert.Labels["alertname"]
	if ev.State != store.ApprovalAwaiting {
		p.notifier.End(notify.AlertAwaitingApproval, ev.Target, name)
		return
	}
	p.notifier.Raise(notify.Notice{
		Alertname: notify.AlertAwaitingApproval, Target: ev.Target, Playbook: ev.Playbook, HealID: ev.HealID,
		Alert: notify.AlertRef{Name: name, Severity: ev.Alert.Labels["severity"], RunbookURL: ev.Alert.Annotations["runbook_url"]},
		Summary: fmt.Sprintf("Heal %s of %s (%s) waits for approval of step %q until %s; approve or reject it with an operator credential",
			ev.HealID, ev.Target, name, ev.Step, ev.Deadline.UTC().Format(time.RFC3339)),
	})
}
