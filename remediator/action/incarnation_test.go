package action

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
)

func TestIncarnationChangeSince(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := Incarnation{Object: "container api (3f2a9c1b0d4e)", ID: "3f2a9c1b0d4e", Started: t0, Running: true}
	for _, tc := range []struct {
		name  string
		after func(i *Incarnation)
		want  string // "" for the same run
	}{
		{"same run", func(*Incarnation) {}, ""},
		{"replaced", func(i *Incarnation) {
			i.ID, i.Object, i.Started = "9e8d7c6b5a4f", "container api (9e8d7c6b5a4f)", t0.Add(time.Minute)
		}, "container api (3f2a9c1b0d4e) was replaced by container api (9e8d7c6b5a4f), started 2026-01-02T03:05:05Z"},
		{"OOM kill, policy restart", func(i *Incarnation) {
			i.Restarts, i.Started, i.Finished, i.OOMKilled = 1, t0.Add(time.Minute), t0.Add(59*time.Second), true
		}, "restarted by its restart policy (restarts 0 -> 1), last at 2026-01-02T03:05:05Z, after the kernel killed it for lack of memory (OOMKilled) at 2026-01-02T03:05:04Z"},
		{"crash, policy restart, down again", func(i *Incarnation) {
			i.Restarts, i.Started, i.Finished, i.Running = 2, t0.Add(time.Minute), t0.Add(61*time.Second), false
		}, "restarts 0 -> 2), last at 2026-01-02T03:05:05Z, after its process ended at 2026-01-02T03:05:06Z; it is not running now"},
		{"stopped", func(i *Incarnation) {
			i.Running, i.Finished, i.ExitCode = false, t0.Add(time.Hour), 143
		}, "container api (3f2a9c1b0d4e) stopped at 2026-01-02T04:04:05Z with exit code 143"},
		{"restarted by a person", func(i *Incarnation) { i.Started = t0.Add(time.Minute) },
			"was started again at 2026-01-02T03:05:05Z, not by its restart policy: by a person or another tool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := before
			tc.after(&after)
			got := after.ChangeSince(before)
			if tc.want == "" {
				if got != "" || !after.Same(before) {
					t.Errorf("same run reads as %q", got)
				}
				return
			}
			if after.Same(before) || !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

// watchful is an actuator that collects evidence and reports runs, naming the step it was asked
// about; plain is one that does neither.
type watchful struct{ kind string }

func (w watchful) Kind() string                                 { return w.kind }
func (w watchful) Run(context.Context, Request) (string, error) { return "", nil }
func (w watchful) Evidence(_ context.Context, req Request) (*Evidence, error) {
	return &Evidence{Object: req.Step.Name}, nil
}
func (w watchful) Incarnation(_ context.Context, req Request) (Incarnation, error) {
	return Incarnation{Object: req.Step.Name}, nil
}

type plain struct{ kind string }

func (p plain) Kind() string                                 { return p.kind }
func (p plain) Run(context.Context, Request) (string, error) { return "", nil }

func TestDispatcherObservesThePlaybooksPlatform(t *testing.T) {
	d := NewDispatcher(DispatcherOptions{Actuators: []Actuator{watchful{"docker"}}})
	flush := &config.Step{Name: "flush", HTTP: &config.HTTPAction{}}
	restart := &config.Step{Name: "restart", Docker: &config.DockerAction{Action: "restart"}}
	ctx := context.Background()

	inc, err := d.Incarnation(ctx, Request{Playbook: &config.Playbook{Steps: []*config.Step{flush, restart}}, Step: flush})
	if err != nil || inc.Object != "restart" {
		t.Errorf("run of an http step's target: %+v, %v; want the docker step's actuator asked about that step", inc, err)
	}
	if _, err := d.Incarnation(ctx, Request{Playbook: &config.Playbook{Steps: []*config.Step{flush}}, Step: flush}); !errors.Is(err, ErrNothingToObserve) {
		t.Errorf("playbook without platform steps: err = %v, want ErrNothingToObserve", err)
	}
	if ev, err := d.Evidence(ctx, Request{Step: restart}); err != nil || ev.Object != "restart" {
		t.Errorf("evidence of a docker step: %+v, %v", ev, err)
	}
	if _, err := d.Evidence(ctx, Request{Step: flush}); !errors.Is(err, ErrNothingToObserve) {
		t.Errorf("evidence of an http step: err = %v, want ErrNothingToObserve", err)
	}
	blind := NewDispatcher(DispatcherOptions{Actuators: []Actuator{plain{"docker"}}})
	if _, err := blind.Evidence(ctx, Request{Step: restart}); !errors.Is(err, ErrNothingToObserve) {
		t.Errorf("evidence from an actuator that collects none: err = %v, want ErrNothingToObserve", err)
	}
	if _, err := blind.Incarnation(ctx, Request{Playbook: &config.Playbook{Steps: []*config.Step{restart}}, Step: restart}); !errors.Is(err, ErrNothingToObserve) {
		t.Errorf("run from an actuator that reports none: err = %v, want ErrNothingToObserve", err)
	}
}
