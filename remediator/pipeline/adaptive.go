package pipeline

import (
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// Adaptive statistics: each playbook step keeps its recent outcomes per alert name, each with
// its time. An outcome weighs 2^(-age/half_life), so the record of a bad week fades instead of
// disabling the step for good; a step whose weighted success ratio is below min_success_ratio,
// with at least min_samples of weight behind it, is skipped, except on every explore_every-th
// decision, when it is tried anyway (an exploration) so that a step that works again can show it.
// Everything is decided from the stored outcomes and a count of skips, never from chance, so a
// test with a fake clock sees exactly what production does.

// statsKept is how many recent outcomes each step's statistics keep.
const statsKept = 20

// stepOutcome is what happened to a step, as its statistics count it.
type stepOutcome int

const (
	// stepHealed: the step ran and healed the target.
	stepHealed stepOutcome = iota
	// stepFailed: the step ran and did not heal it.
	stepFailed
	// stepRelapsed: a heal credited to the step did not last. Its newest success becomes a
	// failure, dated when the relapse was seen, so it weighs as a failed heal, not as a success
	// and a failure.
	stepRelapsed
)

// adaptiveMetrics counts the explorations.
type adaptiveMetrics struct {
	explorations *prometheus.CounterVec
}

func newAdaptiveMetrics(reg prometheus.Registerer) *adaptiveMetrics {
	return &adaptiveMetrics{explorations: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "remediator_step_explorations_total",
		Help: "Steps tried although their success ratio would skip them (adaptive.explore_every), by playbook and step.",
	}, []string{"playbook", "step"})}
}

// reset pre-creates the series of the loaded playbooks' steps and drops the others.
func (m *adaptiveMetrics) reset(cfg *config.Config) {
	m.explorations.Reset()
	if cfg == nil {
		return
	}
	for _, pb := range cfg.Playbooks {
		if !pb.Adaptive.Enabled {
			continue
		}
		for i, st := range pb.Steps {
			m.explorations.WithLabelValues(pb.Name, stepName(st, i))
		}
	}
}

// adaptiveSkip decides whether step i runs given its statistics for this alert name. A step
// with a poor record is skipped, or tried as an exploration, noted on rec. The last step is
// never skipped: a heal must try something.
func (p *Pipeline) adaptiveSkip(d *decision, st *config.Step, i int, rec *store.StepRecord) (string, bool) {
	a := d.playbook.Adaptive
	if !a.Enabled || i == len(d.playbook.Steps)-1 {
		return "", false
	}
	name, alertname := stepName(st, i), d.alert.Labels["alertname"]
	key := statsKey(d.playbook.Name, name, alertname)
	p.mu.Lock()
	defer p.mu.Unlock()
	stats := p.stats[key]
	now := p.now()
	ratio, samples := weigh(stats, now, halfLife(a))
	p.m.successRatio.WithLabelValues(d.playbook.Name, name, alertname).Set(ratio)
	// Rounded: outcomes of a moment ago weigh a hair under 1, and should count as whole.
	if math.Round(samples) < float64(max(a.MinSamples, 1)) || ratio >= a.MinSuccessRatio {
		return "", false
	}
	poor := fmt.Sprintf("success ratio %.2f over %.1f weighted heals is below %.2f", ratio, samples, a.MinSuccessRatio)
	if a.ExploreEvery > 0 && stats.Skipped+1 >= a.ExploreEvery {
		rec.Exploration = fmt.Sprintf("%s; tried anyway after %d skips (explore_every %d)", poor, stats.Skipped, a.ExploreEvery)
		p.adaptive.explorations.WithLabelValues(d.playbook.Name, name).Inc()
		p.logger.Info("trying a step despite its success ratio", "target", d.target, "playbook", d.playbook.Name,
			"step", name, "alertname", alertname, "ratio", ratio, "skipped_before", stats.Skipped)
		return "", false
	}
	stats.Skipped++
	p.stats[key] = stats
	p.saveStats(key, stats)
	return "adaptive: " + poor, true
}

// recordOutcome records outcome o of step of playbook for alertname at time at: it updates the
// statistics the adaptive skip reads, remediator_step_success_ratio and the stored copy. Every
// outcome that should count for or against a step goes through here (a step's own result, a
// relapse). Lock held.
func (p *Pipeline) recordOutcome(playbook, step, alertname string, o stepOutcome, at time.Time) {
	key := statsKey(playbook, step, alertname)
	st := p.stats[key]
	switch o {
	case stepHealed, stepFailed:
		addOutcome(&st, o == stepHealed, at)
		st.Skipped = 0
	case stepRelapsed:
		takeBackSuccess(&st, at)
	}
	p.stats[key] = st
	p.saveStats(key, st)
	ratio, _ := weigh(st, p.now(), halfLife(p.playbookByName(playbook).Adaptive))
	p.m.successRatio.WithLabelValues(playbook, step, alertname).Set(ratio)
}

// addOutcome appends an outcome at its time, keeping the newest statsKept.
func addOutcome(st *store.StepStats, ok bool, at time.Time) {
	st.Outcomes = append(st.Outcomes, ok)
	st.At = append(st.At, at)
	if n := len(st.Outcomes) - statsKept; n > 0 {
		st.Outcomes = st.Outcomes[n:]
		st.At = st.At[n:]
	}
}

// takeBackSuccess removes the newest success and adds a failure at at. When the success is no
// longer kept, the failure is added alone.
func takeBackSuccess(st *store.StepStats, at time.Time) {
	for i := len(st.Outcomes) - 1; i >= 0; i-- {
		if st.Outcomes[i] {
			st.Outcomes = append(st.Outcomes[:i], st.Outcomes[i+1:]...)
			st.At = append(st.At[:i], st.At[i+1:]...)
			break
		}
	}
	addOutcome(st, false, at)
}

// weigh is the success ratio of the outcomes, each weighing 2^(-age/halfLife), and their total
// weight (the samples min_samples is compared with, rounded). All failures stay a ratio of 0
// however old; it is the total weight falling under min_samples that lets the step run again.
func weigh(st store.StepStats, now time.Time, halfLife time.Duration) (ratio, samples float64) {
	ok := 0.0
	for i, healed := range st.Outcomes {
		w := 1.0
		if i < len(st.At) && halfLife > 0 {
			if age := now.Sub(st.At[i]); age > 0 {
				w = math.Exp2(-float64(age) / float64(halfLife))
			}
		}
		samples += w
		if healed {
			ok += w
		}
	}
	if samples == 0 {
		return 0, 0
	}
	return ok / samples, samples
}

// datePastOutcomes gives the outcomes of a state file written before outcomes had times the
// time of loading: they start to fade from the restart on, rather than weighing forever or
// being thrown away. Lock held.
func (p *Pipeline) datePastOutcomes(now time.Time) {
	for key, st := range p.stats {
		if len(st.At) == len(st.Outcomes) {
			continue
		}
		at := make([]time.Time, len(st.Outcomes))
		for i := range at {
			if i < len(st.At) {
				at[i] = st.At[i]
			} else {
				at[i] = now
			}
		}
		st.At = at
		p.stats[key] = st
	}
}

func halfLife(a config.Adaptive) time.Duration {
	if a.HalfLife <= 0 {
		return time.Duration(config.DefaultDefaults().Adaptive.HalfLife)
	}
	return time.Duration(a.HalfLife)
}

func statsKey(playbook, step, alertname string) string {
	return playbook + "\x00" + step + "\x00" + alertname
}

// outcomeOf is how a step that ran counts: only a success heals.
func outcomeOf(rec store.StepRecord) stepOutcome {
	if rec.Outcome == store.StepSucceeded {
		return stepHealed
	}
	return stepFailed
}

// saveStats queues a step's statistics for the store. Lock held: not waited for, since the
// next decision must not wait for the disk; the store keeps them in the order they were queued.
func (p *Pipeline) saveStats(key string, st store.StepStats) {
	done := p.store.QueueStepStats(key, st)
	go func() {
		if err := <-done; err != nil {
			p.logger.Error("record step statistics", "err", err)
		}
	}()
}
