package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
)

// DispatcherOptions configure a Dispatcher. Every field may be left empty.
type DispatcherOptions struct {
	// HTTPClient runs http steps; nil means NewHTTPClient().
	HTTPClient *http.Client
	// Actuators run the steps of their kind (docker, swarm, kubernetes); a step whose kind has
	// no actuator fails with ErrNotConfigured.
	Actuators []Actuator
	Logger    *slog.Logger
}

// Dispatcher is the Runner the pipeline uses: it hands each step to the runner for its action.
type Dispatcher struct {
	http      *HTTPRunner
	command   *CommandRunner
	wait      *WaitRunner
	actuators map[string]Actuator
	logger    *slog.Logger
}

var (
	_ Runner              = (*Dispatcher)(nil)
	_ EvidenceCollector   = (*Dispatcher)(nil)
	_ IncarnationReporter = (*Dispatcher)(nil)
)

// NewDispatcher builds a Dispatcher.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		http:      &HTTPRunner{Client: o.HTTPClient},
		command:   &CommandRunner{},
		wait:      &WaitRunner{},
		actuators: make(map[string]Actuator, len(o.Actuators)),
		logger:    logger,
	}
	for _, a := range o.Actuators {
		d.actuators[a.Kind()] = a
	}
	return d
}

// Run performs req.Step's action. The step's timeout bounds every action but wait, whose
// duration is its own bound.
func (d *Dispatcher) Run(ctx context.Context, req Request) (string, error) {
	if req.Step == nil {
		return "", errors.New("no step to run")
	}
	kind := req.Step.Action()
	var r Runner
	switch kind {
	case "http":
		r = d.http
	case "command":
		r = d.command
	case "wait":
		r = d.wait
	case "":
		return "", fmt.Errorf("step %q has no action", req.Step.Name)
	default:
		a, ok := d.actuators[kind]
		if !ok {
			return "", notConfigured(kind)
		}
		r = a
	}
	if kind != "wait" {
		var cancel context.CancelFunc
		ctx, cancel = withStepTimeout(ctx, req.Step)
		defer cancel()
	}
	start := time.Now()
	detail, err := r.Run(ctx, req)
	d.logger.Debug("action done", "playbook", playbookName(req), "step", req.Step.Name, "action", kind,
		"target", req.Target, "duration", time.Since(start), "detail", detail, "err", err)
	return detail, err
}

// ErrNothingToObserve is returned by Evidence and Incarnation for a step whose platform keeps no
// state of its target (http, command, wait), or whose actuator collects none.
var ErrNothingToObserve = errors.New("nothing to observe for this step")

// Evidence asks the actuator of req.Step, when it is an EvidenceCollector, for the state and
// last output of the step's target; ErrNothingToObserve otherwise.
func (d *Dispatcher) Evidence(ctx context.Context, req Request) (*Evidence, error) {
	if req.Step == nil {
		return nil, errors.New("no step to observe")
	}
	c, ok := d.actuators[req.Step.Action()].(EvidenceCollector)
	if !ok {
		return nil, ErrNothingToObserve
	}
	return c.Evidence(ctx, req)
}

// Incarnation asks which run of the target's process is current. The target of an http or
// command step is the one the playbook's platform steps act on (a flush before a restart is
// about the same container), so the question goes to the actuator of req.Step or else of the
// playbook's first step with an IncarnationReporter, with that step in the request: its
// container template, if any, is what names the target. ErrNothingToObserve when the playbook
// has no such step.
func (d *Dispatcher) Incarnation(ctx context.Context, req Request) (Incarnation, error) {
	if req.Step == nil {
		return Incarnation{}, errors.New("no step to observe")
	}
	steps := []*config.Step{req.Step}
	if req.Playbook != nil {
		steps = append(steps, req.Playbook.Steps...)
	}
	for _, st := range steps {
		if r, ok := d.actuators[st.Action()].(IncarnationReporter); ok {
			req.Step = st
			return r.Incarnation(ctx, req)
		}
	}
	return Incarnation{}, ErrNothingToObserve
}

func playbookName(r Request) string {
	if r.Playbook == nil {
		return ""
	}
	return r.Playbook.Name
}

func withStepTimeout(ctx context.Context, st *config.Step) (context.Context, context.CancelFunc) {
	if st == nil || st.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Duration(st.Timeout))
}

// timeoutError says how long an action was given when its context ended, and keeps the
// context's error in the chain so callers can tell a timeout (errors.Is DeadlineExceeded).
func timeoutError(ctx context.Context, what string, start time.Time) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: no result within %s: %w", what, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	return fmt.Errorf("%s: interrupted after %s: %w", what, time.Since(start).Round(time.Millisecond), ctx.Err())
}

// snippet shortens output for an error message: at most n bytes, control characters shown as
// spaces, so a hostile or binary answer cannot garble logs.
func snippet(b []byte, n int) string {
	cut := len(b) > n
	if cut {
		b = b[:n]
	}
	out := make([]rune, 0, len(b))
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		out = append(out, r)
	}
	s := string(out)
	if cut {
		s += "…"
	}
	return s
}
