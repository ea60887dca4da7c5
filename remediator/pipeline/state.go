package pipeline

import (
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// Target states, in the order of their metric values.
const (
	StateHealthy     = "healthy"
	StateDegraded    = "degraded"
	StateFailing     = "failing"
	StateRecovering  = "recovering"
	StateStabilizing = "stabilizing"
	StateSuspended   = "suspended"
	StatePaused      = "paused"
	// StateAwaitingApproval: a heal waits for a person before its next step acts.
	StateAwaitingApproval = "awaiting_approval"
)

// StateValues maps a state to remediator_target_state's value.
var StateValues = map[string]float64{
	StateHealthy: 0, StateDegraded: 1, StateFailing: 2, StateRecovering: 3,
	StateStabilizing: 4, StateSuspended: 5, StatePaused: 6, StateAwaitingApproval: 7,
}

// stateOf derives a target's state from what the pipeline knows. The order is the precedence:
// a person's pause beats everything, a spent budget beats a running heal, and so on.
//
//	healthy --alert(warning)--> degraded --alert(critical)--> failing
//	degraded|failing --heal starts--> recovering --step verified--> stabilizing --held--> healthy
//	stabilizing --flapped or not stable--> recovering (next step) | degraded|failing
//	recovering --failed, alert still firing--> degraded|failing
//	any --budget spent--> suspended --reset or window ends--> previous
//	any --pause--> paused --resume or expiry--> previous
func (p *Pipeline) stateOf(t *store.Target, now time.Time) string {
	switch {
	case p.global.In(now) || t.Pause.In(now):
		return StatePaused
	case t.Suspended:
		return StateSuspended
	}
	if _, ok := p.inFlight[t.Name]; ok {
		if p.awaitsApproval(t.Name) {
			return StateAwaitingApproval
		}
		if p.stabilizing[t.Name] {
			return StateStabilizing
		}
		return StateRecovering
	}
	if t.Firing.Len() > 0 {
		for f := range t.Firing.Alerts() {
			if f.Severity == "critical" {
				return StateFailing
			}
		}
		return StateDegraded
	}
	return StateHealthy
}

// setStabilizing marks the target as holding after a verified step, or ends that.
func (p *Pipeline) setStabilizing(target string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.stabilizing[target] = true
	} else {
		delete(p.stabilizing, target)
	}
	t := p.target(target)
	p.publish(t)
	p.saveTarget(t)
}

// refired reports whether an episode of the decision's alert name that started after since
// fires on its target: the alert came back as a new episode.
func (p *Pipeline) refired(d *decision, since time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := d.alert.Labels["alertname"]
	for ep, f := range p.target(d.target).Firing.All() {
		if ep != d.episode && f.Alertname == name && f.Since.After(since) {
			return true
		}
	}
	return false
}

// target returns the target's record, creating it. Lock held.
func (p *Pipeline) target(name string) *store.Target { return p.targets.get(name) }

// targetSet is what the pipeline knows of each target, by name. Lock held for every use.
type targetSet map[string]*store.Target

// get returns the target's record, creating it.
func (s targetSet) get(name string) *store.Target {
	t, ok := s[name]
	if !ok {
		t = &store.Target{Name: name, State: StateHealthy}
		s[name] = t
	}
	return t
}

// blastMemory remembers when each playbook's targets last had an alert: match writes it, the
// guards count it. Lock held for every use.
type blastMemory map[string]map[string]time.Time

// see notes an alert for the playbook's target.
func (b blastMemory) see(playbook, target string, at time.Time) {
	seen := b[playbook]
	if seen == nil {
		seen = map[string]time.Time{}
		b[playbook] = seen
	}
	seen[target] = at
}

// forget drops targets whose last alert is older than any blast-radius window could be, and
// returns them.
func (b blastMemory) forget(now time.Time) []store.TargetSeen {
	var gone []store.TargetSeen
	for pb, seen := range b {
		for target, at := range seen {
			if now.Sub(at) > blastMemoryKept {
				delete(seen, target)
				gone = append(gone, store.TargetSeen{Playbook: pb, Target: target, At: at})
			}
		}
		if len(seen) == 0 {
			delete(b, pb)
		}
	}
	return gone
}

// playbookByName finds a loaded playbook; a target healed by a playbook that a reload removed
// gets an empty one (no cooldown, no budget) so it is never stuck.
func (p *Pipeline) playbookByName(name string) *config.Playbook {
	if p.cfg != nil {
		for _, pb := range p.cfg.Playbooks {
			if pb.Name == name {
				return pb
			}
		}
	}
	return &config.Playbook{Name: name}
}

// publish recomputes the target's state (and lifts a suspension whose budget window moved on);
// the per-target gauges read it when scraped (targetMetrics). Lock held.
func (p *Pipeline) publish(t *store.Target) {
	now := p.now()
	budgetUse(t, p.playbookByName(t.Playbook).Budget, now)
	t.State = p.stateOf(t, now)
	p.noticeSuspension(t)
}

// saveTarget marks the target for the next flushWrites. Lock held.
func (p *Pipeline) saveTarget(t *store.Target) { p.dirty[t.Name] = true }

// flushWrites writes the buffered target records and decision closes in one transaction. It runs
// after each batch of decisions and before any direct write (a heal's start or end), so writes
// reach the store in the order they were made. Lock held.
func (p *Pipeline) flushWrites() {
	p.saveGuards()
	if len(p.dirty) == 0 && len(p.closes) == 0 {
		return
	}
	ts := make([]store.Target, 0, len(p.dirty))
	for name := range p.dirty {
		if t, ok := p.targets[name]; ok {
			ts = append(ts, *t)
		}
	}
	// Not waited for: the records ride along with the next webhook commit, and any write asked
	// for later (a heal's start, a pause) is committed with or after them.
	done := p.store.ApplyLater(ts, p.closes)
	go func() {
		if err := <-done; err != nil {
			p.logger.Error("write decisions to the state store", "err", err)
		}
	}()
	clear(p.dirty)
	p.closes = p.closes[:0]
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
