package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/verify"
)

// preconditions holds a heal back unless the playbook's PromQL preconditions hold (another
// replica is up, the disk is not full). They query Prometheus, so they run in the heal's own
// goroutine just before the first action rather than with the guards, and they see the world
// as it is when the heal starts, not when the alert arrived.
type preconditions struct {
	// verifier gives the Prometheus to ask; a reload may change it.
	verifier *verify.Verifier
}

func newPreconditions(v *verify.Verifier) preconditions { return preconditions{verifier: v} }

// decide runs the playbook's PromQL preconditions; each must return a sample.
func (s preconditions) decide(ctx context.Context, d *decision) verdict {
	if len(d.playbook.Preconditions) == 0 {
		return proceed()
	}
	q := s.verifier.Querier()
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
