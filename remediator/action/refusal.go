package action

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// The labels a target opts in and is protected with unless the actuator is told otherwise. They
// are the same on every platform, so one convention marks what may be healed everywhere.
const (
	DefaultOptInLabel     = "remediator.enable"
	DefaultProtectedLabel = "remediator.protected"
)

// Settings are what every actuator is built with, whatever its platform. They are read-only once
// the actuator is built.
type Settings struct {
	// OptInLabel must be "true" on a target for it to be touched.
	OptInLabel string
	// ProtectedLabel puts a target out of reach even if it opted in.
	ProtectedLabel string
	// Timeout bounds each action, the wait for its result included.
	Timeout time.Duration
	Logger  *slog.Logger
}

// WithDefaults returns s with what it leaves empty filled in: the shared labels, the actuator's
// own timeout (platforms converge at different speeds) and a logger that discards.
func (s Settings) WithDefaults(timeout time.Duration) Settings {
	if s.OptInLabel == "" {
		s.OptInLabel = DefaultOptInLabel
	}
	if s.ProtectedLabel == "" {
		s.ProtectedLabel = DefaultProtectedLabel
	}
	if s.Timeout <= 0 {
		s.Timeout = timeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s
}

// A RefusalKind says why an actuator declined to act.
type RefusalKind string

const (
	// RefusedNotOptedIn: the target lacks the opt-in label, or has it with another value than "true".
	RefusedNotOptedIn RefusalKind = "not_opted_in"
	// RefusedProtected: the target carries the protection label.
	RefusedProtected RefusalKind = "protected"
	// RefusedSelf: the target is the remediator itself.
	RefusedSelf RefusalKind = "self"
	// RefusedTarget: the alert does not point to exactly one object the actuator may look at
	// (no such label, an invalid name, none or several matches, a namespace not allowed).
	RefusedTarget RefusalKind = "target"
	// RefusedAction: the action does not fit the target as it is now (nothing to scale, no
	// revision to roll back to, a disruption budget in the way).
	RefusedAction RefusalKind = "action"
)

// A Refusal is a decision of an actuator, not a fault of the platform it acts on: its message is
// final, and retrying without a change to the target or the alert gives the same answer.
type Refusal struct {
	Kind   RefusalKind
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Refuse returns a Refusal of the given kind whose reason is formatted like fmt.Sprintf.
func Refuse(kind RefusalKind, format string, args ...any) error {
	return &Refusal{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// IsRefusal reports whether err is an actuator declining to act rather than failing to.
func IsRefusal(err error) bool {
	var r *Refusal
	return errors.As(err, &r)
}

// Unprotected refuses a target whose labels carry the protection label, whatever its value.
func (s Settings) Unprotected(target fmt.Stringer, labels map[string]string) error {
	if v, ok := labels[s.ProtectedLabel]; ok {
		return Refuse(RefusedProtected, "%s carries the protection label %s=%q: refusing to act on it", target, s.ProtectedLabel, v)
	}
	return nil
}

// OptedIn refuses a target unless its opt-in marker, read as v (present: ok), is "true". where
// says where the marker was read ("label", "service label", "label or annotation"), so that the
// refusal tells an operator what to set.
func (s Settings) OptedIn(target fmt.Stringer, where, v string, ok bool) error {
	switch {
	case !ok:
		return Refuse(RefusedNotOptedIn, "%s has not opted in: %s %s=true is missing", target, where, s.OptInLabel)
	case v != "true":
		return Refuse(RefusedNotOptedIn, "%s has not opted in: %s %s=%q, want \"true\"", target, where, s.OptInLabel, v)
	}
	return nil
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
