package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

func (a *Actuator) restart(ctx context.Context, t *target, da *config.DockerAction) (string, error) {
	timeout, err := stopTimeout(ctx, da)
	if err != nil {
		return "", err
	}
	before := t.info.State.StartedAt
	if _, err := a.cli.ContainerRestart(ctx, t.id, client.ContainerRestartOptions{Timeout: timeout}); err != nil {
		return "", err
	}
	st, err := a.waitUp(ctx, t.id, before, true)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("restarted %s; %s", t, st), nil
}

func (a *Actuator) start(ctx context.Context, t *target, _ *config.DockerAction) (string, error) {
	if t.info.State.Running {
		st, err := a.waitUp(ctx, t.id, "", true)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s was already running; %s", t, st), nil
	}
	before := t.info.State.StartedAt
	if _, err := a.cli.ContainerStart(ctx, t.id, client.ContainerStartOptions{}); err != nil {
		return "", err
	}
	st, err := a.waitUp(ctx, t.id, before, true)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("started %s; %s", t, st), nil
}

func (a *Actuator) stop(ctx context.Context, t *target, da *config.DockerAction) (string, error) {
	timeout, err := stopTimeout(ctx, da)
	if err != nil {
		return "", err
	}
	if _, err := a.cli.ContainerStop(ctx, t.id, client.ContainerStopOptions{Timeout: timeout}); err != nil {
		return "", err
	}
	st, err := a.waitDown(ctx, t.id)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("stopped %s; %s", t, st), nil
}

// kill sends a signal. A signal that ends the process must leave the container exited (or
// started again by its restart policy); any other (HUP to reload, USR1 to dump) must leave it
// running.
func (a *Actuator) kill(ctx context.Context, t *target, da *config.DockerAction) (string, error) {
	sig, _ := normalizeSignal(da.Signal)
	if !t.info.State.Running {
		return "", action.Refuse(action.RefusedAction, "%s is not running (%s): nothing to signal", t, t.info.State.Status)
	}
	before := t.info.State.StartedAt
	if _, err := a.cli.ContainerKill(ctx, t.id, client.ContainerKillOptions{Signal: sig}); err != nil {
		return "", err
	}
	if !terminating[sig] {
		// Give the process a moment to die of a signal it does not handle.
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
		info, err := a.cli.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
		if err != nil {
			return "", err
		}
		if st := info.Container.State; !st.Running || st.StartedAt != before {
			return "", fmt.Errorf("%s did not survive SIG%s: %s", t, sig, describe(info.Container))
		}
		return fmt.Sprintf("sent SIG%s to %s; still running", sig, t), nil
	}
	info, err := a.waitFor(ctx, t.id, func(c container.InspectResponse) (bool, error) {
		st := c.State
		if !st.Running && !st.Restarting {
			return true, nil
		}
		// Its restart policy brought it back: the process was killed all the same.
		return st.Running && st.StartedAt != before, nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("sent SIG%s to %s; %s", sig, t, describe(info)), nil
}

// Signals that end a process that does not handle them specially.
var terminating = map[string]bool{"KILL": true, "TERM": true, "INT": true, "QUIT": true}

// normalizeSignal accepts any signal of config.Signals as KILL, SIGKILL, sigkill or 9 and
// returns the bare name the engine takes ("KILL"). Empty means config.DefaultSignal, as for
// `docker kill`.
func normalizeSignal(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		s = config.DefaultSignal
	}
	sig, ok := config.ParseSignal(s)
	if !ok {
		return "", fmt.Errorf("unsupported signal %q (want one of %s, or its number)", s, strings.Join(config.SignalNames(), " "))
	}
	return strings.TrimPrefix(sig, "SIG"), nil
}

// stopTimeout converts the step's stop_timeout to the API's whole seconds (nil: the
// container's own default) and refuses one that cannot fit in the action's deadline.
func stopTimeout(ctx context.Context, da *config.DockerAction) (*int, error) {
	d := time.Duration(da.StopTimeout)
	if d <= 0 {
		return nil, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return nil, action.Refuse(action.RefusedAction, "stop_timeout %s does not fit in the action's deadline (%s left)", d, time.Until(dl).Round(time.Second))
	}
	s := int((d + time.Second - 1) / time.Second)
	return &s, nil
}

// waitUp waits until the container runs a process started after `before` (empty: any) and,
// when healthy is set and it has a healthcheck, is healthy. An unhealthy verdict or an exit
// fails at once.
func (a *Actuator) waitUp(ctx context.Context, id, before string, healthy bool) (string, error) {
	info, err := a.waitFor(ctx, id, func(c container.InspectResponse) (bool, error) {
		st := c.State
		fresh := before == "" || st.StartedAt != before
		if !fresh {
			return false, nil
		}
		if !st.Running {
			if st.Restarting || st.Status == container.StateCreated {
				return false, nil
			}
			return false, fmt.Errorf("container did not stay up: %s", describe(c))
		}
		if !healthy || !hasHealthcheck(c) {
			return true, nil
		}
		if st.Health == nil {
			return false, nil
		}
		switch st.Health.Status {
		case container.Healthy:
			return true, nil
		case container.Unhealthy:
			return false, fmt.Errorf("container is unhealthy: %s", lastHealthOutput(st.Health))
		}
		return false, nil
	})
	if err != nil {
		return "", err
	}
	return describe(info), nil
}

// waitDown waits until the container no longer runs.
func (a *Actuator) waitDown(ctx context.Context, id string) (string, error) {
	info, err := a.waitFor(ctx, id, func(c container.InspectResponse) (bool, error) {
		return !c.State.Running && !c.State.Restarting, nil
	})
	if err != nil {
		return "", err
	}
	return describe(info), nil
}

// waitFor polls the container's state until done says so, done fails, or ctx ends; a timeout
// reports the last state seen, which is what an operator needs to know.
func (a *Actuator) waitFor(ctx context.Context, id string, done func(container.InspectResponse) (bool, error)) (container.InspectResponse, error) {
	var last container.InspectResponse
	seen := false
	for {
		res, err := a.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			if seen && (errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil) {
				return last, fmt.Errorf("gave up waiting, last state: %s: %w", describe(last), err)
			}
			return last, err
		}
		last, seen = res.Container, true
		if last.State == nil {
			return last, fmt.Errorf("engine returned no state for %s", ShortID(id))
		}
		ok, err := done(last)
		if err != nil || ok {
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("gave up waiting, last state: %s: %w", describe(last), ctx.Err())
		case <-time.After(a.poll):
		}
	}
}

func hasHealthcheck(c container.InspectResponse) bool {
	hc := c.Config.Healthcheck
	return hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return "no check result yet"
	}
	l := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(l.Output)
	if len(out) > 200 {
		out = out[:200] + "..."
	}
	return fmt.Sprintf("%d failing checks, last exit code %d: %q", h.FailingStreak, l.ExitCode, out)
}

// describe says what state a container is in, in the words `docker ps` would use.
func describe(c container.InspectResponse) string {
	st := c.State
	if st == nil {
		return "state unknown"
	}
	switch {
	case st.Running && st.Health != nil && c.Config != nil && hasHealthcheck(c):
		return "running, " + string(st.Health.Status)
	case st.Running:
		return "running"
	case st.Restarting:
		return "restarting"
	}
	s := fmt.Sprintf("%s (exit code %d", st.Status, st.ExitCode)
	if st.OOMKilled {
		s += ", OOM killed"
	}
	if st.Error != "" {
		s += ", " + st.Error
	}
	return s + ")"
}
