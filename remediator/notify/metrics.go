package notify

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Operations, the values of remediator_alertmanager_requests_total{operation}.
const (
	opPostAlerts    = "post_alerts"
	opCreateSilence = "create_silence"
	opExpireSilence = "expire_silence"
	opListSilences  = "list_silences"
)

var alertnames = []string{AlertFailed, AlertDeclined, AlertSuspended, AlertPerformed}

type metrics struct {
	requests *prometheus.CounterVec
	failures *prometheus.CounterVec
	alerts   *prometheus.GaugeVec
	silences prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_alertmanager_requests_total",
			Help: "Requests to Alertmanager's API, by operation (post_alerts, create_silence, expire_silence, list_silences).",
		}, []string{"operation"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_alertmanager_requests_failed_total",
			Help: "Requests to Alertmanager's API that failed (unreachable, refused, error), by operation; they are retried with backoff.",
		}, []string{"operation"}),
		alerts: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "remediator_alertmanager_alerts",
			Help: "The remediator's own alerts firing at Alertmanager, by alertname.",
		}, []string{"alertname"}),
		silences: f.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_alertmanager_silences",
			Help: "Silences the remediator holds at Alertmanager for heals that are acting.",
		}),
	}
	for _, op := range []string{opPostAlerts, opCreateSilence, opExpireSilence, opListSilences} {
		m.requests.WithLabelValues(op)
		m.failures.WithLabelValues(op)
	}
	for _, a := range alertnames {
		m.alerts.WithLabelValues(a)
	}
	return m
}

func (m *metrics) count(op string, err error) {
	m.requests.WithLabelValues(op).Inc()
	if err != nil {
		m.failures.WithLabelValues(op).Inc()
	}
}
