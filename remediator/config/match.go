package config

import "github.com/prometheus/common/model"

// Match returns the first playbook whose matchers all match the alert's labels, or nil.
// Playbooks are tried in file order, so a specific playbook goes above a general one.
func (c *Config) Match(lset model.LabelSet) *Playbook {
	for _, p := range c.Playbooks {
		if len(p.Matchers) > 0 && p.Matchers.Matches(lset) {
			return p
		}
	}
	return nil
}

// Playbook returns the playbook with the given name, or nil.
func (c *Config) Playbook(name string) *Playbook {
	for _, p := range c.Playbooks {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Step returns the playbook's step with the given name, or nil.
func (p *Playbook) Step(name string) *Step {
	for _, s := range p.Steps {
		if s.Name == name {
			return s
		}
	}
	return nil
}
