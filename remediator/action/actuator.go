package action

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// An Actuator is one of the remediator's hands on a platform it can change: a Docker host, a
// Swarm, a Kubernetes cluster. Each serves the playbook steps written under its own key
// (`docker: {...}`, `swarm: {...}`, `kubernetes: {...}`). Through Run it resolves the request's
// target from the alert, refuses what did not opt in or is protected, acts, and returns only once
// what "done" means for that platform has been observed (a container running again, a rollout
// complete), or with the error that says why not.
type Actuator interface {
	Runner
	// Kind is the step key the actuator serves, as config.Step.Action() names it.
	Kind() string
}

// An EvidenceCollector captures, before a destructive action, what a person would look at
// afterwards: the object's state and its last log lines or events. Actuators implement it where
// their platform has such a thing; the pipeline keeps what it returns in the heal record.
type EvidenceCollector interface {
	Evidence(ctx context.Context, req Request) (*Evidence, error)
}

// Evidence is a bounded snapshot of one acted-on object, taken just before the action.
type Evidence struct {
	Captured time.Time `json:"captured"`
	// Object names what was looked at, e.g. "container order-service (3f2a9c1b)" or
	// "deployment shop/api".
	Object string `json:"object"`
	// State holds the platform's own words for the object's condition (exit code, OOMKilled,
	// restart count, health, replicas), as key and value.
	State map[string]string `json:"state,omitempty"`
	// Log holds the last lines of output, at most MaxEvidenceLog bytes.
	Log string `json:"log,omitempty"`
	// Events are the platform's recent events about the object, oldest first.
	Events []string `json:"events,omitempty"`
}

// Bounds on what one Evidence keeps, so a chatty target cannot grow the heal history.
const (
	MaxEvidenceLogLines = 200
	MaxEvidenceLog      = 64 << 10
	MaxEvidenceEvents   = 20
)

// ErrNotConfigured is returned for a step whose actuator the remediator runs without.
var ErrNotConfigured = errors.New("actions of this kind are not configured")

func notConfigured(kind string) error {
	return fmt.Errorf("%s steps cannot run: %w (start the remediator with its %s flags)", kind, ErrNotConfigured, kind)
}
