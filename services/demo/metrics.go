package demo

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	degraded *prometheus.CounterVec
}

// Classic buckets so that Prometheus 2.x and 3.x both compute quantiles from them.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// degradedReason is the demo_degraded_responses_total reason for a failed dependency.
func degradedReason(dependency string) string { return dependency + "_unavailable" }

func newMetrics(reg prometheus.Registerer, s *Service) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "demo_http_requests_total", Help: "HTTP requests answered, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "demo_http_request_duration_seconds", Help: "Time to answer HTTP requests, by route.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		degraded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "demo_degraded_responses_total", Help: "Answers given in degraded form because a dependency failed, by reason.",
		}, []string{"reason"}),
	}
	// Series that rules divide by exist from the start, so a ratio is 0 rather than absent.
	for _, code := range []string{"200", "500", "503"} {
		m.requests.WithLabelValues(routeRoot, "GET", code)
	}
	m.duration.WithLabelValues(routeRoot)
	for _, d := range s.deps.Names() {
		m.degraded.WithLabelValues(degradedReason(d))
	}
	f.NewGauge(prometheus.GaugeOpts{
		Name: "demo_memory_limit_bytes", Help: "Memory the service may use (cgroup limit, else --memory.limit).",
	}).Set(float64(s.limits.MemoryBytes))
	f.NewGauge(prometheus.GaugeOpts{
		Name: "demo_cpu_limit_cores", Help: "CPU cores the service may use (cgroup quota, else --cpu.limit).",
	}).Set(s.limits.CPUCores)
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "demo_ready", Help: "Whether the service can serve (1) or not (0), as /readyz says.",
	}, func() float64 {
		if ok, _ := s.Ready(); ok {
			return 1
		}
		return 0
	})
	return m
}
