package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// match picks the first playbook whose matchers all match the alert and names its target. It
// notes the firing alert on the target and in the blast-radius memory, which the guards count.
type match struct {
	cfg     *config.Config
	targets targetSet
	blast   blastMemory
}

func newMatch(cfg *config.Config, targets targetSet, blast blastMemory) match {
	return match{cfg: cfg, targets: targets, blast: blast}
}

func (s match) decide(_ context.Context, d *decision) verdict {
	pb, target, err := matchPlaybook(s.cfg, d)
	if err != nil {
		d.playbook = pb
		return verdict{stop: true, outcome: outcomeUnmatched, reason: ReasonInvalidTarget, detail: err.Error()}
	}
	if pb == nil {
		return verdict{stop: true, outcome: outcomeUnmatched, detail: "no playbook matches"}
	}
	d.playbook, d.target = pb, target
	s.observeFiring(d)
	return proceed()
}

// observeFiring notes a firing alert on the decision's target.
func (s match) observeFiring(d *decision) {
	t := s.targets.get(d.target)
	t.Playbook = d.playbook.Name
	t.Firing.Set(d.episode, store.Firing{
		Alertname: d.alert.Labels["alertname"],
		Severity:  d.alert.Labels["severity"],
		Since:     d.alert.StartsAt,
	})
	t.HealthySince = time.Time{}
	s.blast.see(d.playbook.Name, d.target, d.now)
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
		return pb, "", fmt.Errorf("playbook %q: %w", pb.Name, err)
	}
	return pb, target, nil
}

func renderTarget(pb *config.Playbook, d *decision) (string, error) {
	return config.RenderTarget(pb.Target, config.NewTemplateData(d.alert, "", pb))
}
