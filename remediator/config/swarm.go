package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// SwarmAction acts on the target's Docker Swarm service through a manager's engine API.
type SwarmAction struct {
	// Action is one of SwarmActions.
	Action string `yaml:"action"`
	// Service optionally names the service (templated); by default it is resolved from the
	// alert's labels (service name, task name, or a task's container).
	Service Template `yaml:"service"`
	// Replicas is what scale sets the service to; By is what scale adds (or, negative, takes
	// away). Exactly one of them is given for scale.
	Replicas *int `yaml:"replicas"`
	By       *int `yaml:"by"`
	// Min and Max bound what scale may set; a relative scale needs both, so that repeated heals
	// can neither grow a service without end nor scale it away.
	Min *int `yaml:"min"`
	Max *int `yaml:"max"`
}

// SwarmActions are the operations a swarm step may ask for: a rolling restart of the tasks (as
// `docker service update --force`), a change of replicas, and a return to the previous spec
// (as `docker service rollback`).
var SwarmActions = []string{"force-update", "scale", "rollback"}

// SwarmServiceNamePattern is what Swarm accepts as a service name (a DNS label, with '_' as
// `docker stack deploy` writes it), at most 63 characters.
var SwarmServiceNamePattern = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$`)

// ValidSwarmServiceName reports why s cannot be a Swarm service name (or id), or nil.
func ValidSwarmServiceName(s string) error {
	if !SwarmServiceNamePattern.MatchString(s) {
		return fmt.Errorf("%.80q is not a valid service name (letters, digits, '_' and '-', at most 63)", s)
	}
	return nil
}

// RenderSwarmService renders a swarm step's service for one alert; the result must be a valid
// service name (ValidSwarmServiceName), so that a label cannot reach another API path.
func RenderSwarmService(t Template, data TemplateData) (string, error) {
	s, err := t.execute(data)
	if err != nil {
		return "", fmt.Errorf("service template %q: %w", t.Text, err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("service template %q rendered empty for this alert", t.Text)
	}
	if err := ValidSwarmServiceName(s); err != nil {
		return "", fmt.Errorf("service template %q: %w", t.Text, err)
	}
	return s, nil
}

func (v *validator) swarmStep(st *Step, add addFunc, at func(...string) int) {
	s := st.Swarm
	if s == nil {
		add(at("swarm"), "e.g. swarm: {action: force-update}", "swarm action needs an action")
		return
	}
	if !slices.Contains(SwarmActions, s.Action) {
		add(at("swarm.action", "swarm"), "use one of "+strings.Join(SwarmActions, ", "), "swarm.action %q is not supported", s.Action)
	}
	if t := s.Service.Text; t != "" && !strings.Contains(t, "{{") && ValidSwarmServiceName(t) != nil {
		add(at("swarm.service"), "service names are letters, digits, '_' and '-', at most 63", "swarm.service %q is not a valid service name", t)
	}
	if s.Action != "scale" {
		for _, k := range []string{"replicas", "by", "min", "max"} {
			if s.field(k) != nil {
				add(at("swarm."+k), "remove "+k+", or use action: scale", "swarm.%s is only used by action scale, not %q", k, s.Action)
			}
		}
		return
	}
	for _, k := range []string{"replicas", "min", "max"} {
		if p := s.field(k); p != nil && *p < 0 {
			add(at("swarm."+k), "use 0 or more", "swarm.%s must not be negative, got %d", k, *p)
		}
	}
	switch {
	case s.Replicas == nil && s.By == nil:
		add(at("swarm"), "e.g. swarm: {action: scale, by: 1, min: 1, max: 5} or swarm: {action: scale, replicas: 3}", "swarm scale needs replicas (a number) or by (a step)")
	case s.Replicas != nil && s.By != nil:
		add(at("swarm.by"), "keep one of them", "swarm scale takes replicas or by, not both")
	case s.By != nil && *s.By == 0:
		add(at("swarm.by"), "e.g. by: 1 to add a task, by: -1 to remove one", "swarm.by must not be 0")
	case s.By != nil && (s.Min == nil || s.Max == nil):
		add(at("swarm.by"), "add both, e.g. min: 1, max: 5", "swarm scale by a step needs min and max")
	}
	if s.Min != nil && s.Max != nil && *s.Max < *s.Min {
		add(at("swarm.max"), "raise max or lower min", "swarm.max (%d) is below swarm.min (%d)", *s.Max, *s.Min)
	}
	if s.Replicas != nil && ((s.Min != nil && *s.Replicas < *s.Min) || (s.Max != nil && *s.Replicas > *s.Max)) {
		add(at("swarm.replicas"), "keep replicas within min and max", "swarm.replicas (%d) is outside min and max", *s.Replicas)
	}
}

func (s *SwarmAction) field(k string) *int {
	switch k {
	case "replicas":
		return s.Replicas
	case "by":
		return s.By
	case "min":
		return s.Min
	case "max":
		return s.Max
	}
	return nil
}
