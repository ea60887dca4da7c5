// Package loadgen sends steady traffic to the demo services so that error ratios and latencies
// are measured from real requests. Each target gets its own steady rate; at most Concurrency
// requests per target are in flight, and a tick that finds them all busy is skipped and counted
// rather than queued, so that a slow target shows up as skipped load instead of silently
// lowering the rate.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
)

// Config configures the generator.
type Config struct {
	Targets     []string      // URLs
	Rate        float64       // requests per second, per target
	Concurrency int           // in-flight requests per target
	Timeout     time.Duration // per request
	// ListenAddress serves /metrics; empty serves nothing (tests).
	ListenAddress string
}

// SplitTargets accepts targets given one per flag or comma-separated (LOADGEN_TARGETS).
func SplitTargets(in []string) []string {
	var out []string
	for _, t := range in {
		for _, part := range strings.Split(t, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("at least one target is required")
	}
	for _, t := range c.Targets {
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("target %q is not an http(s) URL", t)
		}
	}
	switch {
	case !(c.Rate > 0) || c.Rate > 100000:
		return fmt.Errorf("rate %g must be above 0 and at most 100000 per second", c.Rate)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d must be at least 1", c.Concurrency)
	case c.Timeout <= 0:
		return fmt.Errorf("timeout %s must be positive", c.Timeout)
	}
	return nil
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	skipped  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "loadgen_requests_total", Help: "Requests sent, by target and status code (\"error\" when no answer came).",
		}, []string{"target", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "loadgen_request_duration_seconds", Help: "Time until the answer (or the error), by target.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"target"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "loadgen_requests_skipped_total", Help: "Ticks skipped because all of a target's request slots were busy.",
		}, []string{"target"}),
	}
}

// Run sends traffic until ctx ends, serving its metrics from gatherer on cfg.ListenAddress.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m := newMetrics(reg)
	if cfg.ListenAddress != "" {
		l, err := net.Listen("tcp", cfg.ListenAddress)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
		mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		logger.Info("serving metrics", "address", l.Addr().String())
	}
	client := &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}}
	var wg sync.WaitGroup
	for _, target := range cfg.Targets {
		m.requests.WithLabelValues(target, "200")
		m.requests.WithLabelValues(target, "error")
		m.skipped.WithLabelValues(target)
		m.duration.WithLabelValues(target)
		wg.Add(1)
		go func() {
			defer wg.Done()
			drive(ctx, client, target, cfg, m, logger)
		}()
	}
	logger.Info("load generator running", "targets", cfg.Targets, "rate_per_target", cfg.Rate, "concurrency", cfg.Concurrency)
	wg.Wait()
	return nil
}

func drive(ctx context.Context, client *http.Client, target string, cfg Config, m *metrics, logger *slog.Logger) {
	lim := rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	slots := make(chan struct{}, cfg.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		if err := lim.Wait(ctx); err != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			m.skipped.WithLabelValues(target).Inc()
			continue
		}
		inflight.Add(1)
		go func() {
			defer func() { <-slots; inflight.Done() }()
			code := send(ctx, client, target, m)
			if code == "error" && ctx.Err() == nil {
				logger.Debug("request failed", "target", target)
			}
		}()
	}
}

func send(ctx context.Context, client *http.Client, target string, m *metrics) string {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "error"
	}
	req.Header.Set("User-Agent", "demo-service-loadgen")
	code := "error"
	resp, err := client.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		code = strconv.Itoa(resp.StatusCode)
	}
	if ctx.Err() != nil { // shutting down: not a measurement
		return code
	}
	m.duration.WithLabelValues(target).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(target, code).Inc()
	return code
}
