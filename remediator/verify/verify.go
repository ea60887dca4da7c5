// Package verify decides whether a heal step worked: the triggering alert stopped firing in
// Prometheus, a PromQL expression holds, or (without Prometheus) Alertmanager sent the resolved
// notification, each within a deadline.
package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Querier runs an instant PromQL query.
type Querier interface {
	Query(ctx context.Context, query string) (model.Vector, error)
}

// NewPrometheus returns a Querier for the Prometheus HTTP API at url.
func NewPrometheus(url string) (Querier, error) { return NewPrometheusWithConfig(url, nil) }

// NewPrometheusWithConfig is NewPrometheus with client settings (authorization, basic auth, TLS,
// proxy) as Prometheus itself reads them; nil means a plain client. Credential files are read
// on every request, so a rotated token needs no reload.
func NewPrometheusWithConfig(url string, hc *promconfig.HTTPClientConfig) (Querier, error) {
	ac := api.Config{Address: url}
	if hc != nil {
		rt, err := promconfig.NewRoundTripperFromConfig(*hc, "remediator")
		if err != nil {
			return nil, fmt.Errorf("prometheus client for %q: http_config: %w", url, err)
		}
		ac.RoundTripper = rt
	}
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", url, err)
	}
	return promQuerier{api: v1.NewAPI(c)}, nil
}

type promQuerier struct{ api v1.API }

func (q promQuerier) Query(ctx context.Context, query string) (model.Vector, error) {
	v, _, _, err := q.api.Query(ctx, query, time.Now())
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q returned %s, want a vector", query, v.Type())
	}
	return vec, nil
}

// Check is one verification.
type Check struct {
	Alert template.Alert
	// Query, when set, must return at least one sample (already rendered from its template).
	Query    string
	Timeout  time.Duration
	Interval time.Duration
}

// Verifier runs checks. Its Querier may be nil (no Prometheus configured).
type Verifier struct {
	mu       sync.Mutex
	querier  Querier
	resolved map[string]time.Time
	waiters  map[string][]chan struct{}
}

// New returns a Verifier; q may be nil.
func New(q Querier) *Verifier {
	return &Verifier{querier: q, resolved: map[string]time.Time{}, waiters: map[string][]chan struct{}{}}
}

// SetQuerier swaps the Prometheus used (on reload).
func (v *Verifier) SetQuerier(q Querier) {
	v.mu.Lock()
	v.querier = q
	v.mu.Unlock()
}

// Querier returns the current Querier (nil without Prometheus).
func (v *Verifier) Querier() Querier {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.querier
}

// EpisodeKey identifies one firing of one alert.
func EpisodeKey(a template.Alert) string {
	return a.Fingerprint + "@" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}

// Resolved records that the episode resolved, waking verifications waiting for it.
func (v *Verifier) Resolved(episodeKey string, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.resolved[episodeKey] = at
	for _, ch := range v.waiters[episodeKey] {
		close(ch)
	}
	delete(v.waiters, episodeKey)
	// Keep the memory bounded: resolutions only matter while a heal is in flight.
	if len(v.resolved) > 10000 {
		for k, t := range v.resolved {
			if at.Sub(t) > time.Hour {
				delete(v.resolved, k)
			}
		}
	}
}

// IsResolved reports whether a resolved notification arrived for the episode.
func (v *Verifier) IsResolved(episodeKey string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.resolved[episodeKey]
	return ok
}

// ErrNotHealed is wrapped by every verification that ran to its deadline.
var ErrNotHealed = errors.New("not healed")

// Verify blocks until the check passes (nil) or its deadline passes (an error saying why).
func (v *Verifier) Verify(ctx context.Context, c Check) error {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	q := v.Querier()
	key := EpisodeKey(c.Alert)
	switch {
	case c.Query != "":
		if q == nil {
			return errors.New("verification query set but no Prometheus configured")
		}
		return poll(ctx, c, func(ctx context.Context) (bool, error) {
			vec, err := q.Query(ctx, c.Query)
			return len(vec) > 0, err
		}, fmt.Sprintf("query %q returned no samples", c.Query))
	case q != nil:
		expr := alertnameQuery(c.Alert)
		return poll(ctx, c, func(ctx context.Context) (bool, error) {
			vec, err := q.Query(ctx, expr)
			if err != nil {
				// Prometheus cannot answer: a resolved notification still proves the heal.
				return v.IsResolved(key), err
			}
			// Prometheus is the judge when it answers. A resolved notification alone is not
			// enough: the critical level of an alert resolves while its warning level, the same
			// condition, still fires.
			return !StillFiring(c.Alert, vec), nil
		}, fmt.Sprintf("alert %s still firing", c.Alert.Labels["alertname"]))
	default:
		return v.waitResolved(ctx, key, c)
	}
}

func (v *Verifier) waitResolved(ctx context.Context, key string, c Check) error {
	v.mu.Lock()
	if _, ok := v.resolved[key]; ok {
		v.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	v.waiters[key] = append(v.waiters[key], ch)
	v.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		v.mu.Lock()
		ws := v.waiters[key]
		for i, w := range ws {
			if w == ch {
				v.waiters[key] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(v.waiters[key]) == 0 {
			delete(v.waiters, key)
		}
		v.mu.Unlock()
		return fmt.Errorf("%w: no resolved notification for %s within %s", ErrNotHealed, c.Alert.Labels["alertname"], c.Timeout)
	}
}

func poll(ctx context.Context, c Check, ok func(context.Context) (bool, error), notYet string) error {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	var lastErr error
	answered := false
	report := func() error {
		if !answered {
			return fmt.Errorf("%w within %s: prometheus did not answer", ErrNotHealed, c.Timeout)
		}
		if lastErr != nil {
			return fmt.Errorf("%w within %s: prometheus query failed: %v", ErrNotHealed, c.Timeout, lastErr)
		}
		return fmt.Errorf("%w within %s: %s", ErrNotHealed, c.Timeout, notYet)
	}
	for {
		qctx, cancel := context.WithTimeout(ctx, max(c.Interval*2, 2*time.Second))
		good, err := ok(qctx)
		cancel()
		if good {
			return nil
		}
		if ctx.Err() != nil {
			// The deadline cut this query short; report what the completed ones said.
			return report()
		}
		lastErr, answered = err, true
		select {
		case <-ctx.Done():
			return report()
		case <-t.C:
		}
	}
}

// alertnameQuery selects every firing series of the alert's name; StillFiring picks the alert's
// own among them.
func alertnameQuery(a template.Alert) string {
	return `ALERTS{alertname=` + strconv.Quote(a.Labels["alertname"]) + `,alertstate="firing"}`
}

// StillFiring reports whether one of the ALERTS series is the alert: every label of the series
// (but alertstate and severity) has the same value on the alert. The alert may carry more labels
// than the series (Prometheus' external labels, labels added on the way to Alertmanager): an
// exact selector would then match nothing and a heal would be "verified" while the alert still
// fires. Severity is ignored because the degraded and failing levels of one alert are one
// condition: a target whose critical level cleared but whose warning still fires is not healed.
func StillFiring(a template.Alert, vec model.Vector) bool {
	return matching(a, vec) != nil
}

// AlertsQuery selects the alert's firing series in Prometheus' ALERTS metric by all its labels.
func AlertsQuery(a template.Alert) string {
	names := make([]string, 0, len(a.Labels))
	for n := range a.Labels {
		if n == "alertstate" || n == "alertname" || !model.LegacyValidation.IsValidLabelName(n) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(`ALERTS{alertname=`)
	b.WriteString(strconv.Quote(a.Labels["alertname"]))
	b.WriteString(`,alertstate="firing"`)
	for _, n := range names {
		b.WriteString(",")
		b.WriteString(n)
		b.WriteString("=")
		b.WriteString(strconv.Quote(a.Labels[n]))
	}
	b.WriteString("}")
	return b.String()
}
