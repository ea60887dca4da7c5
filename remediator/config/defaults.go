package config

import (
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// DefaultTarget names the container an alert is about, as Prometheus' relabeling sets it.
const DefaultTarget = "{{ .Labels.container }}"

// DefaultGlobal returns the built-in global settings.
func DefaultGlobal() Global {
	return Global{
		MaxConcurrentHeals: 1,
		HealsPerMinute:     6,
		HistoryMaxAge:      model.Duration(7 * 24 * time.Hour),
		HistoryMaxEntries:  1000,
	}
}

// DefaultDefaults returns the built-in playbook defaults, which the file's `defaults:` block
// overrides field by field.
func DefaultDefaults() Defaults {
	target, err := NewTemplate(DefaultTarget)
	if err != nil {
		panic(err) // a constant; a failure is a bug caught by every test
	}
	return Defaults{
		Target:      target,
		Adaptive:    Adaptive{MinSamples: 5, MinSuccessRatio: 0.2},
		Cooldown:    Cooldown{Initial: model.Duration(time.Minute), Factor: 2, Max: model.Duration(15 * time.Minute), ResetAfter: model.Duration(10 * time.Minute)},
		Budget:      Budget{Attempts: 3, Window: model.Duration(time.Hour)},
		BlastRadius: BlastRadius{MaxRatio: 0.5, Window: model.Duration(5 * time.Minute)},
		// A hold of four production evaluation intervals (15s): a fault that comes back within a
		// minute of the fix is the same fault, not a new one.
		Verify: Verify{Timeout: model.Duration(2 * time.Minute), Interval: model.Duration(5 * time.Second),
			StableFor: model.Duration(time.Minute), RelapseWindow: model.Duration(30 * time.Minute)},
		StepTimeout: model.Duration(30 * time.Second),
	}
}

// playbookFromDefaults pre-fills a playbook so that decoding its node overrides only what the
// playbook says.
func playbookFromDefaults(d Defaults) *Playbook {
	return &Playbook{
		Target:      d.Target,
		DryRun:      d.DryRun,
		Adaptive:    d.Adaptive,
		Cooldown:    d.Cooldown,
		Budget:      d.Budget,
		BlastRadius: d.BlastRadius,
		Verify:      d.Verify,
		StepTimeout: d.StepTimeout,
	}
}

// UnmarshalYAML fills the built-in defaults before the file's keys (the "plain type" trick), so
// a Global decoded on its own is complete too.
func (g *Global) UnmarshalYAML(node *yaml.Node) error {
	*g = DefaultGlobal()
	type plain Global
	return node.Decode((*plain)(g))
}

// UnmarshalYAML fills the built-in defaults before the file's keys.
func (d *Defaults) UnmarshalYAML(node *yaml.Node) error {
	*d = DefaultDefaults()
	type plain Defaults
	return node.Decode((*plain)(d))
}

// UnmarshalYAML accepts the shorthand `adaptive: true` as well as the full mapping; fields not
// given keep what the value held before (the defaults).
func (a *Adaptive) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		return node.Decode(&a.Enabled)
	}
	type plain Adaptive
	return node.Decode((*plain)(a))
}
