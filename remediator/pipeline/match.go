package pipeline

import (
	"fmt"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/config"
)

// match picks the first playbook whose matchers all match the alert and names its target.
type match struct{}

func (match) name() string { return "match" }

func (match) decide(p *Pipeline, d *decision) verdict {
	pb, target, err := matchPlaybook(p.cfg, d)
	if err != nil {
		return verdict{stop: true, outcome: outcomeUnmatched, detail: err.Error()}
	}
	if pb == nil {
		return verdict{stop: true, outcome: outcomeUnmatched, detail: "no playbook matches"}
	}
	d.playbook, d.target = pb, target
	p.observeFiring(d)
	return proceed()
}

// matchPlaybook returns the first matching playbook and the alert's target, or nil.
func matchPlaybook(cfg *config.Config, d *decision) (*config.Playbook, string, error) {
	if cfg == nil {
		return nil, "", nil
	}
	ls := model.LabelSet{}
	for k, v := range d.alert.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	pb := cfg.Match(ls)
	if pb == nil {
		return nil, "", nil
	}
	target, err := renderTarget(pb, d)
	if err != nil {
		return nil, "", fmt.Errorf("playbook %q: %w", pb.Name, err)
	}
	return pb, target, nil
}

func renderTarget(pb *config.Playbook, d *decision) (string, error) {
	return config.RenderTarget(pb.Target, config.NewTemplateData(d.alert, "", pb))
}
