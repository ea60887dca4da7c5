package config

import (
	"fmt"
	"regexp"
)

// The names a playbook, a target or a container may have. Each rule lives here once; the
// loader, the pipeline and the actuators check against these and nothing else.

// NamePattern is what playbook and step names may look like: they become metric label values,
// API query parameters and history keys.
var NamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// TargetPattern is what a rendered target may look like. A target is a key in the store, a
// metric label value and a path segment of the API, and usually a container or host name:
// letters, digits and - _ . : (for "host:port"), starting with a letter or digit, so that it is
// never "..", an option ("-x") or a path.
var TargetPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// ContainerNamePattern is Docker's own rule for container names.
var ContainerNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// MaxNameLength bounds targets and container names (a DNS name's length).
const MaxNameLength = 253

// ValidTarget reports why t cannot be a target, or nil.
func ValidTarget(t string) error {
	switch {
	case t == "":
		return fmt.Errorf("target is empty (the alert lacks the label the target template uses)")
	case len(t) > MaxNameLength:
		return fmt.Errorf("target %.32q (cut) is longer than %d characters", t, MaxNameLength)
	case !TargetPattern.MatchString(t):
		return fmt.Errorf("target %q is not a valid target: only letters, digits and the characters - _ . : are allowed, starting with a letter or digit", t)
	}
	return nil
}

// ValidContainerName reports why s cannot be a container name, or nil. Docker's API reports
// names with a leading slash; s is without it.
func ValidContainerName(s string) error {
	if len(s) > MaxNameLength || !ContainerNamePattern.MatchString(s) {
		return fmt.Errorf("invalid container name %.64q: want letters, digits, '_', '.', '-' (at most %d), starting with a letter or digit", s, MaxNameLength)
	}
	return nil
}
