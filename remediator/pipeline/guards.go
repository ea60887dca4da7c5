package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
)

// guards stops heals that must not run now: a global or per-target pause, too many of the
// playbook's targets failing at once (a shared cause), and time windows. It also marks dry-run
// decisions. PromQL preconditions need the network, so they run later, in the heal's own
// goroutine, just before acting (see checkPreconditions).
type guards struct{}

func (guards) name() string { return "guards" }

func (guards) decide(p *Pipeline, d *decision) verdict {
	if p.global.In(d.now) {
		return suppress(ReasonPaused, "healing is paused globally")
	}
	if t := p.targets[d.target]; t != nil && t.Pause.In(d.now) {
		return suppress(ReasonPaused, "target is paused")
	}
	if !d.playbook.InTimeWindow(d.now) {
		return suppress(ReasonTimeWindow, "outside the playbook's time windows")
	}
	if v := blastRadius(p, d); v.stop {
		return v
	}
	d.dryRun = p.cfg.Global.DryRun || d.playbook.DryRun
	return proceed()
}

// blastRadius counts the playbook's targets with an alert received inside the window.
func blastRadius(p *Pipeline, d *decision) verdict {
	br := d.playbook.BlastRadius
	if br.MaxTargets <= 0 && br.MaxRatio <= 0 {
		return proceed()
	}
	window := time.Duration(br.Window)
	if window <= 0 {
		window = time.Duration(config.DefaultDefaults().BlastRadius.Window)
	}
	seen := p.blast[d.playbook.Name]
	failing := 0
	for _, at := range seen {
		if d.now.Sub(at) <= window {
			failing++
		}
	}
	if br.MaxTargets > 0 && failing > br.MaxTargets {
		return suppress(ReasonBlastRadius, fmt.Sprintf("%d targets of playbook %s failing at once (max %d)", failing, d.playbook.Name, br.MaxTargets))
	}
	// A ratio over two or three targets says little (two of two failing is common and
	// independent); it only counts from minRatioTargets failing targets on.
	if br.MaxRatio > 0 && failing >= minRatioTargets {
		ratio := float64(failing) / float64(len(seen))
		if ratio > br.MaxRatio {
			return suppress(ReasonBlastRadius, fmt.Sprintf("%.0f%% of playbook %s's targets failing at once (max %.0f%%)", ratio*100, d.playbook.Name, br.MaxRatio*100))
		}
	}
	return proceed()
}

// checkPreconditions runs the playbook's PromQL preconditions; each must return a sample.
func checkPreconditions(ctx context.Context, p *Pipeline, d *decision) verdict {
	if len(d.playbook.Preconditions) == 0 {
		return proceed()
	}
	q := p.verifier.Querier()
	if q == nil {
		return suppress(ReasonPrecondition, "preconditions need Prometheus, none configured")
	}
	for _, pc := range d.playbook.Preconditions {
		expr, err := config.RenderQuery(pc.Query, config.NewTemplateData(d.alert, d.target, d.playbook))
		if err != nil {
			return suppress(ReasonPrecondition, fmt.Sprintf("precondition template: %v", err))
		}
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		vec, err := q.Query(qctx, expr)
		cancel()
		what := pc.Description
		if what == "" {
			what = expr
		}
		if err != nil {
			return suppress(ReasonPrecondition, fmt.Sprintf("precondition %q: query failed: %v", what, err))
		}
		if len(vec) == 0 {
			return suppress(ReasonPrecondition, fmt.Sprintf("precondition %q does not hold", what))
		}
	}
	return proceed()
}

// minRatioTargets is the number of failing targets from which blast_radius.max_ratio applies.
const minRatioTargets = 3
