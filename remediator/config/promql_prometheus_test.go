package config

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/verify"
)

// TestRenderQueryOnPrometheus hands every hostile value, rendered into a query, to real
// Prometheus servers: each query must be accepted and see the value as one string, unchanged.
// label_replace copies the string into a label of the one sample, so the answer shows exactly
// what Prometheus understood.
func TestRenderQueryOnPrometheus(t *testing.T) {
	q := tmpl(t, `label_replace(vector(1), "v", "{{ .Labels.x }}", "", "")`)
	for name, bin := range testutil.Prometheuses(t) {
		t.Run(name, func(t *testing.T) {
			prom, err := verify.NewPrometheus(testutil.StartPrometheusBinary(t, bin, "global:\n  scrape_interval: 1h\n"))
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range append(hostile, "plain") {
				if !utf8.ValidString(v) {
					continue // Prometheus keeps label values UTF-8
				}
				expr, err := RenderQuery(q, data(map[string]string{"x": v}))
				if err != nil {
					t.Errorf("%.40q: %v", v, err)
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				vec, err := prom.Query(ctx, expr)
				cancel()
				if err != nil {
					t.Errorf("%.40q: query %.80q: %v", v, expr, err)
					continue
				}
				if len(vec) != 1 || vec[0].Metric[model.LabelName("v")] != model.LabelValue(v) {
					t.Errorf("%.40q: query %.80q returned %.200v, want one sample with v set to the value", v, expr, vec)
				}
			}
		})
	}
}
