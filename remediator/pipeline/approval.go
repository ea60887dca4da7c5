package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// The approval stage: a step (or a playbook, once per heal) that needs a person waits before it
// acts, in state awaiting_approval, until POST /api/v1/heals/{id}/approve or /reject answers or
// its timeout declines it. The wait is in the store, so a restart resumes it with the time left.

// Step failure reasons of the approval stage.
const (
	// ReasonApprovalTimeout: nobody answered in time; the step is declined and the heal goes on
	// to its next step as after a failed one.
	ReasonApprovalTimeout = "approval_timeout"
	// ReasonApprovalRejected: a person said no; the heal ends as failed.
	ReasonApprovalRejected = "approval_rejected"
	// reasonApprovalShutdown: the remediator stops while a step awaits approval; the heal stays
	// running in the store and waits again after the restart.
	reasonApprovalShutdown = "remediator stopped while awaiting approval"
)

// Errors of Approve and Reject.
var (
	ErrUnknownHeal = errors.New("unknown heal")
	ErrNotAwaiting = errors.New("the heal is not awaiting approval")
)

// ApprovalEvent tells an observer (NotifyApprovals) that a heal began to await approval (State
// is store.ApprovalAwaiting) or that the wait ended (approved, rejected, timed_out, withdrawn).
type ApprovalEvent struct {
	HealID   string
	Target   string
	Playbook string
	Step     string
	// Alert is the alert the heal is for, labels and annotations included.
	Alert     template.Alert
	State     string
	Requested time.Time
	Deadline  time.Time
	// By and Comment are the person's answer (empty on a timeout).
	By      string
	Comment string
}

// ApprovalWithdrawn: the alert resolved while its heal awaited approval; nothing is left to approve.
const ApprovalWithdrawn = "withdrawn"

// approvalState is what a decision carries through its heal for the approval stage.
type approvalState struct {
	// heal is the heal's record, so the wait can be written into it while the step is running.
	heal *store.Heal
	// approved: a person approved a step of this heal (or it acted before a restart), so the
	// playbook's approval, asked once per heal, is given.
	approved bool
	// resumed is the wait a restart found in the store: its step asks no second time.
	resumed *store.PendingApproval
}

// answer is a person's reply or the timeout.
type answer struct {
	state, by, comment string
	at                 time.Time
}

type pendingApproval struct {
	store.PendingApproval
	// reply receives the one answer; claimed says it was given (both under the pipeline lock).
	reply   chan answer
	claimed bool
}

// approvals are the heals awaiting a person. Lock held for every use of the maps.
type approvals struct {
	byHeal   map[string]*pendingApproval
	byTarget map[string]string
	// resuming are the heals the restart found waiting, started by resumeApprovals.
	resuming []*job
	awaiting prometheus.Gauge
	answers  *prometheus.CounterVec
	observe  func(ApprovalEvent)
}

func newApprovals(reg prometheus.Registerer) *approvals {
	f := promauto.With(reg)
	a := &approvals{
		byHeal: map[string]*pendingApproval{}, byTarget: map[string]string{},
		awaiting: f.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_heals_awaiting_approval", Help: "Heals waiting for a person to approve or reject a step.",
		}),
		answers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_approvals_total", Help: "Approvals asked for and answered, by result (approved, rejected, timed_out, withdrawn).",
		}, []string{"result"}),
		observe: func(ApprovalEvent) {},
	}
	for _, r := range []string{store.ApprovalApproved, store.ApprovalRejected, store.ApprovalTimedOut, ApprovalWithdrawn} {
		a.answers.WithLabelValues(r)
	}
	return a
}

// NotifyApprovals sets the function told when a heal starts awaiting approval and when that wait
// ends (see ApprovalEvent), e.g. to send an alert with the approve and reject endpoints. It is
// called from the heal's goroutine without the pipeline's lock and must not block for long.
func (p *Pipeline) NotifyApprovals(fn func(ApprovalEvent)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if fn == nil {
		fn = func(ApprovalEvent) {}
	}
	p.approvals.observe = fn
}

// awaitsApproval reports whether the target's heal waits for a person. Lock held.
func (p *Pipeline) awaitsApproval(target string) bool {
	if p.approvals == nil {
		return false // a pipeline built by hand in a test
	}
	_, ok := p.approvals.byTarget[target]
	return ok
}

// AwaitingApproval is what the targets API shows of a heal waiting for a person: what to
// approve (POST /api/v1/heals/{heal}/approve) and by when.
type AwaitingApproval struct {
	Heal     string    `json:"heal"`
	Step     string    `json:"step"`
	Deadline time.Time `json:"deadline"`
}

// awaitingView is the target's waiting heal, nil if none. Lock held.
func (p *Pipeline) awaitingView(target string) *AwaitingApproval {
	if !p.awaitsApproval(target) {
		return nil
	}
	pa := p.approvals.byHeal[p.approvals.byTarget[target]]
	return &AwaitingApproval{Heal: pa.HealID, Step: pa.StepName, Deadline: pa.Deadline}
}

// approvalGate is the step stage before act.
type approvalGate struct {
	await func(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (string, error)
}

func (s approvalGate) run(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (string, error) {
	return s.await(ctx, d, st, rec)
}

// approvalFor says whether the step needs an answer, how long it waits and whether the
// playbook (not the step) asks.
func approvalFor(d *decision, st *config.Step) (need bool, wait time.Duration, forPlaybook bool) {
	switch {
	case st.Approval.Required:
		return true, st.Approval.Wait(), false
	case d.playbook.Approval.Required && !d.ap.approved:
		return true, d.playbook.Approval.Wait(), true
	}
	return false, 0, false
}

// awaitApproval asks for and waits for the step's approval, when it needs one.
func (p *Pipeline) awaitApproval(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (string, error) {
	need, wait, forPlaybook := approvalFor(d, st)
	if !need || d.ap.heal == nil {
		return "", nil
	}
	now := p.now()
	pa := store.PendingApproval{
		HealID: d.ap.heal.ID, StepName: rec.Name, Target: d.target, Playbook: d.playbook.Name,
		Episode: d.episode, InboxKey: d.inboxKey, Alert: d.alert, ForPlaybook: forPlaybook,
		Requested: now, Deadline: now.Add(wait),
	}
	for i, s := range d.playbook.Steps {
		if s == st {
			pa.Step = i
		}
	}
	if r := d.ap.resumed; r != nil && r.Step == pa.Step {
		pa.Requested, pa.Deadline, rec.Start = r.Requested, r.Deadline, r.Requested
		d.ap.resumed = nil
	}
	rec.Approval = &store.Approval{State: store.ApprovalAwaiting, Requested: pa.Requested, Deadline: pa.Deadline}
	if err := p.store.PutPendingApproval(pa); err != nil {
		return "approval not recorded", fmt.Errorf("record the pending approval: %w", err)
	}
	if err := p.writeRunningStep(d, *rec); err != nil {
		_ = p.store.DeletePendingApproval(pa.HealID)
		return "approval not recorded", err
	}
	pending := &pendingApproval{PendingApproval: pa, reply: make(chan answer, 1)}
	observe := p.startAwaiting(pending)
	p.logger.Info("heal awaits approval", "heal", pa.HealID, "target", d.target, "step", rec.Name,
		"deadline", pa.Deadline, "for_playbook", forPlaybook)
	observe(p.approvalEvent(pa, *rec.Approval))

	ans, stopped := p.waitForAnswer(ctx, d, pending)
	if stopped {
		return reasonApprovalShutdown, ctx.Err()
	}
	rec.Approval.State, rec.Approval.Decided, rec.Approval.By, rec.Approval.Comment = ans.state, ans.at, ans.by, ans.comment
	// The answer is in the heal before the pending record goes: a crash in between finds a
	// running step that is no longer awaiting, and the restart records the heal as interrupted.
	if err := p.writeRunningStep(d, *rec); err != nil {
		p.logger.Error("record the approval's answer", "heal", pa.HealID, "err", err)
	}
	if err := p.store.DeletePendingApproval(pa.HealID); err != nil {
		p.logger.Error("forget the pending approval", "heal", pa.HealID, "err", err)
	}
	p.approvals.answers.WithLabelValues(ans.state).Inc()
	p.logger.Info("approval answered", "heal", pa.HealID, "target", d.target, "step", rec.Name,
		"result", ans.state, "by", ans.by, "comment", ans.comment)
	observe(p.approvalEvent(pa, *rec.Approval))
	switch ans.state {
	case store.ApprovalApproved:
		// Any approval in the heal covers the playbook's: a person has looked at this heal.
		d.ap.approved = true
		// The step's action starts now: its duration, and the hold's question whether the
		// alert came back since the step began, must not count the time a person took.
		rec.Start = ans.at
		return "", nil
	case store.ApprovalRejected:
		return ReasonApprovalRejected, fmt.Errorf("rejected by %s%s", ans.by, commentSuffix(ans.comment))
	case ApprovalWithdrawn:
		return reasonWaitCancelled, errors.New("the alert resolved while the step awaited approval")
	}
	return ReasonApprovalTimeout, fmt.Errorf("no answer within %s", pa.Deadline.Sub(pa.Requested))
}

func commentSuffix(c string) string {
	if c == "" {
		return ""
	}
	return ": " + c
}

// writeRunningStep writes the heal with the step in progress, as heal does before an action.
func (p *Pipeline) writeRunningStep(d *decision, rec store.StepRecord) error {
	h := d.ap.heal
	rec.Outcome = store.StepRunning
	h.Steps = append(h.Steps, rec)
	err := p.writeHeal(d, h)
	h.Steps = h.Steps[:len(h.Steps)-1]
	return err
}

// startAwaiting registers the wait and returns the observer to tell: the one NotifyApprovals
// set, after people are told through Alertmanager.
func (p *Pipeline) startAwaiting(pa *pendingApproval) func(ApprovalEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.approvals.byHeal[pa.HealID] = pa
	p.approvals.byTarget[pa.Target] = pa.HealID
	p.approvals.awaiting.Set(float64(len(p.approvals.byHeal)))
	t := p.target(pa.Target)
	p.publish(t)
	p.saveTarget(t)
	observe := p.approvals.observe
	return func(ev ApprovalEvent) {
		p.noticeApproval(ev)
		observe(ev)
	}
}

// waitForAnswer waits for a person, the deadline, the alert resolving or the shutdown; stopped
// says it was the shutdown (the wait stays in the store).
func (p *Pipeline) waitForAnswer(ctx context.Context, d *decision, pa *pendingApproval) (answer, bool) {
	timer := time.NewTimer(max(0, pa.Deadline.Sub(p.now())))
	defer timer.Stop()
	var own answer
	select {
	case ans := <-pa.reply:
		p.stopAwaiting(pa)
		return ans, false
	case <-timer.C:
		own = answer{state: store.ApprovalTimedOut}
	case <-d.resolved:
		own = answer{state: ApprovalWithdrawn}
	case <-ctx.Done():
		p.stopAwaiting(pa)
		return answer{}, true
	}
	own.at = p.now()
	if !p.claim(pa, own) {
		own = <-pa.reply // a person answered first
	} else {
		<-pa.reply
	}
	p.stopAwaiting(pa)
	return own, false
}

// claim gives the approval its one answer; false if it already has one.
func (p *Pipeline) claim(pa *pendingApproval, ans answer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pa.claimed {
		return false
	}
	pa.claimed = true
	pa.reply <- ans
	return true
}

func (p *Pipeline) stopAwaiting(pa *pendingApproval) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.approvals.byHeal, pa.HealID)
	if p.approvals.byTarget[pa.Target] == pa.HealID {
		delete(p.approvals.byTarget, pa.Target)
	}
	p.approvals.awaiting.Set(float64(len(p.approvals.byHeal)))
	t := p.target(pa.Target)
	p.publish(t)
	p.saveTarget(t)
}

func (p *Pipeline) approvalEvent(pa store.PendingApproval, a store.Approval) ApprovalEvent {
	return ApprovalEvent{HealID: pa.HealID, Target: pa.Target, Playbook: pa.Playbook, Step: pa.StepName,
		Alert: pa.Alert, State: a.State, Requested: pa.Requested, Deadline: pa.Deadline, By: a.By, Comment: a.Comment}
}

// Approve lets the heal's waiting step act; by names who approved.
func (p *Pipeline) Approve(healID, by, comment string) error {
	return p.answer(healID, answer{state: store.ApprovalApproved, by: by, comment: comment})
}

// Reject declines the heal's waiting step and ends the heal as failed; by names who rejected.
func (p *Pipeline) Reject(healID, by, comment string) error {
	return p.answer(healID, answer{state: store.ApprovalRejected, by: by, comment: comment})
}

func (p *Pipeline) answer(healID string, ans answer) error {
	p.mu.Lock()
	pa, ok := p.approvals.byHeal[healID]
	if ok {
		ans.at = p.now()
		if ok = !pa.claimed; ok {
			pa.claimed = true
			pa.reply <- ans
		}
	}
	p.mu.Unlock()
	if ok {
		return nil
	}
	if _, known, err := p.store.Heal(healID); err != nil {
		return err
	} else if !known {
		return ErrUnknownHeal
	}
	return ErrNotAwaiting
}

// HealView is a heal as GET /api/v1/heals/{id} shows it: the record, and what it awaits.
type HealView struct {
	store.Heal
	// AwaitingApproval is set while the heal waits for a person.
	AwaitingApproval *AwaitingApproval `json:"awaiting_approval,omitempty"`
}

// Awaiting is what the heal awaits, nil when it awaits no approval.
func (p *Pipeline) Awaiting(healID string) *AwaitingApproval {
	p.mu.Lock()
	defer p.mu.Unlock()
	pa, ok := p.approvals.byHeal[healID]
	if !ok {
		return nil
	}
	return p.awaitingView(pa.Target)
}

// declined marks a step the approval stage stopped as declined: it did not act. It reports
// whether it did.
func declined(rec *store.StepRecord) bool {
	if rec.Reason == ReasonApprovalRejected || rec.Reason == ReasonApprovalTimeout {
		rec.Outcome = store.StepDeclined
		return true
	}
	return false
}

// loadApprovals finds the heals a restart left awaiting approval and makes them in flight again,
// to be resumed by resumeApprovals; other pending records are stale and dropped. Lock held,
// before closeInterrupted, which leaves these heals alone.
func (p *Pipeline) loadApprovals() error {
	pending, err := p.store.PendingApprovals()
	if err != nil {
		return err
	}
	for i := range pending {
		pa := pending[i]
		j, ok := p.resumable(pa)
		if !ok {
			p.logger.Warn("dropping an approval the restart cannot resume; the heal is recorded as interrupted",
				"heal", pa.HealID, "target", pa.Target, "step", pa.StepName)
			if err := p.store.DeletePendingApproval(pa.HealID); err != nil {
				return err
			}
			continue
		}
		p.inFlight[pa.Target] = j
		p.byEpisode[pa.Episode] = j
		p.approvals.resuming = append(p.approvals.resuming, j)
	}
	p.m.inFlight.Set(float64(len(p.inFlight)))
	return nil
}

// resumable rebuilds the heal's job when its record still awaits that step and the playbook
// still has it.
func (p *Pipeline) resumable(pa store.PendingApproval) (*job, bool) {
	h, ok, err := p.store.Heal(pa.HealID)
	if err != nil || !ok || h.Result != store.HealRunning || len(h.Steps) == 0 {
		return nil, false
	}
	last := h.Steps[len(h.Steps)-1]
	if last.Outcome != store.StepRunning || last.Approval == nil || last.Approval.State != store.ApprovalAwaiting || last.Name != pa.StepName {
		return nil, false
	}
	if _, busy := p.inFlight[pa.Target]; busy {
		return nil, false
	}
	pb := p.playbookByName(pa.Playbook)
	if pa.Step >= len(pb.Steps) || stepName(pb.Steps[pa.Step], pa.Step) != pa.StepName {
		return nil, false
	}
	h.Steps = h.Steps[:len(h.Steps)-1]
	d := &decision{inboxKey: pa.InboxKey, alert: pa.Alert, episode: pa.Episode, playbook: pb, target: pa.Target,
		now: p.now(), resolved: make(chan struct{})}
	d.ap = approvalState{heal: &h, resumed: &pa, approved: approvedBefore(h)}
	return &job{d: d}, true
}

// approvedBefore reports whether a person approved the heal, or it acted, before the restart:
// the playbook's approval is not asked again.
func approvedBefore(h store.Heal) bool {
	for _, st := range h.Steps {
		if (st.Approval != nil && st.Approval.State == store.ApprovalApproved) || st.Outcome == store.StepSucceeded || st.Outcome == store.StepFailed {
			return true
		}
	}
	return false
}

// resuming reports whether the restart resumes the heal. Lock held.
func (p *Pipeline) resuming(healID string) bool {
	for _, j := range p.approvals.resuming {
		if j.d.ap.heal.ID == healID {
			return true
		}
	}
	return false
}

// resumeApprovals runs the heals the restart found awaiting approval from their waiting step.
func (p *Pipeline) resumeApprovals(ctx context.Context) {
	p.mu.Lock()
	jobs := p.approvals.resuming
	p.approvals.resuming = nil
	p.mu.Unlock()
	for _, j := range jobs {
		p.logger.Info("resuming a heal that awaits approval", "heal", j.d.ap.heal.ID, "target", j.d.target,
			"deadline", j.d.ap.resumed.Deadline)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.healDone(j)
			h := j.d.ap.heal
			p.runSteps(ctx, j, h, j.d.ap.resumed.Step, h.Started)
		}()
	}
}
