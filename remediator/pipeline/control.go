package pipeline

import (
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/selfheal/selfheal/remediator/store"
)

// ErrUnknownTarget is returned for a target the remediator never saw.
var ErrUnknownTarget = errors.New("unknown target")

// TargetView is a target as the API shows it.
type TargetView struct {
	Name          string     `json:"name"`
	State         string     `json:"state"`
	Playbook      string     `json:"playbook,omitempty"`
	AttemptsUsed  int        `json:"attempts_used"`
	AttemptsLeft  *int       `json:"attempts_left"`
	BudgetWindow  string     `json:"budget_window,omitempty"`
	Suspended     bool       `json:"suspended"`
	CooldownUntil *time.Time `json:"cooldown_until"`
	Paused        bool       `json:"paused"`
	PausedUntil   *time.Time `json:"paused_until,omitempty"`
	Firing        []string   `json:"firing"`
	LastHeal      *LastHeal  `json:"last_heal"`
	// AwaitingApproval is set while the target's heal waits for a person.
	AwaitingApproval *AwaitingApproval `json:"awaiting_approval,omitempty"`
}

// LastHeal summarises the target's latest heal.
type LastHeal struct {
	ID      string    `json:"id"`
	Result  string    `json:"result"`
	Started time.Time `json:"started"`
}

// TargetPage selects targets by name: those after After, at most Limit of them (0: all).
type TargetPage struct {
	After string
	Limit int
}

// TargetList is a page of targets and what all of them add up to, so that a fleet of a hundred
// thousand targets is summed up without listing it.
type TargetList struct {
	Targets []TargetView `json:"targets"`
	// Total counts all targets; States counts them by state; Firing counts the alerts firing on
	// all of them.
	Total  int            `json:"total"`
	States map[string]int `json:"states"`
	Firing int            `json:"firing"`
	// Next is the After of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// TargetList lists a page of the known targets by name, with the counts of all of them.
func (p *Pipeline) TargetList(page TargetPage) TargetList {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := TargetList{Total: len(p.targets), States: map[string]int{}}
	for _, t := range p.targets {
		out.States[t.State]++
		out.Firing += t.Firing.Len()
	}
	names := p.targetNames()
	first, _ := slices.BinarySearch(names, page.After)
	if page.After != "" && first < len(names) && names[first] == page.After {
		first++
	}
	last := len(names)
	if page.Limit > 0 && first+page.Limit < last {
		last = first + page.Limit
		out.Next = names[last-1]
	}
	out.Targets = make([]TargetView, 0, last-first)
	for _, name := range names[first:last] {
		out.Targets = append(out.Targets, p.targetView(p.targets[name], now))
	}
	return out
}

// targetNames are the known targets' names in order, sorted again only when targets came or
// went since the last time. The slice is never changed afterwards: it may be read without the
// lock. Lock held.
func (p *Pipeline) targetNames() []string {
	if len(p.sortedNames) == len(p.targets) && !p.namesChanged {
		return p.sortedNames
	}
	names := make([]string, 0, len(p.targets))
	for name := range p.targets {
		names = append(names, name)
	}
	slices.Sort(names)
	p.sortedNames, p.namesChanged = names, false
	return names
}

// targetView is a target as the API shows it. Lock held.
func (p *Pipeline) targetView(t *store.Target, now time.Time) TargetView {
	p.publish(t)
	pb := p.playbookByName(t.Playbook)
	used, left := budgetUse(t, pb.Budget, now)
	v := TargetView{
		Name: t.Name, State: t.State, Playbook: t.Playbook, AttemptsUsed: used,
		Suspended: t.Suspended, Paused: t.Pause.In(now) || p.global.In(now), Firing: []string{},
	}
	if left >= 0 {
		v.AttemptsLeft = &left
	}
	if pb.Budget.Window > 0 {
		v.BudgetWindow = pb.Budget.Window.String()
	}
	if now.Before(t.CooldownUntil) {
		cd := t.CooldownUntil
		v.CooldownUntil = &cd
	}
	if t.Pause.In(now) && !t.Pause.Until.IsZero() {
		u := t.Pause.Until
		v.PausedUntil = &u
	}
	for f := range t.Firing.Alerts() {
		v.Firing = append(v.Firing, f.Alertname)
	}
	sort.Strings(v.Firing)
	if t.LastHealID != "" {
		v.LastHeal = &LastHeal{ID: t.LastHealID, Result: t.LastHealResult, Started: t.LastHealAt}
	}
	v.AwaitingApproval = p.awaitingView(t.Name)
	return v
}

// Heals lists heals, newest first.
func (p *Pipeline) Heals(f store.HealFilter) ([]store.Heal, error) { return p.store.Heals(f) }

// Pause stops healing globally (target "") or for one target, for d (0: until resumed).
func (p *Pipeline) Pause(target string, d time.Duration, reason string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushWrites()
	now := p.now()
	pause := store.Pause{Active: true, Reason: reason}
	if d > 0 {
		pause.Until = now.Add(d)
	}
	if target == "" {
		p.global = pause
		p.m.paused.Set(1)
		for _, t := range p.targets {
			p.publish(t)
		}
		return p.store.PutGlobalPause(pause)
	}
	t := p.target(target)
	t.Pause = pause
	p.publish(t)
	return p.store.PutTarget(*t)
}

// Resume ends a pause; held-back alerts are decided again on the next tick.
func (p *Pipeline) Resume(target string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushWrites()
	if target == "" {
		p.global = store.Pause{}
		p.m.paused.Set(0)
		for _, t := range p.targets {
			p.publish(t)
		}
		return p.store.PutGlobalPause(p.global)
	}
	t, ok := p.targets[target]
	if !ok {
		return ErrUnknownTarget
	}
	t.Pause = store.Pause{}
	p.publish(t)
	return p.store.PutTarget(*t)
}

// Reset clears a target's spent budget, suspension and cooldown after a person has looked.
func (p *Pipeline) Reset(target string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushWrites()
	t, ok := p.targets[target]
	if !ok {
		return ErrUnknownTarget
	}
	t.Attempts, t.Suspended, t.Consecutive, t.CooldownUntil = nil, false, 0, time.Time{}
	p.publish(t)
	return p.store.PutTarget(*t)
}

// WaitingGauge is remediator_heals_waiting (tests).
func (p *Pipeline) WaitingGauge() prometheus.Gauge { return p.m.waiting }
