// Package action runs a playbook step's action against a target: an HTTP call, a command, a
// wait, or a Docker operation through an Engine.
package action

import (
	"context"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/config"
)

// Request is everything an action may use: the step, its playbook, the alert that triggered the
// heal and the target it resolved to.
type Request struct {
	Playbook *config.Playbook
	Step     *config.Step
	Alert    template.Alert
	Target   string
}

// Runner performs one step. The returned detail is a short human text for the heal history
// (e.g. "restarted container order-service (3f2a…)"); err says why the action failed.
type Runner interface {
	Run(ctx context.Context, req Request) (detail string, err error)
}

// FirstLabel returns the first of the named alert labels that is set, and its name.
func FirstLabel(labels map[string]string, names ...string) (value, name string) {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v, n
		}
	}
	return "", ""
}
