// Package kubernetes is the remediator's Kubernetes actuator: it resolves an alert's labels to a
// workload or pod, refuses what did not opt in, is protected or lives in a namespace it was not
// given, and restarts, evicts, scales or rolls back through the API server, reporting only once
// the rollout is observed complete.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/selfheal/selfheal/remediator/action"
)

// Defaults for Options left empty.
const (
	DefaultOptIn     = action.DefaultOptInLabel
	DefaultProtected = action.DefaultProtectedLabel
	// DefaultTimeout bounds one action, the wait for its rollout included, when the step's own
	// timeout is longer.
	DefaultTimeout = 5 * time.Minute
	// FieldManager is who the API server records as the author of the remediator's changes.
	FieldManager = "remediator"
)

// Options configure an Actuator.
type Options struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster service account.
	Kubeconfig string
	// Config, when set, is used instead of Kubeconfig (tests, embedding).
	Config *rest.Config
	// Namespaces the actuator may act in; an alert from any other namespace is refused before
	// the API is asked anything. At least one is required.
	Namespaces []string
	// OptIn, as a label or annotation set to "true" on the workload, allows acting on it.
	OptIn string
	// Protected, as a label or annotation on the workload or pod with any value but "false",
	// puts it out of reach even if it opted in.
	Protected string
	// Timeout bounds each action including the wait for its rollout.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Actuator runs kubernetes steps. It is safe for concurrent use.
type Actuator struct {
	action.Settings
	cs         k8s.Interface
	host       string
	namespaces map[string]bool
	// poll is how often a wait looks at the object's status.
	poll time.Duration
}

var (
	_ action.Actuator          = (*Actuator)(nil)
	_ action.EvidenceCollector = (*Actuator)(nil)
)

// New builds an Actuator. It does not contact the API server: the remediator must start and
// answer Alertmanager while the cluster is unreachable; each action reports that instead.
func New(o Options) (*Actuator, error) {
	a := &Actuator{
		Settings: action.Settings{OptInLabel: o.OptIn, ProtectedLabel: o.Protected,
			Timeout: o.Timeout, Logger: o.Logger}.WithDefaults(DefaultTimeout),
		namespaces: map[string]bool{},
		poll:       200 * time.Millisecond,
	}
	for _, ns := range o.Namespaces {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if err := checkName("namespace", ns, true); err != nil {
			return nil, fmt.Errorf("allowed namespaces: %w", err)
		}
		a.namespaces[ns] = true
	}
	if len(a.namespaces) == 0 {
		return nil, errors.New("no namespaces allowed: name the ones the remediator may act in (--kubernetes.namespaces)")
	}
	cfg := o.Config
	if cfg == nil {
		var err error
		if o.Kubeconfig != "" {
			cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		} else {
			cfg, err = rest.InClusterConfig()
			if err != nil {
				err = fmt.Errorf("%w (outside a cluster, give a kubeconfig with --kubernetes.kubeconfig)", err)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("kubernetes client configuration: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "remediator"
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	a.cs, a.host = cs, cfg.Host
	return a, nil
}

// Kind is the step key kubernetes steps are written under.
func (a *Actuator) Kind() string { return "kubernetes" }

// Host is the API server in use, for logs and messages.
func (a *Actuator) Host() string { return a.host }

// Run performs req.Step.Kubernetes on what the alert's labels point to.
func (a *Actuator) Run(ctx context.Context, req action.Request) (string, error) {
	if req.Step == nil || req.Step.Kubernetes == nil {
		return "", errors.New("not a kubernetes step")
	}
	ka := req.Step.Kubernetes
	act := strings.ToLower(strings.TrimSpace(ka.Action))
	run, ok := actions[act]
	if !ok {
		return "", fmt.Errorf("unknown kubernetes action %q (want one of rollout-restart, delete-pod, scale, rollback)", ka.Action)
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := time.Now()

	t, err := a.resolve(ctx, req.Alert.Labels, act == "delete-pod")
	if err != nil {
		return "", a.apiError(ctx, err, "resolve target", start)
	}
	if err := a.guard(t); err != nil {
		a.Logger.Warn("kubernetes action refused", "action", act, "target", t.String(), "reason", err)
		return "", err
	}
	a.Logger.Info("kubernetes action starting", "action", act, "target", t.String())
	detail, err := run(a, ctx, t, req)
	if err != nil {
		err = a.apiError(ctx, err, act+" "+t.String(), start)
		a.Logger.Error("kubernetes action failed", "action", act, "target", t.String(), "err", err)
		return detail, err
	}
	detail = fmt.Sprintf("%s in %s", detail, time.Since(start).Round(100*time.Millisecond))
	a.Logger.Info("kubernetes action done", "action", act, "target", t.String(), "detail", detail)
	return detail, nil
}

type actionFunc func(a *Actuator, ctx context.Context, t *target, req action.Request) (string, error)

var actions = map[string]actionFunc{
	"rollout-restart": (*Actuator).rolloutRestart,
	"delete-pod":      (*Actuator).deletePod,
	"scale":           (*Actuator).scale,
	"rollback":        (*Actuator).rollback,
}

// apiError turns what the client returned into a reason an operator can act on.
func (a *Actuator) apiError(ctx context.Context, err error, what string, start time.Time) error {
	switch {
	case action.IsRefusal(err):
		return err
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: forbidden for the remediator's identity; its RBAC must allow this (see deploy/kubernetes): %w", what, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server at %s does not accept the remediator's credentials: %w", what, a.host, err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: timed out after %s: %w", what, time.Since(start).Round(100*time.Millisecond), err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: cancelled: %w", what, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: gone: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
