package intake_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/loadtest"
)

// benchBody is the intake benchmark's notification: two alerts with real labels and annotations.
func benchBody() []byte {
	at := time.Now()
	return loadtest.Notification(`{}:{alertname="BenchMemoryHigh", instance="bench-0001:8080"}`,
		loadtest.Alert{Name: "BenchMemoryHigh", Target: "bench-0001", Severity: "warning", Extra: map[string]string{"run": "x"}, StartsAt: at},
		loadtest.Alert{Name: "BenchMemoryHigh", Target: "bench-0001", Severity: "critical", Extra: map[string]string{"run": "x"}, StartsAt: at})
}

func BenchmarkDecode(b *testing.B) {
	body := benchBody()
	for b.Loop() {
		if _, err := intake.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBare is the baseline: what the bare handler of `make bench` does with a body.
func BenchmarkDecodeBare(b *testing.B) {
	body := benchBody()
	for b.Loop() {
		var d template.Data
		if err := json.Unmarshal(body, &d); err != nil {
			b.Fatal(err)
		}
	}
}
