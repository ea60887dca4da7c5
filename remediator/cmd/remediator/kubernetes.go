package main

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/kubernetes"
)

type kubernetesOptions struct {
	guardFlags
	kubeconfig, namespaces *string
}

func kubernetesFlags(app *kingpin.Application) kubernetesOptions {
	return kubernetesOptions{
		namespaces: app.Flag("kubernetes.namespaces", "Comma-separated namespaces kubernetes steps may act in; setting it turns the Kubernetes actuator on.").String(),
		kubeconfig: app.Flag("kubernetes.kubeconfig", "Kubeconfig file (default: the in-cluster service account).").String(),
		guardFlags: newGuardFlags(app,
			flagHelp{"kubernetes.opt-in", "Only workloads with this label or annotation set to \"true\" are ever acted on."},
			flagHelp{"kubernetes.protected", "Workloads and pods with this label or annotation (any value but \"false\") are never acted on."},
			flagHelp{"kubernetes.timeout", "Bound on one kubernetes action, the wait for its rollout included."},
			kubernetes.DefaultTimeout),
	}
}

// kubernetesActuator builds the Kubernetes actuator when it was asked for, so that a remediator
// for a Docker host needs no cluster; it does not contact the API server.
func kubernetesActuator(logger *slog.Logger, o kubernetesOptions) ([]action.Actuator, error) {
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
	return []action.Actuator{a}, nil
}
