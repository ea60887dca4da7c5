package action

import (
	"errors"
	"fmt"
)

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
