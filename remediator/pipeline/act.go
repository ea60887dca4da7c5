package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// heal runs one heal: the beforeAct stages (preconditions), then each step in order (act,
// verify), escalating to the next step when an action fails or does not verify, recording
// before and after each action.
func (p *Pipeline) heal(ctx context.Context, j *job) {
	d := j.d
	defer p.healDone(j)

	stages, _ := p.currentStages()
	if v := runStages(ctx, stages, beforeAct, d); v.stop {
		p.mu.Lock()
		p.finishDecision(d, v)
		p.mu.Unlock()
		return
	}
	h := p.recordStart(d)
	d.ap.heal = h
	p.noticeHealStarted(d)
	p.silenceWhileHealing(ctx, d, h)
	p.runSteps(ctx, j, h, 0, p.now())
}

// runSteps runs the heal's steps from the first'th on (a restart resumes a heal that awaited
// approval at its step) and records the end.
func (p *Pipeline) runSteps(ctx context.Context, j *job, h *store.Heal, first int, start time.Time) {
	d := j.d
	_, stepStages := p.currentStages()
	declinedBy := ""
	// expect is the run of the target's process the heal answers for: the one it began with,
	// then the one each platform step's action left (a resumed heal's record has them).
	expect := h.Incarnation
	if first == 0 {
		expect = p.observeStart(ctx, d, h)
	}
	for _, done := range h.Steps {
		if done.Incarnation != nil {
			expect = done.Incarnation
		}
	}
	for i := first; i < len(d.playbook.Steps); i++ {
		st := d.playbook.Steps[i]
		if p.isResolved(j) {
			// Nothing proved that a step healed it: the alert went away by itself, or by
			// something else, between steps. No further step runs. A restart the heal did not
			// make is named as what did.
			if !p.restartedOutside(ctx, d, h, st, expect) {
				h.Result, h.Reason = store.HealResolved, "the alert resolved before step "+stepName(st, i)
			}
			break
		}
		rec := store.StepRecord{Name: stepName(st, i), Action: st.Action(), Start: p.now()}
		if d.dryRun {
			rec.Outcome, rec.End = store.StepDryRun, rec.Start
			rec.Detail = "dry run: " + describeStep(st)
			p.recordStep(h, d, rec, 0, false)
			continue
		}
		if reason, skip := p.adaptiveSkip(d, st, i, &rec); skip {
			rec.Outcome, rec.Reason, rec.End = store.StepSkipped, reason, rec.Start
			p.recordStep(h, d, rec, 0, false)
			continue
		}
		// Write before acting: if the process dies now, the restart sees this step as
		// interrupted and never repeats it for the same episode.
		rec.Outcome = store.StepRunning
		h.Steps = append(h.Steps, rec)
		if err := p.writeHeal(d, h); err != nil {
			h.Steps = h.Steps[:len(h.Steps)-1]
			if d.startPending {
				p.logger.Error("cannot record heal start; not acting", "target", d.target, "err", err)
				return
			}
			p.logger.Error("cannot record step start; not acting", "target", d.target, "err", err)
			h.Result, h.Reason = store.HealFailed, "state store write failed: "+err.Error()
			break
		}
		h.Steps = h.Steps[:len(h.Steps)-1]
		rec = p.runStep(ctx, d, stepStages, st, rec)
		if rec.Reason == reasonApprovalShutdown {
			return // the heal stays running in the store and awaits approval again after the restart
		}
		if rec.Reason == reasonWaitCancelled {
			// A wait is no action: its cut-short end says nothing of the step's worth.
			rec.Outcome = store.StepCancelled
			p.recordStep(h, d, rec, 0, false)
			if !p.restartedOutside(ctx, d, h, st, expect) {
				h.Result, h.Reason = store.HealResolved, "the alert resolved during "+rec.Name
			}
			break
		}
		if rec.Incarnation != nil {
			expect = rec.Incarnation
		}
		if rec.Outcome == store.StepSucceeded && p.restartedOutside(ctx, d, h, st, expect) {
			rec.Outcome, rec.Reason = store.StepUncredited, ReasonRestartedOutside
		}
		acted := !declined(&rec)
		p.recordStep(h, d, rec, p.now().Sub(rec.Start), acted)
		if h.OutsideRestart != nil {
			break
		}
		if rec.Outcome == store.StepSucceeded {
			h.Result = store.HealHealed
			break
		}
		if !acted {
			declinedBy = rec.Reason
		}
		if rec.Reason == ReasonApprovalRejected {
			// A person said no: no further step runs in this heal.
			h.Result, h.Reason = store.HealFailed, "step "+rec.Name+" "+rec.Error
			break
		}
		if rec.Reason == ReasonFlapped {
			// The step's fix made the alert resolve, and the hold saw it come back: that
			// resolution is over, and the playbook escalates instead of ending resolved.
			p.unresolve(j)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if h.Result == store.HealRunning {
		switch {
		case d.dryRun:
			h.Result = store.HealDryRun
		case ctx.Err() != nil:
			// Shutting down: leave the heal "running" so the restart records it as interrupted.
			return
		default:
			h.Result = store.HealFailed
			if h.Reason == "" && declinedBy != "" {
				h.Reason = declinedBy
			}
			if h.Reason == "" {
				h.Reason = "no step healed the target"
			}
		}
	}
	p.recordEnd(d, h, p.now().Sub(start))
}

// runStep runs the step stages in order (act, then verify); the first that fails fails the step.
func (p *Pipeline) runStep(ctx context.Context, d *decision, stages []namedStepStage, st *config.Step, rec store.StepRecord) store.StepRecord {
	for _, s := range stages {
		if reason, err := s.run(ctx, d, st, &rec); err != nil {
			rec.End, rec.Outcome, rec.Reason, rec.Error = p.now(), store.StepFailed, reason, err.Error()
			p.logger.Debug("step stage failed", "target", d.target, "step", rec.Name, "stage", s.name, "reason", reason)
			return rec
		}
	}
	rec.End, rec.Outcome = p.now(), store.StepSucceeded
	return rec
}

// act performs the step's action through the actuators, within the step's timeout.
type act struct{ runner action.Runner }

func newAct(r action.Runner) act { return act{runner: r} }

func (s act) run(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (string, error) {
	req := action.Request{Playbook: d.playbook, Step: st, Alert: d.alert, Target: d.target}
	s.collectEvidence(ctx, req, rec)
	actx, cancel := context.WithTimeout(ctx, stepTimeout(d.playbook, st))
	if resolved := d.resolved; st.Wait != nil && resolved != nil {
		// A wait gives the target time to recover; once the alert resolved there is nothing
		// to wait for. Any other action, once started, is finished and verified.
		go func() {
			select {
			case <-resolved:
				cancel()
			case <-actx.Done(): // the wait ended; cancel below ends this
			}
		}()
	}
	detail, err := s.runner.Run(actx, req)
	cancel()
	rec.Detail = detail
	if err != nil && st.Wait != nil && isClosed(d.resolved) {
		return reasonWaitCancelled, err
	}
	if actsOnPlatform(st) {
		// Whatever this action did to the target's process is the heal's own doing, even if
		// it failed half-way: the run it left is the one the heal answers for from now on.
		if inc, ok := observe(ctx, s.runner, req); ok {
			rec.Incarnation = &inc
		}
	}
	if err != nil {
		reason := "action failed"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("action timed out after %s", stepTimeout(d.playbook, st))
		}
		return reason, err
	}
	return "", nil
}

// collectEvidence keeps, before the action, what the step's actuator can tell of its target
// (state, last log lines), when it collects any. A failure is recorded and never stops the step:
// evidence serves the person reading the heal, the heal serves the target.
func (s act) collectEvidence(ctx context.Context, req action.Request, rec *store.StepRecord) {
	c, ok := s.runner.(action.EvidenceCollector)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	ev, err := c.Evidence(ctx, req)
	switch {
	case errors.Is(err, action.ErrNothingToObserve):
	case err != nil:
		rec.EvidenceError = err.Error()
	default:
		rec.Evidence = boundEvidence(ev)
	}
}

// reasonWaitCancelled is the reason of a wait step cut short by the alert resolving.
const reasonWaitCancelled = "alert resolved during the wait"

// isClosed reports whether ch (nil: never) is closed.
func isClosed(ch chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (p *Pipeline) isResolved(j *job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return j.resolved
}

// unresolve forgets that the job's alert resolved, with a fresh channel for later waits.
func (p *Pipeline) unresolve(j *job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.resolved {
		j.resolved = false
		j.d.resolved = make(chan struct{})
	}
}

func stepTimeout(pb *config.Playbook, st *config.Step) time.Duration {
	switch {
	case st.Timeout > 0:
		return time.Duration(st.Timeout)
	case pb.StepTimeout > 0:
		return time.Duration(pb.StepTimeout)
	case st.Wait != nil:
		return time.Duration(*st.Wait) + 30*time.Second
	}
	return 30 * time.Second
}

func describeStep(st *config.Step) string {
	switch {
	case st.HTTP != nil:
		return fmt.Sprintf("would call %s %s", st.HTTP.Method, st.HTTP.URL.Text)
	case st.Docker != nil:
		return "would " + st.Docker.Action + " the container"
	case st.Command != nil:
		return fmt.Sprintf("would run %d-argument command", len(st.Command.Argv))
	case st.Wait != nil:
		return "would wait " + st.Wait.String()
	}
	return "would do nothing"
}
