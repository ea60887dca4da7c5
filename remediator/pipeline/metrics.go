package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// Suppression reasons, the values of remediator_heals_suppressed_total{reason}, and
// ReasonRateLimit, the one of remediator_heals_deferred_total{reason}.
const (
	ReasonCooldown     = "cooldown"
	ReasonBudget       = "budget"
	ReasonBlastRadius  = "blast_radius"
	ReasonPaused       = "paused"
	ReasonRateLimit    = "rate_limit"
	ReasonDryRun       = "dry_run"
	ReasonPrecondition = "precondition"
	ReasonTimeWindow   = "time_window"
)

var suppressionReasons = []string{ReasonCooldown, ReasonBudget, ReasonBlastRadius, ReasonPaused,
	ReasonDryRun, ReasonPrecondition, ReasonTimeWindow}

type metrics struct {
	alerts       *prometheus.CounterVec
	heals        *prometheus.CounterVec
	relapsed     *prometheus.CounterVec
	steps        *prometheus.CounterVec
	stepDuration *prometheus.HistogramVec
	healDuration *prometheus.HistogramVec
	timeToHeal   *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	waiting      prometheus.Gauge
	suppressed   *prometheus.CounterVec
	deferred     *prometheus.CounterVec
	stopped      *prometheus.CounterVec
	successRatio *prometheus.GaugeVec
	paused       prometheus.Gauge
}

// AlertsCounter is remediator_alerts_total; the intake shares it so both count outcomes of the
// same alerts in one series family.
func newMetrics(reg prometheus.Registerer, alerts *prometheus.CounterVec) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		alerts: alerts,
		heals: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_heals_total", Help: "Heals finished, by playbook and result.",
		}, []string{"playbook", "result"}),
		// Apart from remediator_heals_total: a relapsed heal has already been counted there
		// with its own result, and a heal ends once.
		relapsed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_heals_relapsed_total", Help: "Healed heals whose alert came back within the relapse window, by playbook.",
		}, []string{"playbook"}),
		steps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_steps_total", Help: "Heal steps finished, by playbook, step, action and result.",
		}, []string{"playbook", "step", "action", "result"}),
		stepDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "remediator_step_duration_seconds", Help: "Duration of a step's action and verification.",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"playbook", "action"}),
		healDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "remediator_heal_duration_seconds", Help: "Duration of a heal from its first step to its end.",
			Buckets: []float64{.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"playbook"}),
		timeToHeal: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "remediator_time_to_heal_seconds", Help: "Time from the alert's startsAt to a verified heal.",
			Buckets: []float64{5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200},
		}, []string{"playbook"}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_heals_in_flight", Help: "Heals running now.",
		}),
		waiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_heals_waiting", Help: "Heals waiting for their turn (at most one per target).",
		}),
		suppressed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_heals_suppressed_total", Help: "Heals not run, by reason.",
		}, []string{"reason"}),
		// Kept apart from the suppressed: a deferred heal still runs, so counting it there would
		// make an alert on suppressions fire for heals that happened.
		deferred: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_heals_deferred_total", Help: "Heals held back before starting, by reason; each still runs when its turn comes.",
		}, []string{"reason"}),
		stopped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_decisions_stopped_total", Help: "Alerts decided without a heal, by the stage that stopped them.",
		}, []string{"stage"}),
		successRatio: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remediator_step_success_ratio", Help: "Recent success ratio of a playbook step for an alert name.",
		}, []string{"playbook", "step", "alertname"}),
		paused: f.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_paused", Help: "1 while healing is paused globally.",
		}),
	}
	for _, r := range suppressionReasons {
		m.suppressed.WithLabelValues(r)
	}
	m.deferred.WithLabelValues(ReasonRateLimit)
	return m
}

// resetPlaybooks drops the per-playbook series of playbooks that may no longer exist and
// pre-creates those of the loaded configuration, so every series starts at 0.
func (m *metrics) resetPlaybooks(cfg *config.Config) {
	m.heals.Reset()
	m.relapsed.Reset()
	m.steps.Reset()
	m.stepDuration.Reset()
	m.healDuration.Reset()
	m.timeToHeal.Reset()
	m.successRatio.Reset()
	if cfg == nil {
		return
	}
	for _, pb := range cfg.Playbooks {
		for _, r := range []string{"healed", "failed", "interrupted", "dry_run", "resolved", "restarted_outside"} {
			m.heals.WithLabelValues(pb.Name, r)
		}
		m.relapsed.WithLabelValues(pb.Name)
		m.healDuration.WithLabelValues(pb.Name)
		m.timeToHeal.WithLabelValues(pb.Name)
		for i, st := range pb.Steps {
			for _, r := range []string{"succeeded", "failed", "skipped", "dry_run", "cancelled", "uncredited"} {
				m.steps.WithLabelValues(pb.Name, stepName(st, i), st.Action(), r)
			}
			m.stepDuration.WithLabelValues(pb.Name, st.Action())
		}
	}
}

// targetMetrics exports the per-target gauges (remediator_target_state, _target_suspended,
// _budget_remaining, _cooldown_until_timestamp_seconds) from the pipeline's targets when scraped,
// and remediator_targets, the targets per state. Gauge vectors would keep four series objects
// per target, about 1.6 KB, besides what the targets map already holds.
//
// A scrape costs microseconds per series, so with a hundred thousand targets the per-target
// series alone took seconds to build and to send, and they are as many series for Prometheus to
// keep. Past limit targets, only limit targets get per-target series: the suspended ones first
// (the budget-exhausted alert reads them), then by state from the most to the least urgent, by
// name within a state; remediator_targets still counts every target, and
// remediator_target_series_omitted says how many have no series.
type targetMetrics struct {
	p                                  *Pipeline
	limit                              int // 0: every target
	state, suspended, budget, cooldown *prometheus.Desc
	byState, omitted                   *prometheus.Desc
}

func newTargetMetrics(p *Pipeline, limit int) *targetMetrics {
	target := []string{"target"}
	return &targetMetrics{
		p: p, limit: limit,
		state: prometheus.NewDesc("remediator_target_state",
			"Target state: 0 healthy, 1 degraded, 2 failing, 3 recovering, 4 stabilizing, 5 suspended, 6 paused, 7 awaiting_approval.", target, nil),
		suspended: prometheus.NewDesc("remediator_target_suspended",
			"1 while the target's heal budget is spent and healing it is suspended.", target, nil),
		budget: prometheus.NewDesc("remediator_budget_remaining",
			"Heal attempts left in the target's budget window.", target, nil),
		cooldown: prometheus.NewDesc("remediator_cooldown_until_timestamp_seconds",
			"When the target's cooldown ends (0: none).", target, nil),
		byState: prometheus.NewDesc("remediator_targets",
			"Known targets in each state.", []string{"state"}, nil),
		omitted: prometheus.NewDesc("remediator_target_series_omitted",
			"Targets left without per-target series because there are more than --metrics.target-series-limit.", nil, nil),
	}
}

func (m *targetMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.state
	ch <- m.suspended
	ch <- m.budget
	ch <- m.cooldown
	ch <- m.byState
	ch <- m.omitted
}

// targetSample is one target's gauge values, read under the pipeline's lock.
type targetSample struct {
	name                       string
	state, suspended, cooldown float64
	// budgetLeft is -1 for a playbook without a budget: that target has no budget series.
	budgetLeft int
}

// Collect reads the targets under the pipeline's lock and builds the series after releasing it,
// so a scrape holds decisions up only for the copy.
func (m *targetMetrics) Collect(ch chan<- prometheus.Metric) {
	samples, counts, omitted := m.p.targetSamples(m.limit)
	for _, s := range samples {
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, s.state, s.name)
		ch <- prometheus.MustNewConstMetric(m.suspended, prometheus.GaugeValue, s.suspended, s.name)
		if s.budgetLeft >= 0 {
			ch <- prometheus.MustNewConstMetric(m.budget, prometheus.GaugeValue, float64(s.budgetLeft), s.name)
		}
		ch <- prometheus.MustNewConstMetric(m.cooldown, prometheus.GaugeValue, s.cooldown, s.name)
	}
	for state := range StateValues {
		ch <- prometheus.MustNewConstMetric(m.byState, prometheus.GaugeValue, float64(counts[state]), state)
	}
	ch <- prometheus.MustNewConstMetric(m.omitted, prometheus.GaugeValue, float64(omitted))
}

// seriesOrder is the order in which targets get per-target series past the limit: the most
// urgent states first.
var seriesOrder = []string{StateSuspended, StateAwaitingApproval, StateFailing, StateRecovering,
	StateStabilizing, StateDegraded, StatePaused, StateHealthy}

// targetSamples is what the per-target gauges show, for at most limit targets (0: all): the state
// publish last derived, and the budget and cooldown as of now; with the targets per state and
// how many were left out.
func (p *Pipeline) targetSamples(limit int) ([]targetSample, map[string]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	counts := make(map[string]int, len(StateValues))
	for _, t := range p.targets {
		counts[t.State]++
	}
	chosen := p.seriesTargets(limit)
	out := make([]targetSample, 0, len(chosen))
	for _, t := range chosen {
		s := targetSample{name: t.Name, state: StateValues[t.State], suspended: b2f(t.Suspended),
			budgetLeft: budgetLeft(t, p.playbookByName(t.Playbook).Budget, now)}
		if now.Before(t.CooldownUntil) {
			s.cooldown = float64(t.CooldownUntil.UnixNano()) / 1e9
		}
		out = append(out, s)
	}
	return out, counts, len(p.targets) - len(chosen)
}

// seriesTargets picks the targets that get per-target series (see targetMetrics). Lock held.
func (p *Pipeline) seriesTargets(limit int) []*store.Target {
	if limit <= 0 || len(p.targets) <= limit {
		out := make([]*store.Target, 0, len(p.targets))
		for _, t := range p.targets {
			out = append(out, t)
		}
		return out
	}
	rank := make(map[string]int, len(seriesOrder))
	for i, s := range seriesOrder {
		rank[s] = i + 1
	}
	groups := make([][]*store.Target, len(seriesOrder)+1) // 0: suspended whatever the state
	for _, name := range p.targetNames() {
		t := p.targets[name]
		g, known := rank[t.State]
		if !known {
			g = len(seriesOrder)
		}
		if t.Suspended {
			g = 0
		}
		groups[g] = append(groups[g], t)
	}
	out := make([]*store.Target, 0, limit)
	for _, g := range groups {
		out = append(out, g[:min(len(g), limit-len(out))]...)
	}
	return out
}

func stepName(st *config.Step, i int) string {
	if st.Name != "" {
		return st.Name
	}
	return config.DefaultStepName(i, st.Action())
}
