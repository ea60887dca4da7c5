package action

import (
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
