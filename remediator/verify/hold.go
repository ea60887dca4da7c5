package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// Clock is the time a hold is measured in; tests give a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Hold is the period after a verified step during which the target must stay healthy.
type Hold struct {
	Alert template.Alert
	// For is how long the target must be seen healthy without a break; 0 means one look.
	For time.Duration
	// Timeout bounds how long the hold may wait for the target to become healthy, on top of For.
	Timeout  time.Duration
	Interval time.Duration
	// HealthyQuery must return at least one sample while the target is healthy (already
	// rendered). A missing series is not a healthy one.
	HealthyQuery string
	// Refired, when set, reports whether Alertmanager sent the alert again (a new episode) since
	// the hold began: the only sign of a flap without Prometheus.
	Refired func() bool
	// Clock defaults to the real one.
	Clock Clock
}

var (
	// ErrFlapped is wrapped when the alert fired again, or went pending, during the hold.
	ErrFlapped = errors.New("flapped")
	// ErrNotStable is wrapped when the target was never observed healthy for the whole hold.
	ErrNotStable = errors.New("not stable")
)

// Hold blocks until the target was observed healthy for h.For without a break (nil), the alert
// came back (ErrFlapped) or h.For+h.Timeout passed (ErrNotStable). Healthy means: the alert is
// neither firing nor pending in Prometheus' ALERTS, and the healthy query returns a sample. The
// alert firing is a flap at any look; pending only once the hold saw it gone, since a pending
// series the step's action has not been judged on yet is the past, not a flap.
// Without Prometheus, healthy means the episode's resolved notification arrived and no new one
// fired.
func (v *Verifier) Hold(ctx context.Context, h Hold) error {
	clock := h.Clock
	if clock == nil {
		clock = realClock{}
	}
	if h.Interval <= 0 {
		h.Interval = 5 * time.Second
	}
	if h.Timeout <= 0 {
		h.Timeout = 2 * time.Minute
	}
	start := clock.Now()
	deadline := start.Add(h.For + h.Timeout)
	var since time.Time // zero while the target is not seen healthy
	lastBreak := ""
	cleared := false // the alert was seen neither firing nor pending in this hold
	for {
		now := clock.Now()
		state, broken := v.look(ctx, h)
		switch {
		case state == "":
			cleared = true
		case state == "pending" && !cleared:
			// Pending since before the step: the rule has not yet been evaluated on a scrape
			// from after the action (a restart's first scrape comes a scrape interval later).
			// Not healthy yet; a flap is the alert coming back once it was gone.
			state, broken = "", "alert "+h.Alert.Labels["alertname"]+" still pending from before the hold"
		}
		if state != "" {
			return fmt.Errorf("%w: alert %s is %s again %s into the hold", ErrFlapped, h.Alert.Labels["alertname"], state, now.Sub(start).Round(time.Millisecond))
		}
		switch {
		case broken != "":
			since, lastBreak = time.Time{}, broken
		case since.IsZero():
			since = now
		}
		if broken == "" && now.Sub(since) >= h.For {
			return nil
		}
		if !now.Before(deadline) {
			why := lastBreak
			if broken == "" {
				why = fmt.Sprintf("healthy for only %s, after %s", now.Sub(since).Round(time.Millisecond), lastBreak)
			}
			return fmt.Errorf("%w: the target was not observed healthy for %s in a row within %s: %s", ErrNotStable, h.For, h.For+h.Timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-clock.After(h.Interval):
		}
	}
}

// look observes the target once. state is "firing" or "pending" when the alert is back; broken
// says why the target is not seen healthy ("" when it is).
func (v *Verifier) look(ctx context.Context, h Hold) (state, broken string) {
	if h.Refired != nil && h.Refired() {
		return "firing", ""
	}
	q := v.Querier()
	if q == nil {
		if !v.IsResolved(EpisodeKey(h.Alert)) {
			return "", "no resolved notification for the alert"
		}
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, max(h.Interval*2, 2*time.Second))
	defer cancel()
	vec, err := q.Query(ctx, anyStateQuery(h.Alert))
	if err != nil {
		return "", "prometheus query failed: " + err.Error()
	}
	if s := matching(h.Alert, vec); s != nil {
		if st := string(s.Metric["alertstate"]); st != "" {
			return st, ""
		}
		return "firing", ""
	}
	if h.HealthyQuery == "" {
		return "", ""
	}
	vec, err = q.Query(ctx, h.HealthyQuery)
	switch {
	case err != nil:
		return "", "prometheus query failed: " + err.Error()
	case len(vec) == 0:
		// A scrape gap, a container gone from service discovery, a stale series: absent is
		// never healthy.
		return "", fmt.Sprintf("%s returned no samples", h.HealthyQuery)
	}
	return "", ""
}

// anyStateQuery selects the alert's name in ALERTS whether firing or pending; matching picks
// the alert's own series.
func anyStateQuery(a template.Alert) string {
	return `ALERTS{alertname=` + strconv.Quote(a.Labels["alertname"]) + `}`
}

// matching returns the first series that is the alert (see StillFiring), or nil.
func matching(a template.Alert, vec model.Vector) *model.Sample {
	for _, s := range vec {
		match := true
		for name, value := range s.Metric {
			if name == model.MetricNameLabel || name == "alertstate" || name == "severity" {
				continue
			}
			if a.Labels[string(name)] != string(value) {
				match = false
				break
			}
		}
		if match {
			return s
		}
	}
	return nil
}
