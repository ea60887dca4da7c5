package main

import (
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/swarm"
)

type swarmOptions struct {
	enable  *bool
	self    *string
	timeout *time.Duration
}

func swarmFlags(app *kingpin.Application) swarmOptions {
	return swarmOptions{
		enable:  app.Flag("swarm.enable", "Run swarm steps against the Swarm manager at --docker.host, with the docker opt-in and protected labels read from services.").Bool(),
		self:    app.Flag("swarm.self-service", "The remediator's own Swarm service, by name or id, never acted on (default: found from its container's labels).").String(),
		timeout: app.Flag("swarm.timeout", "Bound on one swarm action, waiting for the service to converge included.").Default(swarm.DefaultTimeout.String()).Duration(),
	}
}

// swarmActuator builds the swarm actuator if enabled: same engine address and labels as docker
// steps, since a Swarm manager is a Docker engine.
func swarmActuator(logger *slog.Logger, d dockerOptions, o swarmOptions) ([]action.Actuator, error) {
	if !*o.enable {
		return nil, nil
	}
	a, err := swarm.New(swarm.Options{
		Host: *d.host, OptInLabel: *d.optIn, ProtectedLabel: *d.protected, SelfService: *o.self,
		Timeout: *o.timeout, Logger: logger.With("component", "swarm"),
	})
	if err != nil {
		return nil, err
	}
	return []action.Actuator{a}, nil
}
