package pipeline

import (
	"context"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// phase says when a stage runs; a stage may run in more than one.
type phase uint8

const (
	// onArrival stages decide an alert when it is accepted, with the pipeline's lock held: they
	// must be quick and must not touch the network.
	onArrival phase = 1 << iota
	// onTurn stages decide again each time a waiting heal is about to start and each tick for a
	// held-back one, because the world may have changed meanwhile (a cooldown began, a budget
	// ran out, someone paused). Lock held, as for onArrival.
	onTurn
	// beforeAct stages run in the heal's own goroutine, without the lock, just before the first
	// action. They may query Prometheus; they read only the decision.
	beforeAct
)

// namedStage is a stage with the name that logs and remediator_decisions_stopped_total{stage}
// give it.
type namedStage struct {
	name string
	when phase
	stage
}

// buildStages is the decision over the pipeline's own state. Called with the lock held on
// every configuration change, so stages that read the configuration get the new one, as
// Alertmanager rebuilds its notification pipeline on reload.
func (p *Pipeline) buildStages(cfg *config.Config) []namedStage {
	return decisionStages(cfg, world{
		dedupe: newDedupe(p.store, p.verifier, p.handling, p.logger), targets: p.targets, blast: p.blast,
		global: &p.global, relapsed: p.recordRelapse, verifier: p.verifier,
	})
}

// world is what the decision stages read and note on: the pipeline's own state, or a copy of it
// that a simulation decides over without acting or writing (see simulate.go).
type world struct {
	dedupe   stage
	targets  targetSet
	blast    blastMemory
	global   *store.Pause
	relapsed func(store.HealedRef, *decision)
	verifier *verify.Verifier
}

// decisionStages is the decision, in order: the one place that names the stages and wires each
// to what it needs. A new stage (approvals, silences) is one more line here; the simulator runs
// the same list.
func decisionStages(cfg *config.Config, w world) []namedStage {
	return []namedStage{
		{"dedupe", onArrival, w.dedupe},
		{"match", onArrival, newMatch(cfg, w.targets, w.blast)},
		{"relapse", onArrival, newRelapse(w.targets, w.relapsed)},
		{"guards", onArrival | onTurn, newGuards(w.global, w.targets, w.blast, cfg != nil && cfg.Global.DryRun)},
		{"cooldown", onArrival | onTurn, newCooldown(w.targets)},
		{"budget", onArrival | onTurn, newBudget(w.targets)},
		{"preconditions", beforeAct, newPreconditions(w.verifier)},
	}
}

// runStages runs the stages of phase when, in order, until one stops; its verdict names it.
func runStages(ctx context.Context, stages []namedStage, when phase, d *decision) verdict {
	for _, s := range stages {
		if s.when&when == 0 {
			continue
		}
		if v := s.decide(ctx, d); v.stop {
			v.stage = s.name
			return v
		}
	}
	return proceed()
}

// stepStage is one part of running a heal step, in the heal's goroutine without the lock. The
// first to fail ends the step as failed: reason says why in a few words (the step record's
// reason), err in full.
type stepStage interface {
	run(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (reason string, err error)
}

// namedStepStage is a step stage with the name logs give it.
type namedStepStage struct {
	name string
	stepStage
}

// buildStepStages is what each step of a heal does, in order; the step heals when all pass. A
// new part of every step is one more line here.
func (p *Pipeline) buildStepStages() []namedStepStage {
	return []namedStepStage{
		{"approval", approvalGate{await: p.awaitApproval}},
		{"act", newAct(p.runner)},
		{"verify", newVerification(p.verifier)},
		{"stabilize", newStabilization(p.verifier, p.now, p.setStabilizing, p.refired)},
	}
}

// currentStages is the stage lists for use without the lock (a heal's goroutine).
func (p *Pipeline) currentStages() ([]namedStage, []namedStepStage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stages, p.stepStages
}
