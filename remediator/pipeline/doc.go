// Package pipeline decides what to do about each accepted alert and does it.
//
// An alert goes through decision stages, then the machinery that runs a heal:
//
//	dedupe -> match -> relapse -> guards -> cooldown -> budget -> serialize
//	       -> preconditions -> approval -> act -> verify -> stabilize -> record
//
// The decision stages, one file each, are listed once, by name and in order, in buildStages
// (stages.go), which wires each to only what it needs: the budget and the cooldown get the
// targets, dedupe the store and the verifier, match the configuration, relapse the targets and
// what records a relapse (relapse.go). A stage answers go on or
// stop; the name of the stage that stopped an alert goes into the log line and into
// remediator_decisions_stopped_total{stage}. Each stage says when it runs:
//   - onArrival, when the alert is accepted, under the pipeline's lock (no network);
//   - onTurn, again when a waiting heal is about to start and on each tick for a held-back one,
//     because a cooldown, a spent budget or a pause may have come since;
//   - beforeAct, in the heal's own goroutine just before the first action, where PromQL
//     preconditions may query Prometheus.
//
// Adding a stage (approvals, silences) is a file with its type and constructor and one line in
// buildStages; choose its phases by what it reads and whether it may block.
//
// serialize.go queues what the stages let through: one heal per target, at most
// max_concurrent_heals at once, starts limited by heals_per_minute, newer alerts replacing older
// waiting ones. act.go runs a heal's steps in order, escalating to the next step when one fails.
// Each step is a list of its own, buildStepStages: approval (approval.go: a person answers, or
// the timeout declines the step; the wait survives a restart), act (act.go), verify
// (verifystage.go), then stabilize (stabilize.go), the hold that makes "healed" mean the target
// stayed healthy. An alert
// resolving while a heal waits (a wait step, between steps) ends it as resolved. record.go writes every decision
// and step to the store before and after each action, so that after a crash restore finds the heal
// and records it as interrupted rather than repeating it. A tick (reevaluate) ends expired pauses,
// resets cooldowns, derives target states and retries held-back alerts whose block has lifted.
// adaptive.go keeps each step's outcomes, weighted by age, skips a step with a poor record and
// tries it anyway now and then; recordOutcome is the one way an outcome (a step's result, a
// relapse) reaches them. windows.go keeps what the guards need to outlive a restart: the rate
// limit's recent starts, the blast radius' memory and the held-back alerts.
package pipeline
