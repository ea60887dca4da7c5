package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// verification judges a step that acted without error. By default the triggering alert must
// stop firing; a step (or its playbook) may give a PromQL query instead, or skip verification.
type verification struct {
	// verifier asks Prometheus and learns of resolved notifications; a reload may change its
	// Prometheus.
	verifier *verify.Verifier
}

func newVerification(v *verify.Verifier) verification { return verification{verifier: v} }

func (s verification) run(ctx context.Context, d *decision, st *config.Step, _ *store.StepRecord) (string, error) {
	if err := s.verifyStep(ctx, d, st); err != nil {
		return "verification failed", err
	}
	return "", nil
}

// stepVerify is the step's verify with what it leaves out taken from its playbook. Loading
// already did that; a playbook built in code may not have.
func stepVerify(pb *config.Playbook, st *config.Step) config.Verify {
	v, pv := st.Verify, pb.Verify
	if v.Query.IsZero() && !pv.Query.IsZero() {
		v.Query = pv.Query
	}
	if v.HealthyQuery.IsZero() && !pv.HealthyQuery.IsZero() {
		v.HealthyQuery = pv.HealthyQuery
	}
	if v.Timeout <= 0 {
		v.Timeout = pv.Timeout
	}
	if v.Interval <= 0 {
		v.Interval = pv.Interval
	}
	return v
}

func (s verification) verifyStep(ctx context.Context, d *decision, st *config.Step) error {
	v := stepVerify(d.playbook, st)
	if v.Skip {
		return nil
	}
	c := verify.Check{Alert: d.alert, Timeout: time.Duration(v.Timeout), Interval: time.Duration(v.Interval)}
	if !v.Query.IsZero() {
		q, err := config.RenderQuery(v.Query, config.NewTemplateData(d.alert, d.target, d.playbook))
		if err != nil {
			return fmt.Errorf("verification query template: %w", err)
		}
		c.Query = q
	}
	return s.verifier.Verify(ctx, c)
}
