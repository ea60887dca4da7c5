package verify

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

type querierFunc func(q string) (model.Vector, error)

func (f querierFunc) Query(_ context.Context, q string) (model.Vector, error) { return f(q) }

var firingAlert = template.Alert{
	Status:      "firing",
	Labels:      template.KV{"alertname": "ServiceMemoryHigh", "container": "c1", "severity": "critical", "weird-name": "x", "q": `a"b`},
	StartsAt:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	Fingerprint: "f1",
}

func TestAlertsQuery(t *testing.T) {
	got := AlertsQuery(firingAlert)
	want := `ALERTS{alertname="ServiceMemoryHigh",alertstate="firing",container="c1",q="a\"b",severity="critical"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestStillFiring(t *testing.T) {
	series := func(ls ...string) *model.Sample {
		m := model.Metric{"__name__": "ALERTS", "alertstate": "firing"}
		for i := 0; i < len(ls); i += 2 {
			m[model.LabelName(ls[i])] = model.LabelValue(ls[i+1])
		}
		return &model.Sample{Metric: m}
	}
	tests := []struct {
		name string
		vec  model.Vector
		want bool
	}{
		{"exact", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c1", "severity", "critical", "weird-name", "x", "q", `a"b`)}, true},
		{"alert has extra labels (external labels)", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c1")}, true},
		{"other container", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c2")}, false},
		{"series has a label the alert lacks", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c1", "zone", "a")}, false},
		{"one of many", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c2"), series("alertname", "ServiceMemoryHigh", "container", "c1")}, true},
		{"same alert, other severity still firing", model.Vector{series("alertname", "ServiceMemoryHigh", "container", "c1", "severity", "warning")}, true},
		{"none", nil, false},
	}
	for _, tc := range tests {
		if got := StillFiring(firingAlert, tc.vec); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestVerify(t *testing.T) {
	sample := model.Vector{&model.Sample{}}
	var calls atomic.Int32
	tests := []struct {
		name    string
		q       Querier
		check   Check
		resolve bool
		wantErr string
	}{
		{"alert stops firing on the third look", querierFunc(func(string) (model.Vector, error) {
			if calls.Add(1) < 3 {
				return model.Vector{&model.Sample{Metric: model.Metric{"alertname": "ServiceMemoryHigh", "container": "c1"}}}, nil
			}
			return nil, nil
		}), Check{Alert: firingAlert}, false, ""},
		{"alert keeps firing", querierFunc(func(string) (model.Vector, error) {
			return model.Vector{&model.Sample{Metric: model.Metric{"alertname": "ServiceMemoryHigh", "container": "c1"}}}, nil
		}), Check{Alert: firingAlert}, false, "still firing"},
		{"prometheus down", querierFunc(func(string) (model.Vector, error) { return nil, errors.New("connection refused") }), Check{Alert: firingAlert}, false, "connection refused"},
		{"query holds", querierFunc(func(q string) (model.Vector, error) { return sample, nil }), Check{Alert: firingAlert, Query: "up == 1"}, false, ""},
		{"query never holds", querierFunc(func(q string) (model.Vector, error) { return nil, nil }), Check{Alert: firingAlert, Query: "up == 1"}, false, "no samples"},
		{"prometheus down, resolved notification arrives", querierFunc(func(string) (model.Vector, error) { return nil, errors.New("connection refused") }), Check{Alert: firingAlert}, true, ""},
		{"resolved notification, but prometheus sees the warning level firing", querierFunc(func(string) (model.Vector, error) {
			return model.Vector{&model.Sample{Metric: model.Metric{"alertname": "ServiceMemoryHigh", "container": "c1", "severity": "warning"}}}, nil
		}), Check{Alert: firingAlert}, true, "still firing"},
		{"no prometheus: resolved notification", nil, Check{Alert: firingAlert}, true, ""},
		{"no prometheus: no resolved notification", nil, Check{Alert: firingAlert}, false, "no resolved notification"},
		{"query without prometheus", nil, Check{Alert: firingAlert, Query: "up"}, false, "no Prometheus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			v := New(tc.q)
			tc.check.Timeout, tc.check.Interval = 300*time.Millisecond, 10*time.Millisecond
			if tc.resolve {
				go func() {
					time.Sleep(50 * time.Millisecond)
					v.Resolved(EpisodeKey(firingAlert), time.Now())
				}()
			}
			start := time.Now()
			err := v.Verify(context.Background(), tc.check)
			if time.Since(start) > 2*time.Second {
				t.Fatal("verification not bounded by its timeout")
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("err %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
}
