package main

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/docker"
	"github.com/selfheal/selfheal/remediator/kubernetes"
)

type dockerOptions struct {
	host, optIn, protected, self *string
	timeout                      *time.Duration
}

func dockerFlags(app *kingpin.Application) dockerOptions {
	return dockerOptions{
		host:      app.Flag("docker.host", "Docker engine address, e.g. tcp://socket-proxy:2375 (default: DOCKER_HOST, else the local socket).").String(),
		optIn:     app.Flag("docker.opt-in-label", "Only containers with this label set to \"true\" are ever acted on.").Default(docker.DefaultOptInLabel).String(),
		protected: app.Flag("docker.protected-label", "Containers carrying this label are never acted on, even if opted in.").Default(docker.DefaultProtectedLabel).String(),
		self:      app.Flag("docker.self-container-id", "The remediator's own container id (default: detected).").String(),
		timeout:   app.Flag("docker.timeout", "Bound on one docker action, waiting for its result included.").Default(docker.DefaultTimeout.String()).Duration(),
	}
}

type kubernetesOptions struct {
	kubeconfig, namespaces, optIn, protected *string
	timeout                                  *time.Duration
}

func kubernetesFlags(app *kingpin.Application) kubernetesOptions {
	return kubernetesOptions{
		namespaces: app.Flag("kubernetes.namespaces", "Comma-separated namespaces kubernetes steps may act in; setting it turns the Kubernetes actuator on.").String(),
		kubeconfig: app.Flag("kubernetes.kubeconfig", "Kubeconfig file (default: the in-cluster service account).").String(),
		optIn:      app.Flag("kubernetes.opt-in", "Only workloads with this label or annotation set to \"true\" are ever acted on.").Default(kubernetes.DefaultOptIn).String(),
		protected:  app.Flag("kubernetes.protected", "Workloads and pods with this label or annotation (any value but \"false\") are never acted on.").Default(kubernetes.DefaultProtected).String(),
		timeout:    app.Flag("kubernetes.timeout", "Bound on one kubernetes action, the wait for its rollout included.").Default(kubernetes.DefaultTimeout.String()).Duration(),
	}
}

// kubernetesActuator builds the Kubernetes actuator when it was asked for, so that a remediator
// for a Docker host needs no cluster; it does not contact the API server.
func kubernetesActuator(logger *slog.Logger, o kubernetesOptions) (action.Actuator, error) {
	var namespaces []string
	for _, ns := range strings.Split(*o.namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	if len(namespaces) == 0 {
		if *o.kubeconfig != "" {
			return nil, errors.New("--kubernetes.kubeconfig is set but --kubernetes.namespaces is not: name the namespaces kubernetes steps may act in")
		}
		return nil, nil
	}
	a, err := kubernetes.New(kubernetes.Options{
		Kubeconfig: *o.kubeconfig, Namespaces: namespaces, OptIn: *o.optIn, Protected: *o.protected,
		Timeout: *o.timeout, Logger: logger.With("component", "kubernetes"),
	})
	if err != nil {
		return nil, err
	}
	logger.Info("kubernetes actuator on", "api_server", a.Host(), "namespaces", strings.Join(namespaces, ","))
	return a, nil
}

// newRunner builds the action dispatcher: http, command and wait steps in-process, docker steps
// through the engine, kubernetes steps through the API server when asked for (each is contacted
// per action, so a down engine or cluster fails steps, not start).
func newRunner(logger *slog.Logger, o dockerOptions, ko kubernetesOptions) (action.Runner, error) {
	d, err := docker.New(docker.Options{
		Host: *o.host, OptInLabel: *o.optIn, ProtectedLabel: *o.protected, SelfContainerID: *o.self,
		Timeout: *o.timeout, Logger: logger.With("component", "docker"),
	})
	if err != nil {
		return nil, err
	}
	actuators := []action.Actuator{d}
	k, err := kubernetesActuator(logger, ko)
	if err != nil {
		return nil, err
	}
	if k != nil {
		actuators = append(actuators, k)
	}
	return action.NewDispatcher(action.DispatcherOptions{Actuators: actuators, Logger: logger.With("component", "action")}), nil
}
