package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/notify"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// Options builds a Pipeline.
type Options struct {
	Store    *store.Store
	Runner   action.Runner
	Verifier *verify.Verifier
	Logger   *slog.Logger
	// Registerer receives the pipeline's metrics (remediator_heals_*, remediator_target_*, ...).
	Registerer prometheus.Registerer
	// TargetSeriesLimit is how many targets at most get per-target series (0: all of them).
	TargetSeriesLimit int
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Tick is how often states, suspensions, pauses and parked decisions are re-evaluated
	// (default 1s).
	Tick time.Duration
	// Notifier tells people of heals through Alertmanager (see notices.go); nil: nobody.
	Notifier *notify.Notifier
}

// Pipeline is the remediator's decision and healing engine.
type Pipeline struct {
	store    *store.Store
	runner   action.Runner
	verifier *verify.Verifier
	logger   *slog.Logger
	now      func() time.Time
	tick     time.Duration
	m        *metrics
	adaptive *adaptiveMetrics
	notifier *notify.Notifier

	// stages is the decision in order (see stages.go), rebuilt on each configuration change.
	stages []namedStage
	// stepStages is what each step of a heal does, in order (see stages.go).
	stepStages []namedStepStage

	qmu      sync.Mutex
	incoming []store.InboxEntry
	signal   chan struct{}
	kick     chan struct{}

	mu      sync.Mutex
	cfg     *config.Config
	limiter *rate.Limiter
	global  store.Pause
	targets targetSet
	// sortedNames are the targets' names in order for the API's pages; namesChanged says a
	// target went away since they were sorted (one that came changes their number).
	sortedNames  []string
	namesChanged bool
	stats        map[string]store.StepStats
	waiting      map[string]*job
	waitOrder    []string
	inFlight     map[string]*job
	// stabilizing holds the targets whose heal is in a step's hold (see stabilize.go).
	stabilizing map[string]bool
	byEpisode   map[string]*job
	parked      map[string]*decision
	blast       blastMemory
	busy        int // decisions being made, for WaitIdle
	// dirty and closes buffer store writes of decisions (see flushWrites).
	dirty  map[string]bool
	closes []store.Close
	// approvals are the heals awaiting a person (see approval.go).
	approvals *approvals

	// healStarts are the starts the limiter was charged for inside its window, and heldDirty
	// the targets whose held-back alert changed since the last write (windows.go).
	healStarts []time.Time
	heldDirty  map[string]bool
	// suspended holds the targets RemediationSuspended was raised for (see noticeSuspension).
	suspended map[string]bool

	wg sync.WaitGroup
}

// New builds a pipeline with its configuration; call Start to run it.
func New(o Options, cfg *config.Config) (*Pipeline, error) {
	if o.Store == nil || o.Runner == nil {
		return nil, errors.New("pipeline needs a store and a runner")
	}
	if o.Verifier == nil {
		o.Verifier = verify.New(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	alerts := promauto.With(o.Registerer).NewCounterVec(prometheus.CounterOpts{
		Name: "remediator_alerts_total",
		Help: "Alerts received, by outcome (accepted, deduplicated, unmatched, rejected, resolved).",
	}, []string{"outcome"})
	for _, o := range []string{"accepted", "deduplicated", "unmatched", "rejected", "resolved"} {
		alerts.WithLabelValues(o)
	}
	p := &Pipeline{
		store: o.Store, runner: o.Runner, verifier: o.Verifier, logger: o.Logger, now: o.Now, tick: o.Tick,
		m:           newMetrics(o.Registerer, alerts),
		adaptive:    newAdaptiveMetrics(o.Registerer),
		signal:      make(chan struct{}, 1),
		kick:        make(chan struct{}, 1),
		limiter:     rate.NewLimiter(rate.Inf, 1),
		targets:     targetSet{},
		stats:       map[string]store.StepStats{},
		waiting:     map[string]*job{},
		inFlight:    map[string]*job{},
		stabilizing: map[string]bool{},
		byEpisode:   map[string]*job{},
		parked:      map[string]*decision{},
		blast:       blastMemory{},
		dirty:       map[string]bool{},
		approvals:   newApprovals(o.Registerer),
		suspended:   map[string]bool{},
		notifier:    o.Notifier,
	}
	o.Registerer.MustRegister(newTargetMetrics(p, o.TargetSeriesLimit))
	p.SetConfig(cfg)
	for _, s := range p.stages {
		p.m.stopped.WithLabelValues(s.name)
	}
	return p, nil
}

// AlertsCounter is remediator_alerts_total, shared with the intake.
func (p *Pipeline) AlertsCounter() *prometheus.CounterVec { return p.m.alerts }

// SetConfig swaps the configuration (hot reload). Heals in flight finish with the playbook they
// started with.
func (p *Pipeline) SetConfig(cfg *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
	p.stages, p.stepStages = p.buildStages(cfg), p.buildStepStages()
	perMinute := config.DefaultGlobal().HealsPerMinute
	if cfg != nil && cfg.Global.HealsPerMinute != 0 {
		perMinute = cfg.Global.HealsPerMinute
	}
	limit := rate.Limit(perMinute / 60)
	if perMinute < 0 || math.IsInf(perMinute, 1) {
		limit = rate.Inf
	}
	p.limiter.SetLimit(limit)
	p.limiter.SetBurst(max(1, p.maxConcurrent()))
	p.m.resetPlaybooks(cfg)
	p.adaptive.reset(cfg)
	p.configureNotices(cfg)
	p.kickDispatcher()
}

func (p *Pipeline) maxConcurrent() int {
	if p.cfg == nil || p.cfg.Global.MaxConcurrentHeals <= 0 {
		return config.DefaultGlobal().MaxConcurrentHeals
	}
	return p.cfg.Global.MaxConcurrentHeals
}

// Start restores what the store kept (heals cut short by a crash become "interrupted"; accepted
// but undecided alerts are decided again) and runs the pipeline until ctx ends.
func (p *Pipeline) Start(ctx context.Context) error {
	if err := p.restore(); err != nil {
		return err
	}
	inbox, err := p.store.Inbox()
	if err != nil {
		return err
	}
	if len(inbox) > 0 {
		p.logger.Info("deciding alerts accepted before the restart", "count", len(inbox))
	}
	p.resumeApprovals(ctx)
	p.Submit(inbox)
	p.startNotices(ctx)
	p.wg.Add(3)
	go func() { defer p.wg.Done(); p.decideLoop(ctx) }()
	go func() { defer p.wg.Done(); p.dispatch(ctx) }()
	go func() { defer p.wg.Done(); p.tickLoop(ctx) }()
	return nil
}

// Wait waits for the pipeline's goroutines after ctx ended.
func (p *Pipeline) Wait() { p.wg.Wait() }

// Submit hands durably accepted alerts to the pipeline. It never blocks on a decision.
func (p *Pipeline) Submit(entries []store.InboxEntry) {
	if len(entries) == 0 {
		return
	}
	p.qmu.Lock()
	p.incoming = append(p.incoming, entries...)
	p.qmu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *Pipeline) decideLoop(ctx context.Context) {
	for {
		p.qmu.Lock()
		batch := p.incoming
		p.incoming = nil
		p.mu.Lock()
		p.busy = len(batch)
		p.mu.Unlock()
		p.qmu.Unlock()
		for i, e := range batch {
			p.decideOne(ctx, e)
			if i%256 == 255 {
				p.mu.Lock()
				p.flushWrites()
				p.mu.Unlock()
			}
		}
		p.mu.Lock()
		p.flushWrites()
		p.busy = 0
		p.mu.Unlock()
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-p.signal:
		}
	}
}

// decideOne runs the onArrival stages for one alert and queues the heal they let through.
func (p *Pipeline) decideOne(ctx context.Context, e store.InboxEntry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &decision{inboxKey: e.Key, alert: e.Alert, episode: e.EpisodeKey, now: p.now()}
	if e.Resolved {
		p.resolve(d)
		return
	}
	if v := runStages(ctx, p.stages, onArrival, d); v.stop {
		p.finishDecision(d, v)
		p.afterDecision(d)
		return
	}
	p.enqueue(d)
	p.afterDecision(d)
}

func (p *Pipeline) afterDecision(d *decision) {
	if d.target == "" {
		return
	}
	t := p.target(d.target)
	p.publish(t)
	p.saveTarget(t)
}

// gate runs the onTurn stages again for a decision about to act. Lock held.
func (p *Pipeline) gate(ctx context.Context, d *decision) verdict {
	return runStages(ctx, p.stages, onTurn, d)
}

// handling says whether a heal for the episode is waiting or running. Lock held.
func (p *Pipeline) handling(episode string) bool {
	_, ok := p.byEpisode[episode]
	return ok
}

// resolve handles a resolved alert: it never acts; it ends waiting or escalating heals for the
// episode, feeds verification, and marks the target healthy when nothing else fires. Lock held.
func (p *Pipeline) resolve(d *decision) {
	p.verifier.Resolved(d.episode, d.now)
	if j := p.dropWaitingEpisode(d.episode); j != nil {
		p.closeDecision(j.d, outcomeResolved, "")
	}
	pb, target, err := matchPlaybook(p.cfg, d)
	if err != nil && pb != nil {
		p.noticeResolved("", d.alert.Labels["alertname"]) // declined as invalid_target, without a target
	}
	if err == nil && pb != nil {
		d.playbook, d.target = pb, target
		t := p.target(target)
		t.Firing.Delete(d.episode)
		if t.Firing.Len() == 0 {
			t.HealthySince = d.now
			p.release(target)
		}
		if pd, ok := p.parked[target]; ok && pd.episode == d.episode {
			p.release(target)
		}
		p.publish(t)
		p.saveTarget(t)
		p.noticeResolved(target, d.alert.Labels["alertname"])
	}
	p.closeDecision(d, outcomeResolved, "")
}

// restore loads what the store kept of the targets, the step statistics and the global pause,
// and closes the heals a crash cut short.
func (p *Pipeline) restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadState(); err != nil {
		return err
	}
	now := p.now()
	if err := p.loadApprovals(); err != nil {
		return err
	}
	p.datePastOutcomes(now)
	if err := p.restoreGuards(now); err != nil {
		return err
	}
	if err := p.closeInterrupted(now); err != nil {
		return err
	}
	for _, t := range p.targets {
		p.publish(t)
	}
	p.m.paused.Set(b2f(p.global.In(now)))
	return nil
}

// loadState reads the targets, step statistics and global pause from the store. Lock held.
func (p *Pipeline) loadState() error {
	ts, err := p.store.Targets()
	if err != nil {
		return err
	}
	for i := range ts {
		t := ts[i]
		p.targets[t.Name] = &t
	}
	if p.stats, err = p.store.StepStats(); err != nil {
		return err
	}
	p.global, err = p.store.GlobalPause()
	return err
}

// closeInterrupted turns heals that were running when the process died into "interrupted"
// ones: they count against the budget, start the cooldown, and their episode gets no second
// action. Lock held.
func (p *Pipeline) closeInterrupted(now time.Time) error {
	running, err := p.store.RunningHeals()
	if err != nil {
		return err
	}
	for i := range running {
		h := &running[i]
		if p.resuming(h.ID) {
			continue
		}
		for k := range h.Steps {
			if h.Steps[k].Outcome == store.StepRunning {
				h.Steps[k].Outcome = store.StepInterrupted
				h.Steps[k].End = now
				h.Steps[k].Error = "the remediator stopped during this step"
			}
		}
		h.Result, h.Ended, h.Reason = store.HealInterrupted, now, "the remediator stopped during the heal"
		pb := p.playbookByName(h.Playbook)
		t := p.target(h.Target)
		startCooldown(t, pb.Cooldown, now)
		t.LastHealID, t.LastHealAt, t.LastHealResult = h.ID, h.Started, h.Result
		budgetUse(t, pb.Budget, now)
		ep := verify.EpisodeKey(template.Alert{Fingerprint: h.Alert.Fingerprint, StartsAt: h.Alert.StartsAt})
		if err := p.store.FinishHeal(h, *t, ep, ep); err != nil {
			return err
		}
		p.m.heals.WithLabelValues(h.Playbook, store.HealInterrupted).Inc()
		p.logger.Warn("heal was interrupted by a restart; it counts against the budget and is not repeated",
			"heal", h.ID, "target", h.Target, "playbook", h.Playbook)
	}
	return nil
}

func (p *Pipeline) healDone(j *job) {
	p.mu.Lock()
	delete(p.inFlight, j.d.target)
	delete(p.byEpisode, j.d.episode)
	p.m.inFlight.Set(float64(len(p.inFlight)))
	t := p.target(j.d.target)
	p.publish(t)
	p.saveTarget(t)
	p.flushWrites()
	p.mu.Unlock()
	p.kickDispatcher()
}

// tickLoop re-evaluates what time changes: budget windows, cooldowns, pause expiry, parked
// decisions; and prunes the history.
func (p *Pipeline) tickLoop(ctx context.Context) {
	t := time.NewTicker(p.tick)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.reevaluate(ctx)
		if now := p.now(); now.Sub(lastPrune) > 10*time.Minute {
			lastPrune = now
			p.prune(now)
		}
	}
}

// reevaluate is one tick's work on what the passing of time changes.
//
// It looks at the targets and the held-back alerts tickChunk at a time, taking the lock for each
// chunk: with a hundred thousand targets a whole pass held decisions, the API and scrapes up for
// a good part of every second.
func (p *Pipeline) reevaluate(ctx context.Context) {
	p.mu.Lock()
	now := p.now()
	p.expireGlobalPause(now)
	names := p.targetNames()
	p.mu.Unlock()
	for chunk := range slices.Chunk(names, tickChunk) {
		p.mu.Lock()
		p.refreshTargets(chunk, now)
		p.mu.Unlock()
	}
	p.mu.Lock()
	parked := slices.Collect(maps.Keys(p.parked))
	blastHolds := p.blastStillHolds(now)
	p.mu.Unlock()
	for chunk := range slices.Chunk(parked, tickChunk) {
		p.mu.Lock()
		p.retryParked(ctx, chunk, now, blastHolds)
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushWrites()
	p.forgetBlast(now)
}

// tickChunk is how many targets or held-back alerts a tick looks at under one hold of the lock.
const tickChunk = 1000

// expireGlobalPause ends a global pause whose time is up. Lock held.
func (p *Pipeline) expireGlobalPause(now time.Time) {
	if p.global.Active && !p.global.In(now) {
		p.global = store.Pause{}
		_ = p.store.PutGlobalPause(p.global)
	}
	p.m.paused.Set(b2f(p.global.In(now)))
}

// refreshTargets ends expired target pauses, resets the cooldowns of targets healthy long
// enough, and derives each target's state again, saving the targets that changed. Lock held.
func (p *Pipeline) refreshTargets(names []string, now time.Time) {
	for _, name := range names {
		t, ok := p.targets[name]
		if !ok {
			continue // forgotten since the names were taken
		}
		before := *t
		if t.Pause.Active && !t.Pause.In(now) {
			t.Pause = store.Pause{}
		}
		resetCooldownIfHealthy(t, p.playbookByName(t.Playbook).Cooldown, now)
		p.publish(t)
		if before.State != t.State || before.Suspended != t.Suspended || before.Pause != t.Pause || before.Consecutive != t.Consecutive {
			p.saveTarget(t)
		}
	}
}

// retryParked decides the held-back alerts of targets again and queues those whose block has
// lifted; it drops those whose target has a heal waiting or whose alert no longer fires.
// blastHolds are the playbooks whose blast radius still refuses (blastStillHolds). Lock held.
func (p *Pipeline) retryParked(ctx context.Context, targets []string, now time.Time, blastHolds map[string]bool) {
	var ready []*decision
	for _, target := range targets {
		d, ok := p.parked[target]
		if !ok {
			continue // released since the targets were taken
		}
		if _, busy := p.waiting[target]; busy {
			p.release(target)
			continue
		}
		if !p.target(target).Firing.Has(d.episode) {
			p.release(target)
			continue
		}
		d.now = now
		if d.blockedBy == ReasonBlastRadius && blastHolds[d.playbook.Name] {
			continue
		}
		if v := p.gate(ctx, d); v.stop {
			if v.reason != d.blockedBy {
				d.blockedBy = v.reason
				p.m.suppressed.WithLabelValues(v.reason).Inc()
				p.logger.Info("held-back alert still blocked", "target", target, "stage", v.stage, "reason", v.reason, "detail", v.detail)
			}
			continue
		}
		ready = append(ready, d)
	}
	p.unpark(ready)
	for _, d := range ready {
		p.release(d.target)
		if d.stored {
			continue // its alert is lost: unpark said why
		}
		p.logger.Info("deciding a held-back alert again", "target", d.target, "alertname", d.alert.Labels["alertname"])
		p.enqueue(d)
	}
}

// unpark gives the decisions about to be decided again their alerts' labels, annotations and
// generator URL back from the held-back records, read once for all of them. A decision whose
// record cannot be read stays stored, with an error in the log: that alert is dropped, and
// Alertmanager's next repeat brings it back. Lock held.
func (p *Pipeline) unpark(ds []*decision) {
	var targets []string
	for _, d := range ds {
		if d.stored {
			targets = append(targets, d.target)
		}
	}
	if len(targets) == 0 {
		return
	}
	held, err := p.store.HeldBackOf(targets)
	if err != nil {
		p.logger.Error("read held-back alerts; dropping them", "targets", len(targets), "err", err)
		return
	}
	for _, d := range ds {
		hb, ok := held[d.target]
		switch {
		case !d.stored:
		case !ok || hb.EpisodeKey != d.episode:
			p.logger.Error("held-back alert not in the state store; dropping it", "target", d.target, "episode", d.episode)
		default:
			d.alert.GeneratorURL, d.alert.Labels, d.alert.Annotations = hb.Alert.GeneratorURL, hb.Alert.Labels, hb.Alert.Annotations
			d.stored = false
		}
	}
}

func (p *Pipeline) prune(now time.Time) {
	p.mu.Lock()
	def := config.DefaultGlobal()
	maxAge, maxEntries := time.Duration(def.HistoryMaxAge), def.HistoryMaxEntries
	if p.cfg != nil {
		if p.cfg.Global.HistoryMaxAge > 0 {
			maxAge = time.Duration(p.cfg.Global.HistoryMaxAge)
		}
		if p.cfg.Global.HistoryMaxEntries > 0 {
			maxEntries = p.cfg.Global.HistoryMaxEntries
		}
	}
	p.forgetIdleTargets(now, maxAge)
	p.mu.Unlock()
	if n, err := p.store.Prune(now, maxAge, maxEntries); err != nil {
		p.logger.Error("prune heal history", "err", err)
	} else if n > 0 {
		p.logger.Debug("pruned heal history", "removed", n)
	}
}

// forgetIdleTargets drops targets with nothing to remember (healthy, no pause, no attempts in the
// budget window, last heal older than maxAge), so state and per-target series stay bounded by the
// targets that matter. Lock held.
func (p *Pipeline) forgetIdleTargets(now time.Time, maxAge time.Duration) {
	var gone []string
	for name, t := range p.targets {
		_, busy := p.inFlight[name]
		_, waits := p.waiting[name]
		if busy || waits || t.Firing.Len() > 0 || len(t.Attempts) > 0 || t.Suspended || t.Pause.Active ||
			now.Before(t.CooldownUntil) || now.Sub(t.LastHealAt) < maxAge || now.Sub(t.HealthySince) < maxAge {
			continue
		}
		gone = append(gone, name)
	}
	if len(gone) == 0 {
		return
	}
	p.flushWrites()
	if err := p.store.DeleteTargets(gone); err != nil {
		p.logger.Error("forget idle targets", "err", err)
		return
	}
	p.namesChanged = true
	for _, name := range gone {
		delete(p.targets, name)
		p.release(name)
	}
	p.logger.Debug("forgot idle targets", "count", len(gone))
}

// WaitIdle waits until no alert is being decided, waiting or healing (tests, shutdown).
func (p *Pipeline) WaitIdle(ctx context.Context) error {
	for {
		p.qmu.Lock()
		queued := len(p.incoming)
		p.qmu.Unlock()
		p.mu.Lock()
		idle := queued == 0 && p.busy == 0 && len(p.waiting) == 0 && len(p.inFlight) == 0
		p.mu.Unlock()
		if idle {
			return p.store.Flush()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
