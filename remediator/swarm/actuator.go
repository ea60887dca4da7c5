// Package swarm is the remediator's Docker Swarm actuator: it resolves an alert to one service
// through a manager's engine API, refuses services that did not opt in (and its own, and
// protected ones), and force-updates, scales or rolls it back, waiting for Swarm to converge
// before it reports.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/docker"
)

// DefaultTimeout bounds one action including the wait for the update to converge. A rolling
// update of a few tasks with Swarm's defaults (one at a time, no delay) takes seconds; a
// service with an update delay takes longer and should say so in its step's timeout.
const DefaultTimeout = 5 * time.Minute

// Options configure an Actuator.
type Options struct {
	// Host is the address of a manager's engine; empty means DOCKER_HOST, else the local socket.
	Host string
	// OptInLabel must be "true" on a service (its own labels, not its containers') for it to
	// be touched.
	OptInLabel string
	// ProtectedLabel, with any value, puts a service out of reach even if it opted in.
	ProtectedLabel string
	// SelfService is the remediator's own service, by name or id; empty means: find it from
	// the container the remediator runs in, if it runs as a Swarm task.
	SelfService string
	// Timeout bounds each action, the wait for convergence included.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Actuator runs swarm steps. It is safe for concurrent use.
type Actuator struct {
	action.Settings
	cli  *client.Client
	host string
	// poll is how often a wait looks at the service and its tasks.
	poll time.Duration

	selfMu        sync.Mutex
	selfService   string // name or id given, or the id found
	selfContainer string // the container this process runs in, if any
	selfKnown     bool
}

var (
	_ action.Actuator          = (*Actuator)(nil)
	_ action.EvidenceCollector = (*Actuator)(nil)
)

// New builds an Actuator. Like the docker actuator it does not contact the engine, so the
// remediator starts (and answers Alertmanager) while a manager is unreachable.
func New(opts Options) (*Actuator, error) {
	a := &Actuator{
		Settings: action.Settings{OptInLabel: opts.OptInLabel, ProtectedLabel: opts.ProtectedLabel,
			Timeout: opts.Timeout, Logger: opts.Logger}.WithDefaults(DefaultTimeout),
		poll:        250 * time.Millisecond,
		selfService: strings.TrimSpace(opts.SelfService),
	}
	if a.selfService != "" {
		if config.ValidSwarmServiceName(a.selfService) != nil {
			return nil, fmt.Errorf("self service %q is neither a service name nor an id", opts.SelfService)
		}
		a.selfKnown = true
	} else {
		a.selfContainer, _ = docker.DetectSelfContainerID()
		a.selfKnown = a.selfContainer == ""
	}
	cli, host, err := docker.NewClient(opts.Host)
	if err != nil {
		return nil, err
	}
	a.cli, a.host = cli, host
	return a, nil
}

// Close releases the client's idle connections.
func (a *Actuator) Close() error { return a.cli.Close() }

// Kind is the step key swarm steps are written under.
func (a *Actuator) Kind() string { return "swarm" }

type actionFunc func(a *Actuator, ctx context.Context, s *service, sa *config.SwarmAction) (string, error)

var actions = map[string]actionFunc{
	"force-update": (*Actuator).forceUpdate,
	"scale":        (*Actuator).scale,
	"rollback":     (*Actuator).rollback,
}

// Run performs req.Step.Swarm on the service the alert points to.
func (a *Actuator) Run(ctx context.Context, req action.Request) (string, error) {
	if req.Step == nil || req.Step.Swarm == nil {
		return "", errors.New("not a swarm step")
	}
	sa := req.Step.Swarm
	act := strings.ToLower(strings.TrimSpace(sa.Action))
	do, ok := actions[act]
	if !ok {
		return "", fmt.Errorf("unknown swarm action %q (want one of %s)", sa.Action, strings.Join(config.SwarmActions, ", "))
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := time.Now()

	s, err := a.target(ctx, req)
	if err != nil {
		return "", a.engineError(ctx, err, "resolve target", start)
	}
	a.Logger.Info("swarm action starting", "action", act, "service", s.name, "id", s.id)
	detail, err := do(a, ctx, s, sa)
	if err != nil {
		err = a.engineError(ctx, err, act+" "+s.String(), start)
		a.Logger.Error("swarm action failed", "action", act, "service", s.name, "err", err)
		return detail, err
	}
	detail = fmt.Sprintf("%s in %s", detail, time.Since(start).Round(100*time.Millisecond))
	a.Logger.Info("swarm action done", "action", act, "service", s.name, "detail", detail)
	return detail, nil
}

// target resolves and guards the service a request is about.
func (a *Actuator) target(ctx context.Context, req action.Request) (*service, error) {
	explicit := ""
	if sa := req.Step.Swarm; sa != nil && !sa.Service.IsZero() {
		var err error
		explicit, err = config.RenderSwarmService(sa.Service, config.NewTemplateData(req.Alert, req.Target, req.Playbook))
		if err != nil {
			return nil, action.Refuse(action.RefusedTarget, "%v", err)
		}
	}
	s, err := a.resolve(ctx, explicit, req.Alert.Labels)
	if err != nil {
		return nil, err
	}
	if err := a.guard(ctx, s); err != nil {
		a.Logger.Warn("swarm action refused", "action", req.Step.Swarm.Action, "service", s.name, "reason", err)
		return nil, err
	}
	return s, nil
}

// engineError turns what the client returned into a reason an operator can act on.
func (a *Actuator) engineError(ctx context.Context, err error, what string, start time.Time) error {
	if action.IsRefusal(err) {
		return err
	}
	if e := docker.EngineError(ctx, err, a.host, what, start); e != nil {
		return e
	}
	switch {
	case cerrdefs.IsUnavailable(err) || strings.Contains(err.Error(), "This node is not a swarm manager"):
		return fmt.Errorf("%s: the engine at %s is not a Swarm manager (swarm steps need a manager's API): %w", what, a.host, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: service is gone: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
