package config

import (
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// DefaultTarget names the container an alert is about, as Prometheus' relabeling sets it.
const DefaultTarget = "{{ .Labels.container }}"

// defaultTarget is DefaultTarget compiled, once.
var defaultTarget = func() Template {
	t, err := NewTemplate(DefaultTarget)
	if err != nil {
		panic(err) // a constant; a failure is a bug caught by every test
	}
	return t
}()

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
	return Defaults{
		Target:      defaultTarget,
		Adaptive:    Adaptive{MinSamples: 5, MinSuccessRatio: 0.2, HalfLife: model.Duration(24 * time.Hour), ExploreEvery: 10},
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
		Silence:     d.Silence,
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

// applyStepDefaults fills what step j of a playbook leaves out, and puts its values in the form
// the actuators take, once, before validation looks at them; keys are the step's keys as written.
// Values it cannot make sense of stay as written, for validation to report.
func applyStepDefaults(st *Step, j int, keys map[string]*yaml.Node) {
	var kinds []string
	for _, k := range StepKinds() {
		if _, ok := keys[k]; ok {
			kinds = append(kinds, k)
		}
	}
	st.named = st.Name != ""
	if !st.named && len(kinds) == 1 {
		st.Name = DefaultStepName(j, kinds[0])
	}
	if h := st.HTTP; h != nil {
		if h.Method == "" {
			h.Method = DefaultHTTPMethod
		}
		h.Method = strings.ToUpper(h.Method)
	}
	if d := st.Docker; d != nil {
		d.Action = strings.ToLower(d.Action)
		if d.Action == "kill" && d.Signal == "" {
			d.Signal = DefaultSignal
		} else if sig, ok := ParseSignal(d.Signal); ok && d.Action == "kill" {
			d.Signal = sig
		}
	}
	if s := st.Swarm; s != nil {
		s.Action = strings.ToLower(s.Action)
	}
	// A wait step lasts as long as it waits; its timeout, unless given, bounds it from outside.
	if _, explicit := keys["timeout"]; !explicit && len(kinds) == 1 && kinds[0] == "wait" && st.Wait != nil && *st.Wait > 0 {
		st.Timeout = *st.Wait + st.Timeout
	}
}
