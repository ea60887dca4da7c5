package pipeline

import (
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/selfheal/selfheal/remediator/store"
)

// The guards' state outlives the process: the heal starts the global rate limit charged, when
// each playbook's targets last had an alert (the blast radius), and the alerts held back to be
// decided again. Without them a remediator that crashes and restarts in a loop would start a
// fresh burst of heals on every start, a shared cause that just took down half of a playbook's
// targets would look like one failure, and held-back alerts would wait for Alertmanager to send
// them again. All is written in the background: the starts ahead of the heal's own start
// record, which is waited for before the first action, so they reach the disk no later than
// it; the rest with the target records and decision closes of the same decisions.

// blastMemoryKept is how long the blast radius remembers a target's alert, in memory and on
// disk: a longer blast_radius.window counts as this long.
const blastMemoryKept = 24 * time.Hour

// rateWindow is how far back heal starts still shape the rate limit: the time its bucket takes
// to fill up again. Zero when starts are not limited. Lock held.
func (p *Pipeline) rateWindow() time.Duration {
	limit := p.limiter.Limit()
	if limit == rate.Inf || limit <= 0 {
		return 0
	}
	return time.Duration(float64(p.limiter.Burst()) / float64(limit) * float64(time.Second))
}

// noteHealStart remembers a heal start the rate limit was charged for and queues the starts
// still inside its window for the store. Lock held.
func (p *Pipeline) noteHealStart(now time.Time) {
	window := p.rateWindow()
	if window == 0 {
		p.healStarts = nil
		return
	}
	p.healStarts = append(slices.DeleteFunc(p.healStarts, func(s time.Time) bool { return now.Sub(s) >= window }), now)
	p.saveGuardsChange(store.GuardsChange{HealStarts: slices.Clone(p.healStarts)})
}

// heldChanged notes that the held-back alert of target changed, for the next write. Lock held.
func (p *Pipeline) heldChanged(target string) {
	if p.heldDirty == nil {
		p.heldDirty = map[string]bool{}
	}
	p.heldDirty[target] = true
}

// release drops the held-back alert of target. Lock held.
func (p *Pipeline) release(target string) {
	if _, ok := p.parked[target]; ok {
		delete(p.parked, target)
		p.heldChanged(target)
	}
}

// saveGuards queues what changed since the last write: the blast radius' memory of the targets
// whose records are about to be written, and the held-back alerts. Lock held (flushWrites).
func (p *Pipeline) saveGuards() {
	c := store.GuardsChange{Seen: p.blastSeenOf(p.dirty)}
	for target := range p.heldDirty {
		if d, ok := p.parked[target]; ok {
			if d.stored {
				continue // its record is the one stored
			}
			c.Hold = append(c.Hold, store.HeldBack{Target: target, InboxKey: d.inboxKey, EpisodeKey: d.episode,
				Alert: d.alert, BlockedBy: d.blockedBy})
			d.shed() // SaveGuardsLater encodes the record before it returns
		} else {
			c.Release = append(c.Release, target)
		}
	}
	clear(p.heldDirty)
	if len(c.Seen) > 0 || len(c.Hold) > 0 || len(c.Release) > 0 {
		p.saveGuardsChange(c)
	}
}

// blastSeenOf is what the blast radius remembers of the named targets, to be written with
// their records: match notes an alert in both. Lock held.
func (p *Pipeline) blastSeenOf(names map[string]bool) []store.TargetSeen {
	var out []store.TargetSeen
	for playbook, seen := range p.blast {
		for name := range names {
			if at, ok := seen[name]; ok {
				out = append(out, store.TargetSeen{Playbook: playbook, Target: name, At: at})
			}
		}
	}
	return out
}

// forgetBlast drops what the blast radius no longer needs, in memory and in the store. Lock
// held.
func (p *Pipeline) forgetBlast(now time.Time) {
	if gone := p.blast.forget(now); len(gone) > 0 {
		p.saveGuardsChange(store.GuardsChange{Forget: gone})
	}
}

// blastStillHolds notes the targets held back by the blast radius as failing again, since their
// alerts still fire (as it would if Alertmanager sent them again), so that the guard lifts when
// enough of the playbook's targets recover, not merely because time passed. It returns the
// playbooks whose blast radius still refuses: counting once per playbook rather than once per
// held-back target keeps a tick linear in the targets while a large fleet is held back. Lock
// held.
func (p *Pipeline) blastStillHolds(now time.Time) map[string]bool {
	var held map[string]*decision
	for target, d := range p.parked {
		if d.blockedBy != ReasonBlastRadius || !p.target(target).Firing.Has(d.episode) {
			continue
		}
		p.blast.see(d.playbook.Name, target, now)
		if held == nil {
			held = map[string]*decision{}
		}
		held[d.playbook.Name] = d
	}
	holds := make(map[string]bool, len(held))
	for name, d := range held {
		holds[name] = blastRadius(p.blast, &decision{playbook: d.playbook, target: d.target, now: now}).stop
	}
	return holds
}

// saveGuardsChange queues a change of the guards' state for the store. Lock held.
func (p *Pipeline) saveGuardsChange(c store.GuardsChange) {
	done := p.store.SaveGuardsLater(c)
	go func() {
		if err := <-done; err != nil {
			p.logger.Error("write the guards' windows and held-back alerts to the state store", "err", err)
		}
	}()
}

// restoreGuards charges the rate limit again with the starts still inside its window, gives
// the blast radius back its memory and holds back again the alerts that were. Lock held; the
// limiter and the configuration are set (New ran SetConfig).
func (p *Pipeline) restoreGuards(now time.Time) error {
	w, err := p.store.GuardWindows()
	if err != nil {
		return err
	}
	window := p.rateWindow()
	for _, s := range w.HealStarts {
		if window > 0 && !s.After(now) && now.Sub(s) < window {
			// In order, as they happened: a fresh bucket that saw these starts is in the state
			// the stopped process left.
			p.limiter.ReserveN(s, 1)
			p.healStarts = append(p.healStarts, s)
		}
	}
	var stale []store.TargetSeen
	for _, s := range w.Seen {
		if now.Sub(s.At) > blastMemoryKept {
			stale = append(stale, s)
			continue
		}
		p.blast.see(s.Playbook, s.Target, s.At)
	}
	if len(stale) > 0 {
		p.saveGuardsChange(store.GuardsChange{Forget: stale})
	}
	held, err := p.restoreHeldBack(now)
	if err != nil {
		return err
	}
	if len(p.healStarts) > 0 || len(w.Seen) > len(stale) || held > 0 {
		p.logger.Info("restored the guards' windows and held-back alerts", "heal_starts", len(p.healStarts),
			"targets_seen", len(w.Seen)-len(stale), "held_back", held)
	}
	return nil
}

// restoreHeldBack holds back again the alerts that were when the process stopped; the next tick
// decides them again (retryParked), or drops those whose alert no longer fires. An alert that
// no playbook matches any more is dropped. Lock held.
func (p *Pipeline) restoreHeldBack(now time.Time) (int, error) {
	held, err := p.store.HeldBack()
	if err != nil {
		return 0, err
	}
	for _, hb := range held {
		d := &decision{inboxKey: hb.InboxKey, alert: hb.Alert, episode: hb.EpisodeKey, now: now, blockedBy: hb.BlockedBy}
		pb, target, err := matchPlaybook(p.cfg, d)
		if target != hb.Target {
			p.heldChanged(hb.Target) // written as released, unless the target is the same
		}
		if err != nil || pb == nil {
			continue
		}
		d.playbook, d.target = pb, target
		p.parked[target] = d
		if target != hb.Target {
			p.heldChanged(target) // written again under its new target, alert and all
		} else {
			d.shed()
		}
	}
	return len(p.parked), nil
}
