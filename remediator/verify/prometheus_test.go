package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
)

// The default verification against a real Prometheus: an alert that fires is seen as firing by
// its exact labels, and one with other labels is not.
func TestAlertsQueryWithRealPrometheus(t *testing.T) {
	rules := testutil.WriteFile(t, t.TempDir(), "rules.yml", `groups:
  - name: test
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: {container: c1, severity: critical, note: 'say "hi"'}
`)
	url := testutil.StartPrometheus(t, "global:\n  evaluation_interval: 1s\n", rules)
	q, err := NewPrometheus(url)
	if err != nil {
		t.Fatal(err)
	}
	firing := template.Alert{Labels: template.KV{"alertname": "AlwaysFiring", "container": "c1", "severity": "critical", "note": `say "hi"`}, Fingerprint: "x"}
	var vec model.Vector
	if !testutil.Poll(20*time.Second, 200*time.Millisecond, func() bool {
		vec, err = q.Query(context.Background(), AlertsQuery(firing))
		return err == nil && len(vec) == 1
	}) {
		t.Fatalf("%s never returned the firing alert: %v %v", AlertsQuery(firing), vec, err)
	}
	v := New(q)
	err = v.Verify(context.Background(), Check{Alert: firing, Timeout: time.Second, Interval: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "still firing") {
		t.Fatalf("firing alert verified as healed: %v", err)
	}
	// Labels the ALERTS series lacks (external labels) do not hide the firing alert.
	extra := firing
	extra.Labels = template.KV{"alertname": "AlwaysFiring", "container": "c1", "severity": "critical", "note": `say "hi"`, "cluster": "eu1"}
	if err := v.Verify(context.Background(), Check{Alert: extra, Timeout: time.Second, Interval: 100 * time.Millisecond}); err == nil {
		t.Fatal("alert with extra labels verified as healed while it fires")
	}
	other := firing
	other.Labels = template.KV{"alertname": "AlwaysFiring", "container": "c2", "severity": "critical"}
	if err := v.Verify(context.Background(), Check{Alert: other, Timeout: time.Second, Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("alert of another container judged firing: %v", err)
	}
	if err := v.Verify(context.Background(), Check{Alert: firing, Query: `up{job="nope"} == 1`, Timeout: 500 * time.Millisecond, Interval: 100 * time.Millisecond}); err == nil {
		t.Fatal("query without samples verified")
	}
	if err := v.Verify(context.Background(), Check{Alert: firing, Query: `vector(1)`, Timeout: time.Second}); err != nil {
		t.Fatalf("query with a sample not verified: %v", err)
	}
}
