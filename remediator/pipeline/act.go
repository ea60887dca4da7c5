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

	stages, stepStages := p.currentStages()
	if v := runStages(ctx, stages, beforeAct, d); v.stop {
		p.mu.Lock()
		p.finishDecision(d, v)
		p.mu.Unlock()
		return
	}
	h, err := p.recordStart(d)
	if err != nil {
		p.logger.Error("cannot record heal start; not acting", "target", d.target, "err", err)
		return
	}
	p.noticeHealStarted(d)
	p.silenceWhileHealing(ctx, d, h)
	start := p.now()
	for i, st := range d.playbook.Steps {
		if p.isResolved(j) {
			h.Result, h.Reason = store.HealHealed, "alert resolved during the heal"
			break
		}
		rec := store.StepRecord{Name: stepName(st, i), Action: st.Action(), Start: p.now()}
		if d.dryRun {
			rec.Outcome, rec.End = store.StepDryRun, rec.Start
			rec.Detail = "dry run: " + describeStep(st)
			p.recordStep(h, d, rec, 0, false)
			continue
		}
		if reason, skip := p.adaptiveSkip(d, st, i); skip {
			rec.Outcome, rec.Reason, rec.End = store.StepSkipped, reason, rec.Start
			p.recordStep(h, d, rec, 0, false)
			continue
		}
		// Write before acting: if the process dies now, the restart sees this step as
		// interrupted and never repeats it for the same episode.
		rec.Outcome = store.StepRunning
		h.Steps = append(h.Steps, rec)
		if err := p.store.UpdateHeal(h); err != nil {
			p.logger.Error("cannot record step start; not acting", "target", d.target, "err", err)
			h.Steps = h.Steps[:len(h.Steps)-1]
			h.Result, h.Reason = store.HealFailed, "state store write failed: "+err.Error()
			break
		}
		h.Steps = h.Steps[:len(h.Steps)-1]
		rec = p.runStep(ctx, d, stepStages, st, rec)
		p.recordStep(h, d, rec, p.now().Sub(rec.Start), true)
		if rec.Outcome == store.StepSucceeded {
			h.Result = store.HealHealed
			break
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
	actx, cancel := context.WithTimeout(ctx, stepTimeout(d.playbook, st))
	detail, err := s.runner.Run(actx, action.Request{Playbook: d.playbook, Step: st, Alert: d.alert, Target: d.target})
	cancel()
	rec.Detail = detail
	if err != nil {
		reason := "action failed"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("action timed out after %s", stepTimeout(d.playbook, st))
		}
		return reason, err
	}
	return "", nil
}

func (p *Pipeline) isResolved(j *job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return j.resolved
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

// adaptiveSkip skips a step whose recent success ratio for this alert name is too low. The last
// step is never skipped: a heal must try something.
func (p *Pipeline) adaptiveSkip(d *decision, st *config.Step, i int) (string, bool) {
	a := d.playbook.Adaptive
	if !a.Enabled || i == len(d.playbook.Steps)-1 {
		return "", false
	}
	p.mu.Lock()
	stats := p.stats[statsKey(d.playbook.Name, stepName(st, i), d.alert.Labels["alertname"])]
	p.mu.Unlock()
	ratio, n := stats.Ratio()
	minSamples := a.MinSamples
	if minSamples <= 0 {
		minSamples = 5
	}
	if n >= minSamples && ratio < a.MinSuccessRatio {
		return fmt.Sprintf("adaptive: success ratio %.2f over %d heals is below %.2f", ratio, n, a.MinSuccessRatio), true
	}
	return "", false
}

func statsKey(playbook, step, alertname string) string {
	return playbook + "\x00" + step + "\x00" + alertname
}
