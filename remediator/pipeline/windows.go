package pipeline

import (
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/selfheal/selfheal/remediator/store"
)

// The guards' windows outlive the process: the heal starts the global rate limit charged, and
// when each playbook's targets last had an alert (the blast radius). Without them a remediator
// that crashes and restarts in a loop would start a fresh burst of heals on every start, and a
// shared cause that just took down half of a playbook's targets would look like one failure.
// Both are written in the background: the starts ahead of the heal's own start record, which
// is waited for before the first action, so they reach the disk no later than it; the blast
// radius with the target records of the same decisions.

// blastMemoryKept is how long the blast radius remembers a target's alert: longer than any
// window it could be configured with is useless.
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
	p.saveWindows(store.WindowsChange{HealStarts: slices.Clone(p.healStarts)})
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
		p.saveWindows(store.WindowsChange{Forget: gone})
	}
}

// saveWindows queues a change of the windows for the store. Lock held.
func (p *Pipeline) saveWindows(c store.WindowsChange) {
	done := p.store.SaveWindowsLater(c)
	go func() {
		if err := <-done; err != nil {
			p.logger.Error("write the rate limit and blast radius windows to the state store", "err", err)
		}
	}()
}

// restoreWindows charges the rate limit again with the starts still inside its window and
// gives the blast radius back its memory. Lock held; the limiter is configured (New ran
// SetConfig).
func (p *Pipeline) restoreWindows(now time.Time) error {
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
		p.saveWindows(store.WindowsChange{Forget: stale})
	}
	if len(p.healStarts) > 0 || len(w.Seen) > len(stale) {
		p.logger.Info("restored the rate limit and blast radius windows", "heal_starts", len(p.healStarts),
			"targets_seen", len(w.Seen)-len(stale))
	}
	return nil
}
