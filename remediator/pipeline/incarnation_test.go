package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/store"
)

// watchedRunner is the fake runner with a platform behind it: it reports the target's run and
// collects evidence as the Docker actuator does, for docker steps. Its own docker actions start
// a new run, as a restart does; restartByPolicy is the kernel and the restart policy doing it.
type watchedRunner struct {
	*fakeRunner
	mu          sync.Mutex
	run         action.Incarnation
	evidenceErr error
	evidence    int
}

func newWatchedRunner() *watchedRunner {
	return &watchedRunner{fakeRunner: newFakeRunner(), run: action.Incarnation{
		Object: "container c1 (0123456789ab)", ID: "0123456789ab", Started: t0, Running: true,
	}}
}

func (r *watchedRunner) Run(ctx context.Context, req action.Request) (string, error) {
	detail, err := r.fakeRunner.Run(ctx, req)
	if req.Step.Docker != nil {
		r.mu.Lock()
		r.run.Started = r.run.Started.Add(time.Minute)
		r.run.Restarts = 0 // as `docker restart` leaves it
		r.mu.Unlock()
	}
	return detail, err
}

func (r *watchedRunner) Incarnation(_ context.Context, req action.Request) (action.Incarnation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.run, nil
}

func (r *watchedRunner) Evidence(_ context.Context, req action.Request) (*action.Evidence, error) {
	if req.Step.Docker == nil {
		return nil, action.ErrNothingToObserve
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evidence++
	if r.evidenceErr != nil {
		return nil, r.evidenceErr
	}
	return &action.Evidence{
		Object: r.run.Object,
		State:  map[string]string{"status": "running", "oom_killed": "false"},
		Log:    strings.Repeat("x", action.MaxEvidenceLog+100) + "\nlast line before the restart\n",
		Events: make([]string, action.MaxEvidenceEvents+5),
	}, nil
}

func (r *watchedRunner) restartByPolicy(oom bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run.Finished = r.run.Started.Add(30 * time.Second)
	r.run.Started = r.run.Finished.Add(time.Second)
	r.run.Restarts++
	r.run.OOMKilled = oom
}

// watch puts r in place of the harness's runner, before any alert is delivered.
func (h *harness) watch(r *watchedRunner) {
	h.p.mu.Lock()
	defer h.p.mu.Unlock()
	h.runner = r.fakeRunner
	h.p.runner = r
	h.p.stepStages = h.p.buildStepStages()
}

// resolveDuringHeal delivers the resolved alert from inside a running heal (a runner's hook)
// and waits until the pipeline has taken it in and done(), if given, holds. It runs on the
// heal's goroutine, so it reports a failure rather than stopping the test.
func (h *harness) resolveDuringHeal(a template.Alert, done func() bool) {
	a.Status, a.EndsAt = "resolved", time.Now()
	entries, errs := intake.Entries(&intake.Message{Data: &template.Data{Alerts: template.Alerts{a}}, Version: "4"}, time.Now())
	if len(errs) > 0 || len(entries) != 1 {
		h.t.Errorf("bad test alert %+v: %v", a, errs)
		return
	}
	if _, err := h.st.Accept(entries); err != nil {
		h.t.Errorf("accept the resolved alert: %v", err)
		return
	}
	h.p.Submit(entries)
	deadline := time.Now().Add(10 * time.Second)
	for !h.p.verifier.IsResolved(entries[0].EpisodeKey) || (done != nil && !done()) {
		if time.Now().After(deadline) {
			h.t.Error("the pipeline did not take the resolved alert in within 10s")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An unflushable leak reaches the container's limit while the flush step waits for its check;
// the kernel kills the container and its restart policy starts it again, and the alert resolves.
// That is not a heal: no step is credited, the restart step never runs.
func TestRestartByPolicyDuringCheckIsNotAHeal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		restart     bool
		oom         bool
		result      string
		steps, what string
	}{
		{"OOM kill and policy restart", true, true, store.HealRestartedOutside, "flush-cache=uncredited;", "after the kernel killed it for lack of memory (OOMKilled)"},
		{"crash and policy restart", true, false, store.HealRestartedOutside, "flush-cache=uncredited;", "restarted by its restart policy (restarts 0 -> 1)"},
		{"same run: the flush healed", false, false, store.HealHealed, "flush-cache=succeeded;", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, playbooks(t), nil) // no Prometheus: the resolved notification verifies
			r := newWatchedRunner()
			h.watch(r)
			a := alert("ServiceMemoryHigh", "c1", "firing")
			r.after = func() {
				if tc.restart {
					r.restartByPolicy(tc.oom)
				}
				h.resolveDuringHeal(a, nil)
			}
			h.deliver(a)
			h.idle()
			hs := h.heals()
			if len(hs) != 1 || hs[0].Result != tc.result || steps(hs[0]) != tc.steps {
				t.Fatalf("heals = %+v, want one %s with %s", hs, tc.result, tc.steps)
			}
			hl := hs[0]
			if hl.Incarnation == nil || hl.Incarnation.Started != t0 {
				t.Errorf("heal incarnation = %+v, want the run it began with", hl.Incarnation)
			}
			if got := h.runner.Calls(); len(got) != 1 {
				t.Errorf("calls = %v, want the flush only", got)
			}
			stats := h.p.stats[statsKey("memory-high", "flush-cache", "ServiceMemoryHigh")]
			if n := len(stats.Outcomes); n != 1 || stats.Outcomes[0] == tc.restart {
				t.Errorf("flush statistics: outcomes %v, want one %s", stats.Outcomes, map[bool]string{true: "failure", false: "success"}[tc.restart])
			}
			if h.counter("heals", "memory-high", tc.result) != 1 {
				t.Errorf("remediator_heals_total{result=%q} != 1", tc.result)
			}
			if !tc.restart {
				if hl.OutsideRestart != nil {
					t.Errorf("outside restart recorded for an unchanged run: %+v", hl.OutsideRestart)
				}
				return
			}
			o := hl.OutsideRestart
			if o == nil || !strings.Contains(o.What, tc.what) || o.After.Restarts != 1 || o.Before.Restarts != 0 {
				t.Fatalf("outside restart = %+v, want it to say %q", o, tc.what)
			}
			if !strings.Contains(hl.Reason, o.What) || hl.Steps[0].Reason != ReasonRestartedOutside {
				t.Errorf("heal reason %q, step reason %q", hl.Reason, hl.Steps[0].Reason)
			}
		})
	}
}

// The alert resolves after a failed step, before the next one starts; the container had been
// restarted by its policy meanwhile. Once "alert resolved during the heal" read as healed.
func TestResolvedBetweenStepsAfterPolicyRestart(t *testing.T) {
	h := newHarness(t, playbooks(t), nil)
	r := newWatchedRunner()
	h.watch(r)
	r.fail["flush-cache"] = true
	a := alert("ServiceMemoryHigh", "c1", "firing")
	r.after = func() {
		r.restartByPolicy(true)
		h.resolveDuringHeal(a, func() bool {
			h.p.mu.Lock()
			defer h.p.mu.Unlock()
			j := h.p.inFlight["c1"]
			return j != nil && j.resolved
		})
	}
	h.deliver(a)
	h.idle()
	hs := h.heals()
	if len(hs) != 1 || hs[0].Result != store.HealRestartedOutside || steps(hs[0]) != "flush-cache=failed;" {
		t.Fatalf("heals = %+v, want restarted_outside after the failed flush, no restart step", hs)
	}
	if o := hs[0].OutsideRestart; o == nil || !strings.Contains(o.What, "OOMKilled") {
		t.Errorf("outside restart = %+v", o)
	}
	if got := h.runner.Calls(); len(got) != 1 {
		t.Errorf("calls = %v, want the flush only", got)
	}
}

// A restart step starts a new run on purpose: the heal expects that run afterwards, and the
// step is credited. Its evidence is kept, bounded, and its absence never stops it.
func TestOwnRestartIsCreditedWithEvidence(t *testing.T) {
	for _, tc := range []struct {
		name        string
		evidenceErr error
	}{
		{"evidence", nil},
		{"evidence fails", errors.New("engine unreachable")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, playbooks(t, fastVerify), quietProm())
			r := newWatchedRunner()
			r.evidenceErr = tc.evidenceErr
			h.watch(r)
			r.fail["flush-cache"] = true
			h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
			h.idle()
			hs := h.heals()
			if len(hs) != 1 || hs[0].Result != store.HealHealed || steps(hs[0]) != "flush-cache=failed;restart=succeeded;" {
				t.Fatalf("heals = %+v", hs)
			}
			flush, restart := hs[0].Steps[0], hs[0].Steps[1]
			if flush.Evidence != nil || flush.EvidenceError != "" || flush.Incarnation != nil {
				t.Errorf("http step has evidence or a run of its own: %+v", flush)
			}
			if restart.Incarnation == nil || restart.Incarnation.Started != t0.Add(time.Minute) {
				t.Errorf("restart step's run = %+v, want the one its action started", restart.Incarnation)
			}
			if r.evidence != 1 {
				t.Errorf("evidence collected %d times, want once, before the restart", r.evidence)
			}
			if tc.evidenceErr != nil {
				if restart.Evidence != nil || restart.EvidenceError != tc.evidenceErr.Error() {
					t.Errorf("evidence %+v, error %q; want the failure recorded", restart.Evidence, restart.EvidenceError)
				}
				return
			}
			ev := restart.Evidence
			if ev == nil || ev.State["status"] != "running" {
				t.Fatalf("restart evidence = %+v", ev)
			}
			if len(ev.Log) > action.MaxEvidenceLog || !strings.HasSuffix(ev.Log, "last line before the restart\n") {
				t.Errorf("evidence log of %d bytes, ending %q: want at most %d, its end kept", len(ev.Log), ev.Log[max(0, len(ev.Log)-40):], action.MaxEvidenceLog)
			}
			if len(ev.Events) != action.MaxEvidenceEvents {
				t.Errorf("%d evidence events kept, want %d", len(ev.Events), action.MaxEvidenceEvents)
			}
		})
	}
}

func TestKeptAnnotations(t *testing.T) {
	a := template.KV{
		"summary":                                "Memory high on c1",
		"runbook_url":                            "https://runbooks.example/memory",
		"description":                            strings.Repeat("d", maxAnnotationValue+10),
		strings.Repeat("n", maxAnnotationName+1): "a name too long",
	}
	for i := range 20 {
		a["extra_"+string(rune('a'+i))] = "x"
	}
	got := keptAnnotations(a)
	if len(got) != maxAnnotations {
		t.Errorf("%d annotations kept, want %d", len(got), maxAnnotations)
	}
	if got["summary"] != a["summary"] || got["runbook_url"] != a["runbook_url"] {
		t.Errorf("summary and runbook_url not kept as they are: %v", got)
	}
	if d := got["description"]; len(d) > maxAnnotationValue+len("…") || !strings.HasSuffix(d, "…") {
		t.Errorf("description of %d bytes kept, want it cut at %d and marked", len(d), maxAnnotationValue)
	}
	if _, ok := got[strings.Repeat("n", maxAnnotationName+1)]; ok || got["extra_a"] != "x" || got["extra_t"] != "" {
		t.Errorf("want the long name left out and the others by name until the bound: %v", got)
	}
	if keptAnnotations(nil) != nil {
		t.Error("no annotations should keep none")
	}

	h := newHarness(t, playbooks(t), quietProm())
	al := alert("ServiceMemoryHigh", "c1", "firing")
	al.Annotations = template.KV{"summary": "Memory high on c1", "runbook_url": "https://runbooks.example/memory"}
	h.deliver(al)
	h.idle()
	if hs := h.heals(); len(hs) != 1 || hs[0].Alert.Annotations["runbook_url"] != "https://runbooks.example/memory" {
		t.Fatalf("heal record's annotations: %+v", hs)
	}
}
