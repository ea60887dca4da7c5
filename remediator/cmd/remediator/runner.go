package main

import (
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/docker"
)

// guardFlags are the flags every actuator with labels is started with: the label that opts a
// target in, the one that protects it, and the bound on one action.
type guardFlags struct {
	optIn, protected *string
	timeout          *time.Duration
}

// flagHelp is one flag's name and help text.
type flagHelp struct{ name, help string }

func newGuardFlags(app *kingpin.Application, optIn, protected, timeout flagHelp, defaultTimeout time.Duration) guardFlags {
	return guardFlags{
		optIn:     app.Flag(optIn.name, optIn.help).Default(action.DefaultOptInLabel).String(),
		protected: app.Flag(protected.name, protected.help).Default(action.DefaultProtectedLabel).String(),
		timeout:   app.Flag(timeout.name, timeout.help).Default(defaultTimeout.String()).Duration(),
	}
}

type dockerOptions struct {
	guardFlags
	host, self *string
}

func dockerFlags(app *kingpin.Application) dockerOptions {
	return dockerOptions{
		host: app.Flag("docker.host", "Docker engine address, e.g. tcp://socket-proxy:2375 (default: DOCKER_HOST, else the local socket).").String(),
		guardFlags: newGuardFlags(app,
			flagHelp{"docker.opt-in-label", "Only containers with this label set to \"true\" are ever acted on."},
			flagHelp{"docker.protected-label", "Containers carrying this label are never acted on, even if opted in."},
			flagHelp{"docker.timeout", "Bound on one docker action, waiting for its result included."},
			docker.DefaultTimeout),
		self: app.Flag("docker.self-container-id", "The remediator's own container id (default: detected).").String(),
	}
}

// newRunner builds the action dispatcher: http, command and wait steps in-process, docker and
// swarm steps through the engine, kubernetes steps through the API server when asked for (each
// is contacted per action, so a down engine or cluster fails steps, not start).
func newRunner(logger *slog.Logger, o dockerOptions, so swarmOptions, ko kubernetesOptions) (action.Runner, error) {
	d, err := docker.New(docker.Options{
		Host: *o.host, OptInLabel: *o.optIn, ProtectedLabel: *o.protected, SelfContainerID: *o.self,
		Timeout: *o.timeout, Logger: logger.With("component", "docker"),
	})
	if err != nil {
		return nil, err
	}
	s, err := swarmActuator(logger, o, so)
	if err != nil {
		return nil, err
	}
	k, err := kubernetesActuator(logger, ko)
	if err != nil {
		return nil, err
	}
	actuators := append(append([]action.Actuator{d}, s...), k...)
	return action.NewDispatcher(action.DispatcherOptions{Actuators: actuators, Logger: logger.With("component", "action")}), nil
}
