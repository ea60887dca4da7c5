package pipeline

import (
	"time"

	"github.com/selfheal/selfheal/remediator/store"
)

// The override history: a person's pause, resume and reset, with who did it, kept in the store
// next to the targets they changed.

// PauseBy is Pause by a named actor, recorded in the target's history (target "" for all).
func (p *Pipeline) PauseBy(actor, target string, d time.Duration, reason string) error {
	if err := p.Pause(target, d, reason); err != nil {
		return err
	}
	o := store.Override{At: p.now(), Action: store.OverridePause, Target: target, Actor: actor, Reason: reason}
	if d > 0 {
		o.Until = o.At.Add(d)
	}
	return p.store.RecordOverride(o)
}

// ResumeBy is Resume by a named actor, recorded in the target's history.
func (p *Pipeline) ResumeBy(actor, target string) error {
	if err := p.Resume(target); err != nil {
		return err
	}
	return p.store.RecordOverride(store.Override{At: p.now(), Action: store.OverrideResume, Target: target, Actor: actor})
}

// ResetBy is Reset by a named actor, recorded in the target's history.
func (p *Pipeline) ResetBy(actor, target string) error {
	if err := p.Reset(target); err != nil {
		return err
	}
	return p.store.RecordOverride(store.Override{At: p.now(), Action: store.OverrideReset, Target: target, Actor: actor})
}

// History lists the overrides of one target ("" is the global pause), or of all when all is
// set, newest first.
func (p *Pipeline) History(target string, all bool, limit int) ([]store.Override, error) {
	return p.store.Overrides(target, all, limit)
}
