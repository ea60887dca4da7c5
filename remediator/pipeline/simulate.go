package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// Simulation is what the decision would be for one alert: the playbook and target, each stage's
// verdict, and the steps a heal would run, rendered for the alert.
type Simulation struct {
	Alert SimulatedAlert `json:"alert"`
	// Decision is heal, dry_run, suppressed, unmatched, deduplicated or resolved.
	Decision string `json:"decision"`
	// StoppedBy names the stage that decides against a heal, Reason and Detail say why.
	StoppedBy string `json:"stopped_by,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Playbook  string `json:"playbook,omitempty"`
	Target    string `json:"target,omitempty"`
	// Stages are the verdicts in the pipeline's order. Stages after the first stop still run,
	// so each guard answers; only the first stop decides.
	Stages []StageVerdict  `json:"stages"`
	Steps  []SimulatedStep `json:"steps,omitempty"`
	// Notes are what else the decision would do or meet: a relapse marked, a heal that waits.
	Notes []string `json:"notes,omitempty"`
}

// SimulatedAlert identifies the alert of a simulation.
type SimulatedAlert struct {
	Name        string            `json:"name"`
	Status      string            `json:"status"`
	Fingerprint string            `json:"fingerprint"`
	StartsAt    time.Time         `json:"startsAt"`
	Labels      map[string]string `json:"labels"`
}

// Stage verdicts.
const (
	VerdictPass    = "pass"
	VerdictStop    = "stop"
	VerdictUnknown = "unknown"
)

// StageVerdict is one stage's answer.
type StageVerdict struct {
	Stage   string `json:"stage"`
	Verdict string `json:"verdict"`
	Outcome string `json:"outcome,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// SimulatedStep is a step as it would run for the alert.
type SimulatedStep struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	// Does says what the step would do, rendered: the call, the argv, the container or service.
	Does   string   `json:"does"`
	URL    string   `json:"url,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Verify string   `json:"verify,omitempty"`
	// Error is why rendering failed for this alert: the step would fail and the heal go on to
	// the next one.
	Error string `json:"error,omitempty"`
}

// Decisions of a simulation besides the stages' outcomes.
const (
	DecisionHeal   = "heal"
	DecisionDryRun = "dry_run"
)

// Simulate says what the pipeline would do now with the entries (as intake.Entries makes them
// from a notification). It runs the same decision stages over a copy of the pipeline's state,
// so it acts on nothing, writes nothing and changes no metric. Preconditions query Prometheus.
func (p *Pipeline) Simulate(ctx context.Context, entries []store.InboxEntry) []Simulation {
	p.mu.Lock()
	cfg, now := p.cfg, p.now()
	targets := copyTargets(p.targets)
	blast := make(blastMemory, len(p.blast))
	for pb, seen := range p.blast {
		blast[pb] = maps.Clone(seen)
	}
	episodes := map[string]bool{}
	for ep := range p.byEpisode {
		episodes[ep] = true
	}
	busy := map[string]string{}
	for t := range p.waiting {
		busy[t] = "a heal of this target waits its turn now; this alert's heal would wait behind it"
	}
	for t := range p.inFlight {
		busy[t] = "a heal of this target is running now; this alert's heal would wait for it"
	}
	global := p.global
	p.mu.Unlock()
	w := world{
		dedupe:  newDedupe(p.store, p.verifier, func(ep string) bool { return episodes[ep] }, slog.New(slog.DiscardHandler)),
		targets: targets, blast: blast, global: &global, verifier: p.verifier,
	}
	return simulate(ctx, cfg, w, now, entries, busy)
}

// SimulationState is what a simulation outside the remediator knows of its state: the targets
// as GET /api/v1/targets shows them.
type SimulationState struct {
	Targets []TargetView `json:"targets"`
}

// SimulateOffline is Simulate for a remediator that is not this process: cfg is the playbooks,
// state what its API shows (or nothing), q the Prometheus for preconditions (nil: none), now the
// time to decide at. It cannot tell repeated deliveries (the dedupe stage answers unknown), and
// the API shows budgets as counts, so attempts count from now.
func SimulateOffline(ctx context.Context, cfg *config.Config, state SimulationState, q verify.Querier, now time.Time, entries []store.InboxEntry) []Simulation {
	targets, blast := targetSet{}, blastMemory{}
	for _, v := range state.Targets {
		t := targets.get(v.Name)
		t.Playbook, t.Suspended = v.Playbook, v.Suspended
		for range v.AttemptsUsed {
			t.Attempts = append(t.Attempts, now)
		}
		if v.CooldownUntil != nil {
			t.CooldownUntil = *v.CooldownUntil
		}
		if v.Paused {
			t.Pause = store.Pause{Active: true}
			if v.PausedUntil != nil {
				t.Pause.Until = *v.PausedUntil
			}
		}
		for i, name := range v.Firing {
			t.Firing.Set(fmt.Sprintf("state/%d", i), store.Firing{Alertname: name, Since: now})
		}
		if len(v.Firing) > 0 && v.Playbook != "" {
			blast.see(v.Playbook, v.Name, now)
		}
	}
	w := world{
		dedupe:  unknownStage{"only the remediator itself knows which deliveries it has seen"},
		targets: targets, blast: blast, global: &store.Pause{}, verifier: verify.New(q),
	}
	return simulate(ctx, cfg, w, now, entries, nil)
}

// unknownStage stands for a stage whose state the simulation does not have.
type unknownStage struct{ why string }

func (unknownStage) decide(context.Context, *decision) verdict { return proceed() }

// simulate decides each entry in turn over w, whose copies carry what one decision notes (a
// firing alert, the blast radius) to the next, as in the pipeline.
func simulate(ctx context.Context, cfg *config.Config, w world, now time.Time, entries []store.InboxEntry, busy map[string]string) []Simulation {
	var cur *Simulation
	w.relapsed = func(ref store.HealedRef, _ *decision) {
		cur.Notes = append(cur.Notes, fmt.Sprintf("the alert came back within the relapse window of heal %s: that heal would be marked relapsed and step %s's success taken back", ref.HealID, ref.Step))
	}
	stages := decisionStages(cfg, w)
	planned := map[string]bool{}
	out := make([]Simulation, 0, len(entries))
	for _, e := range entries {
		a := e.Alert
		out = append(out, Simulation{Alert: SimulatedAlert{
			Name: a.Labels["alertname"], Status: a.Status, Fingerprint: a.Fingerprint, StartsAt: a.StartsAt, Labels: a.Labels,
		}, Stages: []StageVerdict{}})
		cur = &out[len(out)-1]
		d := &decision{alert: a, episode: e.EpisodeKey, now: now}
		if e.Resolved {
			simulateResolved(cfg, d, cur)
			continue
		}
		decideAll(ctx, stages, d, cur)
		if d.playbook == nil {
			continue
		}
		cur.Playbook, cur.Target = d.playbook.Name, d.target
		if cur.StoppedBy == "match" {
			continue // a playbook matched but no target could be named: no step would run
		}
		cur.Steps = planSteps(d)
		if cur.StoppedBy != "" {
			continue
		}
		if why, ok := busy[d.target]; ok {
			cur.Notes = append(cur.Notes, why)
		}
		if planned[d.target] {
			cur.Notes = append(cur.Notes, "an earlier alert of this simulation already plans a heal of this target; this one would wait for it")
		}
		planned[d.target] = true
	}
	return out
}

// decideAll runs every stage and notes each verdict; the first stop is the decision. When match
// stops (no playbook, or no valid target) the later stages have nothing to decide.
func decideAll(ctx context.Context, stages []namedStage, d *decision, sim *Simulation) {
	for _, s := range stages {
		if s.stage == nil {
			continue
		}
		v := s.decide(ctx, d)
		sv := StageVerdict{Stage: s.name, Verdict: VerdictPass}
		if u, ok := s.stage.(unknownStage); ok {
			sv.Verdict, sv.Detail = VerdictUnknown, u.why
		}
		if v.stop {
			sv.Verdict, sv.Outcome, sv.Reason, sv.Detail = VerdictStop, v.outcome, v.reason, v.detail
			if sim.StoppedBy == "" {
				sim.Decision, sim.StoppedBy, sim.Reason, sim.Detail = v.outcome, s.name, v.reason, v.detail
			}
		}
		sim.Stages = append(sim.Stages, sv)
		if _, matching := s.stage.(match); matching && v.stop {
			return
		}
	}
	if sim.StoppedBy == "" {
		sim.Decision = DecisionHeal
		if d.dryRun {
			sim.Decision = DecisionDryRun
		}
	}
}

// simulateResolved is what a resolved alert does: it never acts; it ends a waiting heal of its
// episode and may mark its target healthy.
func simulateResolved(cfg *config.Config, d *decision, sim *Simulation) {
	sim.Decision = outcomeResolved
	sim.Detail = "a resolved alert is never acted on: it ends a heal of its episode that waits, and feeds verification"
	if pb, target, err := matchPlaybook(cfg, d); err == nil && pb != nil {
		sim.Playbook, sim.Target = pb.Name, target
	}
}

// planSteps renders each step of the decision's playbook for its alert, through the same Render
// functions the actuators use.
func planSteps(d *decision) []SimulatedStep {
	data := config.NewTemplateData(d.alert, d.target, d.playbook)
	out := make([]SimulatedStep, 0, len(d.playbook.Steps))
	for i, st := range d.playbook.Steps {
		s := SimulatedStep{Name: stepName(st, i), Action: st.Action()}
		var err error
		switch {
		case st.HTTP != nil:
			method := strings.ToUpper(st.HTTP.Method)
			if method == "" {
				method = "POST"
			}
			if s.URL, err = config.RenderURL(st.HTTP.URL, data); err == nil {
				s.Does = method + " " + s.URL
			}
		case st.Command != nil:
			if s.Argv, err = config.RenderArgv(st.Command.Argv, data); err == nil {
				s.Does = "run " + quoteArgv(s.Argv)
			}
		case st.Docker != nil:
			s.Does, err = platformObject(st.Docker.Action, "container", st.Docker.Container, config.RenderContainerName, data)
		case st.Swarm != nil:
			s.Does, err = platformObject(st.Swarm.Action, "service", st.Swarm.Service, config.RenderSwarmService, data)
		case st.Wait != nil:
			s.Does = "wait " + st.Wait.String()
		default:
			s.Does = describeStep(st)
		}
		if err != nil {
			s.Error = err.Error()
		}
		if v := stepVerify(d.playbook, st); !v.Skip {
			s.Verify = "the alert resolves"
			if !v.Query.IsZero() {
				q, qerr := config.RenderQuery(v.Query, data)
				if qerr != nil {
					s.Verify = "query fails to render: " + qerr.Error()
				} else {
					s.Verify = "query " + q
				}
			}
			if v.Timeout > 0 {
				s.Verify += " within " + model.Duration(v.Timeout).String()
			}
		} else {
			s.Verify = "none (verify.skip)"
		}
		out = append(out, s)
	}
	return out
}

// platformObject says which container or service a step acts on: its own template rendered, or
// the one the actuator finds from the alert's labels when the step runs (the engine is not asked).
func platformObject(action, kind string, t config.Template, render func(config.Template, config.TemplateData) (string, error),
	data config.TemplateData) (string, error) {
	if t.IsZero() {
		return fmt.Sprintf("%s the %s the alert's labels name (found when the step runs)", action, kind), nil
	}
	name, err := render(t, data)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s %s", action, kind, name), nil
}

func quoteArgv(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			b, _ := json.Marshal(a)
			a = string(b)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// copyTargets deep-copies the targets through their stored form, so a simulation's decisions
// cannot reach the pipeline's records (attempts, firing sets, relapse windows).
func copyTargets(ts targetSet) targetSet {
	out := make(targetSet, len(ts))
	for n, orig := range ts {
		b, err := json.Marshal(orig)
		var t store.Target
		if err == nil {
			err = json.Unmarshal(b, &t)
		}
		if err != nil {
			continue // a record that does not encode is not in the store either
		}
		out[n] = &t
	}
	return out
}
