package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// Step failure reasons of the hold.
const (
	ReasonFlapped   = "flapped"
	ReasonNotStable = "not stable"
)

// stabilization holds a verified step: the target is stabilizing until it was observed healthy
// for verify.stable_for without a break. An alert that stopped firing for a moment (a scrape gap
// during a restart, a container gone from service discovery) must not count as healed: the
// adaptive statistics and RemediatorHealsFailing believe what is recorded here.
type stabilization struct {
	verifier *verify.Verifier
	now      func() time.Time
	// stabilizing marks the target's state while its hold runs (false ends it).
	stabilizing func(target string, on bool)
	// refired reports whether a new episode of the alert arrived on the target since a time:
	// without Prometheus, the only sign of a flap.
	refired func(d *decision, since time.Time) bool
}

func newStabilization(v *verify.Verifier, now func() time.Time, stabilizing func(string, bool), refired func(*decision, time.Time) bool) stabilization {
	return stabilization{verifier: v, now: now, stabilizing: stabilizing, refired: refired}
}

func (s stabilization) run(ctx context.Context, d *decision, st *config.Step, rec *store.StepRecord) (string, error) {
	v := stepVerify(d.playbook, st)
	if v.Skip {
		return "", nil
	}
	h := verify.Hold{
		Alert:    d.alert,
		For:      time.Duration(v.StableFor),
		Timeout:  time.Duration(v.Timeout),
		Interval: time.Duration(v.Interval),
		Refired:  func() bool { return s.refired(d, rec.Start) },
	}
	if s.verifier.Querier() != nil {
		q, err := healthyQuery(v, d)
		if err != nil {
			return "no healthy query", err
		}
		h.HealthyQuery = q
	}
	rec.StabilizingSince = s.now()
	s.stabilizing(d.target, true)
	defer s.stabilizing(d.target, false)
	err := s.verifier.Hold(ctx, h)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, verify.ErrFlapped):
		return ReasonFlapped, err
	case errors.Is(err, verify.ErrNotStable):
		return ReasonNotStable, err
	}
	return "hold cut short", err
}

// healthyQuery is the PromQL that returns a sample while the target is healthy: the playbook's
// verify.healthy_query, or up == 1 for the alert's instance and job. Both are rendered by
// config.RenderQuery, which owns keeping alert values inside their quoted label values.
func healthyQuery(v config.Verify, d *decision) (string, error) {
	t := v.HealthyQuery
	if t.IsZero() {
		var matchers []string
		for _, name := range []string{"instance", "job"} {
			if _, ok := d.alert.Labels[name]; ok {
				matchers = append(matchers, name+`="{{ .Labels.`+name+` }}"`)
			}
		}
		if len(matchers) == 0 {
			return "", errors.New("the alert has neither an instance nor a job label, so the target's up series cannot be found; set verify.healthy_query")
		}
		var err error
		if t, err = config.NewTemplate("up{" + strings.Join(matchers, ",") + "} == 1"); err != nil {
			return "", err
		}
	}
	q, err := config.RenderQuery(t, config.NewTemplateData(d.alert, d.target, d.playbook))
	if err != nil {
		return "", fmt.Errorf("healthy query: %w", err)
	}
	return q, nil
}
