package pipeline

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/remediator/store"
)

// approvalOn makes the first step of testdata/playbooks.yml wait for a person for timeout.
func approvalOn(timeout string) edit {
	return edit{"      - name: flush-cache\n", "      - name: flush-cache\n        approval: {required: true, timeout: " + timeout + "}\n"}
}

// events records what the pipeline tells its approval observer.
type events struct {
	mu  sync.Mutex
	got []ApprovalEvent
}

func (e *events) add(ev ApprovalEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, ev)
}

func (e *events) states() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, ev := range e.got {
		s = append(s, ev.State+"/"+ev.Step+"/"+ev.By)
	}
	return strings.Join(s, ",")
}

// awaiting waits until c1's heal awaits approval and returns its id.
func (h *harness) awaiting() string {
	h.t.Helper()
	waitFor(h.t, func() bool {
		return h.targetGauge("remediator_target_state", "c1") == StateValues[StateAwaitingApproval]
	})
	hs := h.heals()
	if len(hs) == 0 || hs[0].Result != store.HealRunning {
		h.t.Fatalf("no running heal while awaiting approval: %+v", hs)
	}
	last := hs[0].Steps[len(hs[0].Steps)-1]
	if last.Outcome != store.StepRunning || last.Approval == nil || last.Approval.State != store.ApprovalAwaiting {
		h.t.Fatalf("the heal record does not show the wait: %+v", last)
	}
	if got := testutil.ToFloat64(h.p.approvals.awaiting); got != 1 {
		h.t.Fatalf("remediator_heals_awaiting_approval = %v, want 1", got)
	}
	if calls := h.runner.Calls(); len(calls) != 0 {
		h.t.Fatalf("acted before approval: %v", calls)
	}
	return hs[0].ID
}

func TestApprovalAnswers(t *testing.T) {
	tests := []struct {
		name    string
		timeout string
		answer  func(p *Pipeline, id string) error
		steps   string
		result  string
		calls   int
		events  string
		reason  string
	}{
		{"approved", "1h", func(p *Pipeline, id string) error { return p.Approve(id, "alice", "go ahead") },
			"flush-cache=succeeded;", store.HealHealed, 1, "awaiting/flush-cache/,approved/flush-cache/alice", ""},
		{"rejected", "1h", func(p *Pipeline, id string) error { return p.Reject(id, "bob", "not now") },
			"flush-cache=declined;", store.HealFailed, 0, "awaiting/flush-cache/,rejected/flush-cache/bob", "rejected by bob: not now"},
		// The timeout declines the step and the heal escalates to the next, as after a failure.
		{"timed out", "150ms", nil,
			"flush-cache=declined;restart=succeeded;", store.HealHealed, 1, "awaiting/flush-cache/,timed_out/flush-cache/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, playbooks(t, approvalOn(tc.timeout)), quietProm())
			var ev events
			h.p.NotifyApprovals(ev.add)
			h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
			id := h.awaiting()
			if tc.answer != nil {
				if err := tc.answer(h.p, id); err != nil {
					t.Fatal(err)
				}
			}
			h.idle()
			hs := h.heals()
			if len(hs) != 1 || steps(hs[0]) != tc.steps || hs[0].Result != tc.result || !strings.Contains(hs[0].Reason, tc.reason) {
				t.Fatalf("heal = %+v", hs)
			}
			if got := len(h.runner.Calls()); got != tc.calls {
				t.Errorf("actions = %v", h.runner.Calls())
			}
			a := hs[0].Steps[0].Approval
			if a == nil || a.Decided.IsZero() || !a.Deadline.After(a.Requested) {
				t.Fatalf("approval record = %+v", a)
			}
			if ev.states() != tc.events {
				t.Errorf("events = %s, want %s", ev.states(), tc.events)
			}
			if tc.name == "timed out" && hs[0].Steps[0].Reason != ReasonApprovalTimeout {
				t.Errorf("timed-out step reason = %q", hs[0].Steps[0].Reason)
			}
			if got := testutil.ToFloat64(h.p.approvals.awaiting); got != 0 {
				t.Errorf("remediator_heals_awaiting_approval = %v after the answer", got)
			}
			if err := h.p.Approve(id, "late", ""); !errors.Is(err, ErrNotAwaiting) {
				t.Errorf("answering a finished heal: %v, want ErrNotAwaiting", err)
			}
		})
	}
}

func TestApproveUnknownHeal(t *testing.T) {
	h := newHarness(t, playbooks(t), quietProm())
	if err := h.p.Approve("42", "alice", ""); !errors.Is(err, ErrUnknownHeal) {
		t.Fatalf("Approve(42) = %v, want ErrUnknownHeal", err)
	}
	if a := h.p.Awaiting("42"); a != nil {
		t.Fatalf("Awaiting(42) = %+v", a)
	}
}

func TestApprovalWithdrawnWhenTheAlertResolves(t *testing.T) {
	h := newHarness(t, playbooks(t, approvalOn("1h")), nil)
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.awaiting()
	h.deliver(alert("ServiceMemoryHigh", "c1", "resolved"))
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealResolved || steps(hs[0]) != "flush-cache=cancelled;" ||
		hs[0].Steps[0].Approval.State != ApprovalWithdrawn || len(h.runner.Calls()) != 0 {
		t.Fatalf("heal = %+v, calls %v", hs, h.runner.Calls())
	}
}

func TestPlaybookApprovalIsAskedOnce(t *testing.T) {
	h := newHarness(t, playbooks(t, fastVerify, edit{"    steps:\n", "    approval: {required: true}\n    steps:\n"}),
		firingProm("ServiceMemoryHigh"))
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	if err := h.p.Approve(h.awaiting(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	h.idle()
	hs := h.heals()
	// Both steps ran (neither verified): the approval of the first covered the second.
	if len(hs) != 1 || steps(hs[0]) != "flush-cache=failed;restart=failed;" || hs[0].Steps[1].Approval != nil {
		t.Fatalf("heal = %+v", hs)
	}
}

func TestApprovalSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	yaml := playbooks(t, approvalOn("1h"))
	h := newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner())
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	id := h.awaiting()
	before := h.heals()[0].Steps[0].Approval
	h.stop()

	h2 := newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner())
	if got := h2.awaiting(); got != id {
		t.Fatalf("after the restart heal %s awaits, want %s", got, id)
	}
	after := h2.heals()[0].Steps[0].Approval
	if !after.Deadline.Equal(before.Deadline) || !after.Requested.Equal(before.Requested) {
		t.Errorf("the restart moved the deadline: %+v, then %+v", before, after)
	}
	if err := h2.p.Approve(id, "alice", "after the restart"); err != nil {
		t.Fatal(err)
	}
	h2.idle()
	hs := h2.heals()
	if len(hs) != 1 || hs[0].ID != id || hs[0].Result != store.HealHealed || steps(hs[0]) != "flush-cache=succeeded;" ||
		hs[0].Steps[0].Approval.By != "alice" {
		t.Fatalf("heals after the restart = %+v", hs)
	}
	if calls := h2.runner.Calls(); len(calls) != 1 {
		t.Errorf("actions after the restart = %v", calls)
	}
	pending, err := h2.st.PendingApprovals()
	if err != nil || len(pending) != 0 {
		t.Errorf("pending approvals left: %+v, %v", pending, err)
	}
}

func TestApprovalDeadlinePassedDuringRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock(time.Now())
	yaml := playbooks(t, approvalOn("1m"))
	h := newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner(), withClock(clock))
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.awaiting()
	h.stop()
	clock.advance(2 * time.Minute)
	h2 := newHarnessIn(t, dir, yaml, quietProm(), newFakeRunner(), withClock(clock))
	h2.idle()
	hs := h2.heals()
	if len(hs) != 1 || steps(hs[0]) != "flush-cache=declined;restart=succeeded;" || hs[0].Steps[0].Approval.State != store.ApprovalTimedOut {
		t.Fatalf("heal = %+v", hs)
	}
}

// A step's own approval counts as the playbook's: the next step asks nothing more.
func TestStepApprovalCoversThePlaybooks(t *testing.T) {
	h := newHarness(t, playbooks(t, fastVerify, approvalOn("1h"), edit{"    steps:\n", "    approval: {required: true}\n    steps:\n"}),
		firingProm("ServiceMemoryHigh"))
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	if err := h.p.Approve(h.awaiting(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	h.idle()
	if hs := h.heals(); len(hs) != 1 || steps(hs[0]) != "flush-cache=failed;restart=failed;" || hs[0].Steps[1].Approval != nil {
		t.Fatalf("heal = %+v", hs)
	}
}
