package pipeline

import (
	"context"
	"strings"
	"time"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// A restart nobody asked for is not a heal. When a container is OOM-killed and its restart
// policy starts it again, or a person restarts it, its alert resolves during the heal; without a
// look at the target that reads as "healed", credits the step that happened to be running, and
// hides a fault that will come back. So a heal notes which run of the target's process it began
// with (action.Incarnation), moves that on with each of its own platform steps, and compares when
// the alert resolves or a step's check passes: another run means result restarted_outside, the
// step uncredited.

// ReasonRestartedOutside is the reason of a step whose check passed only because the target was
// restarted outside the heal.
const ReasonRestartedOutside = "restarted outside the heal"

// observeTimeout bounds one look at the target (its run, its evidence), apart from the step's
// own timeout.
const observeTimeout = 10 * time.Second

// Bounds the pipeline puts on any actuator's evidence, whatever it promises.
const maxEvidenceStateValue = 4 << 10

// observeStart records on h the run of the target the heal begins with; nil when the runner
// cannot tell (no platform step in the playbook, a dry run, the engine unreachable: logged).
func (p *Pipeline) observeStart(ctx context.Context, d *decision, h *store.Heal) *action.Incarnation {
	if d.dryRun || len(d.playbook.Steps) == 0 {
		return nil
	}
	inc, ok := observe(ctx, p.runner, action.Request{Playbook: d.playbook, Step: d.playbook.Steps[0], Alert: d.alert, Target: d.target})
	if !ok {
		return nil
	}
	h.Incarnation = &inc
	return &inc
}

// restartedOutside looks at the target again and, when its process is not the run the heal
// expects, records what happened on h (result restarted_outside). It answers false when there is
// nothing to compare with.
func (p *Pipeline) restartedOutside(ctx context.Context, d *decision, h *store.Heal, st *config.Step, expect *action.Incarnation) bool {
	if expect == nil {
		return false
	}
	now, ok := observe(ctx, p.runner, action.Request{Playbook: d.playbook, Step: st, Alert: d.alert, Target: d.target})
	if !ok {
		return false
	}
	what := now.ChangeSince(*expect)
	if what == "" {
		return false
	}
	h.OutsideRestart = &store.OutsideRestart{Seen: p.now(), What: what, Before: *expect, After: now}
	h.Result, h.Reason = store.HealRestartedOutside, what+"; the alert went away without the heal"
	p.logger.Warn("target restarted outside the heal; not recorded as healed", "heal", h.ID, "target", d.target, "what", what)
	return true
}

// observe asks the runner which run of the request's target is current; ok is false when it
// cannot tell.
func observe(ctx context.Context, r action.Runner, req action.Request) (action.Incarnation, bool) {
	ir, ok := r.(action.IncarnationReporter)
	if !ok {
		return action.Incarnation{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	inc, err := ir.Incarnation(ctx, req)
	return inc, err == nil
}

// actsOnPlatform says whether the step's action changes the target's process itself (docker,
// swarm, kubernetes), so that a new run after it is the heal's own doing. An http, command or
// wait step does not: a new run during one came from elsewhere.
func actsOnPlatform(st *config.Step) bool {
	switch st.Action() {
	case "http", "command", "wait", "":
		return false
	}
	return true
}

// boundEvidence holds any actuator's evidence to action's bounds before it is stored: the
// end of the log, the newest events, state values cut short.
func boundEvidence(ev *action.Evidence) *action.Evidence {
	if ev == nil {
		return nil
	}
	if len(ev.Log) > action.MaxEvidenceLog {
		ev.Log = strings.ToValidUTF8(ev.Log[len(ev.Log)-action.MaxEvidenceLog:], "")
	}
	if n := len(ev.Events); n > action.MaxEvidenceEvents {
		ev.Events = ev.Events[n-action.MaxEvidenceEvents:]
	}
	for k, v := range ev.State {
		if len(v) > maxEvidenceStateValue {
			ev.State[k] = strings.ToValidUTF8(v[:maxEvidenceStateValue], "") + "…"
		}
	}
	return ev
}
