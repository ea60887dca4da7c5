// Package docker is the remediator's Docker actuator: it resolves an alert to one container,
// refuses containers that did not opt in (and its own, and protected ones), and restarts, stops,
// starts, kills or recreates it through the engine API, waiting for the result before it reports.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

// Defaults for Options left empty.
const (
	DefaultOptInLabel     = action.DefaultOptInLabel
	DefaultProtectedLabel = action.DefaultProtectedLabel
	// DefaultTimeout bounds one action including the wait for its result. It leaves room for a
	// stop timeout of 10s and a healthcheck with Docker's default 30s interval.
	DefaultTimeout = 90 * time.Second
)

// Options configure an Actuator.
type Options struct {
	// Host is the engine address (unix:///var/run/docker.sock, tcp://socket-proxy:2375). Empty
	// means DOCKER_HOST and the other DOCKER_* variables, else the local socket.
	Host string
	// OptInLabel must be "true" on a container for it to be touched.
	OptInLabel string
	// ProtectedLabel, with any value, puts a container out of reach even if it opted in
	// (the socket proxy, the remediator, databases).
	ProtectedLabel string
	// SelfContainerID is the remediator's own container; empty means detect it.
	SelfContainerID string
	// Timeout bounds each action, the wait for its result included.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Actuator runs docker steps. It is safe for concurrent use.
type Actuator struct {
	action.Settings
	cli  *client.Client
	host string
	self string
	// poll is how often a wait looks at the container's state.
	poll time.Duration
}

var _ action.Actuator = (*Actuator)(nil)

// New builds an Actuator. It does not contact the engine: a remediator must start, and answer
// Alertmanager, while the engine or its proxy is down; each action reports that instead.
func New(opts Options) (*Actuator, error) {
	a := &Actuator{
		Settings: action.Settings{OptInLabel: opts.OptInLabel, ProtectedLabel: opts.ProtectedLabel,
			Timeout: opts.Timeout, Logger: opts.Logger}.WithDefaults(DefaultTimeout),
		self: strings.ToLower(strings.TrimSpace(opts.SelfContainerID)),
		poll: 200 * time.Millisecond,
	}
	if a.self == "" {
		id, source := DetectSelfContainerID()
		a.self = id
		if id != "" {
			a.Logger.Info("running in a container, it will never be acted on", "container_id", ShortID(id), "source", source)
		}
	} else if !isHexID(a.self, 12) {
		return nil, fmt.Errorf("self container id %q is not a container id (12 to 64 hex digits)", opts.SelfContainerID)
	}
	cli, host, err := NewClient(opts.Host)
	if err != nil {
		return nil, err
	}
	a.cli, a.host = cli, host
	return a, nil
}

// Close releases the client's idle connections.
func (a *Actuator) Close() error { return a.cli.Close() }

// Host is the engine address in use, for logs and messages.
func (a *Actuator) Host() string { return a.host }

// Run performs req.Step.Docker against the container the alert points to.
func (a *Actuator) Run(ctx context.Context, req action.Request) (string, error) {
	if req.Step == nil || req.Step.Docker == nil {
		return "", errors.New("not a docker step")
	}
	da := req.Step.Docker
	act := strings.ToLower(strings.TrimSpace(da.Action))
	if _, ok := actions[act]; !ok {
		return "", fmt.Errorf("unknown docker action %q (want one of %s)", da.Action, strings.Join(config.DockerActions, ", "))
	}
	if act == "kill" {
		if _, err := normalizeSignal(da.Signal); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := time.Now()

	t, err := a.target(ctx, req, start)
	if err != nil {
		if action.IsRefusal(err) {
			a.Logger.Warn("docker action refused", "action", act, "reason", err)
		}
		return "", err
	}
	a.Logger.Info("docker action starting", "action", act, "container", t.name, "id", ShortID(t.id))
	detail, err := actions[act](a, ctx, t, da)
	if err != nil {
		err = a.engineError(ctx, err, act+" "+t.String(), start)
		a.Logger.Error("docker action failed", "action", act, "container", t.name, "err", err)
		return detail, err
	}
	detail = fmt.Sprintf("%s in %s", detail, time.Since(start).Round(100*time.Millisecond))
	a.Logger.Info("docker action done", "action", act, "container", t.name, "detail", detail)
	return detail, nil
}

// target resolves the step's container (its container template, else the alert's labels) and
// refuses what must not be touched. Run, Evidence and Incarnation all go through it, so nothing
// is read of a container the actuator would not act on.
func (a *Actuator) target(ctx context.Context, req action.Request, start time.Time) (*target, error) {
	explicit := ""
	if da := req.Step.Docker; !da.Container.IsZero() {
		var err error
		explicit, err = config.RenderContainerName(da.Container, config.NewTemplateData(req.Alert, req.Target, req.Playbook))
		if err != nil {
			return nil, err
		}
	}
	t, err := a.resolve(ctx, explicit, req.Alert.Labels)
	if err != nil {
		return nil, a.engineError(ctx, err, "resolve target", start)
	}
	if err := a.guard(t); err != nil {
		return nil, err
	}
	return t, nil
}

type actionFunc func(a *Actuator, ctx context.Context, t *target, da *config.DockerAction) (string, error)

// actions implement config.DockerActions, one each.
var actions = map[string]actionFunc{
	"restart":  (*Actuator).restart,
	"stop":     (*Actuator).stop,
	"start":    (*Actuator).start,
	"kill":     (*Actuator).kill,
	"recreate": (*Actuator).recreate,
}

// engineError turns what the client returned into a reason an operator can act on.
func (a *Actuator) engineError(ctx context.Context, err error, what string, start time.Time) error {
	if action.IsRefusal(err) {
		return err
	}
	if e := EngineError(ctx, err, a.host, what, start); e != nil {
		return e
	}
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s: container is gone: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Kind is the step key docker steps are written under.
func (a *Actuator) Kind() string { return "docker" }
