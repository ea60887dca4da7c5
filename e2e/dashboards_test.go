package e2e

import (
	"context"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/grafana"
)

// dashboards runs every Grafana query (panels, annotations, variables) against the live
// Prometheus over the whole run, as Grafana would for a dashboard opened now, and expects data
// wherever data is the normal answer after the scenarios ran.
func (s *stack) dashboards(t *testing.T, since time.Time) {
	qs, err := grafana.Queries(grafana.Dir(), nil)
	if err != nil {
		t.Fatalf("dashboard queries: %v", err)
	}
	if len(qs) == 0 {
		t.Fatal("the dashboards hold no query")
	}
	end := time.Now()
	empty := 0
	for _, q := range qs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var v model.Value
		if q.Instant {
			v, _, _, err = s.prom.Query(ctx, q.Expr, end)
		} else {
			v, _, _, err = s.prom.QueryRange(ctx, q.Expr, promv1.Range{Start: since, End: end, Step: 5 * time.Second})
		}
		cancel()
		where := q.Dashboard + ": " + string(q.Kind) + " " + q.Title + " " + q.RefID
		if err != nil {
			t.Errorf("%s: %s: %v", where, q.Expr, err)
			continue
		}
		n := 0
		switch v := v.(type) {
		case model.Vector:
			n = len(v)
		case model.Matrix:
			n = len(v)
		case *model.Scalar:
			n = 1
		}
		if n == 0 {
			empty++
			if q.MayBeEmpty {
				t.Logf("%s: no data (allowed): %s", where, q.Expr)
			} else {
				t.Errorf("%s: no data: %s", where, q.Expr)
			}
		}
	}
	t.Logf("%d dashboard queries run, %d without data", len(qs), empty)
}
