// Package server wires the remediator together: configuration, state store, pipeline, webhook,
// API, metrics and the HTTP server. It never touches signals, so tests can run a whole
// remediator in-process; cmd/remediator adds flags and signals.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/api"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/notify"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// Options configures a remediator.
type Options struct {
	ConfigFile    string
	ConfigOptions config.Options
	StoragePath   string

	WebhookTokenFile  string
	BasicAuthUser     string
	BasicAuthPassFile string
	// CredentialsFile lists named credentials with roles (see intake.CredentialsFile); with it
	// the --webhook.* credential has the webhook role only.
	CredentialsFile string
	MaxBodyBytes    int64
	// ReadAuth also protects the read-only API (targets, heals) with the reader or operator role.
	ReadAuth bool
	// MaxRequests bounds requests served at once; more get 503 at once instead of queueing,
	// so a flood cannot starve Alertmanager's deliveries of memory or goroutines.
	MaxRequests int

	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	// Runner performs steps (the action dispatcher in production, a stand-in in tests).
	Runner     action.Runner
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Tick of the pipeline (tests shorten it).
	Tick time.Duration
	// TargetSeriesLimit is how many targets at most get per-target series (0: all of them).
	TargetSeriesLimit int
	// ExternalURL is where people reach this remediator; the links to heals in Alertmanager
	// silences and alerts start with it.
	ExternalURL string
}

// Server is a running remediator.
type Server struct {
	o        Options
	store    *store.Store
	pipeline *pipeline.Pipeline
	verifier *verify.Verifier
	handler  http.Handler
	logger   *slog.Logger
	auth     *intake.Auth

	reloadMu   sync.Mutex
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	reloads    *prometheus.CounterVec
	ready      chan struct{}
	readyOnce  sync.Once
}

// New loads the configuration (a bad file at start is an error: there is nothing to keep
// running), opens the store and builds every part.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		reg := prometheus.NewRegistry()
		o.Registerer, o.Gatherer = reg, reg
	}
	if o.Runner == nil {
		return nil, errors.New("server needs an action runner")
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 64
	}
	cfg, err := config.LoadWithOptions(o.ConfigFile, o.ConfigOptions)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", o.ConfigFile, err)
	}
	auth, err := intake.NewAuth(intake.AuthOptions{TokenFile: o.WebhookTokenFile, BasicUser: o.BasicAuthUser,
		BasicPasswordFile: o.BasicAuthPassFile, CredentialsFile: o.CredentialsFile})
	if err != nil {
		return nil, err
	}
	switch {
	case !auth.Enabled():
		o.Logger.Warn("webhook and write API accept requests without credentials; set --web.credentials-file in production")
	case o.CredentialsFile == "":
		o.Logger.Warn("the single webhook credential may also pause, reset, approve and reload; set --web.credentials-file to give Alertmanager the webhook role only")
	}
	st, err := store.Open(o.StoragePath, o.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, store: st, logger: o.Logger, auth: auth, ready: make(chan struct{})}
	q, err := querier(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	s.verifier = verify.New(q)
	notifier := notify.New(notify.Options{Logger: o.Logger.With("component", "notify"), Registerer: o.Registerer, ExternalURL: o.ExternalURL})
	s.pipeline, err = pipeline.New(pipeline.Options{
		Store: st, Runner: o.Runner, Verifier: s.verifier, Logger: o.Logger.With("component", "pipeline"),
		Registerer: o.Registerer, Tick: o.Tick, Notifier: notifier, TargetSeriesLimit: o.TargetSeriesLimit,
	}, cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	f := promauto.With(o.Registerer)
	s.reloadOK = f.NewGauge(prometheus.GaugeOpts{
		Name: "remediator_config_last_reload_successful", Help: "Whether the last configuration reload succeeded.",
	})
	s.reloadTime = f.NewGauge(prometheus.GaugeOpts{
		Name: "remediator_config_last_reload_success_timestamp_seconds", Help: "When the configuration was last loaded successfully.",
	})
	s.reloads = f.NewCounterVec(prometheus.CounterOpts{
		Name: "remediator_config_reloads_total", Help: "Configuration reloads, by result.",
	}, []string{"result"})
	s.reloads.WithLabelValues("success")
	s.reloads.WithLabelValues("failure")
	s.reloadOK.Set(1)
	s.reloadTime.SetToCurrentTime()

	hook := intake.New(intake.Options{
		Store: st, Submit: s.pipeline.Submit, Alerts: s.pipeline.AlertsCounter(), Registerer: o.Registerer,
		Logger: o.Logger.With("component", "intake"), Auth: auth, MaxBodyBytes: o.MaxBodyBytes,
	})
	// The request limit guards what a client can flood (the webhook, the API, reload). Probes
	// and scrapes stay outside it: under a flood, /-/healthy failing would get the remediator
	// restarted and /metrics failing would hide the flood, exactly when both matter.
	limited := http.NewServeMux()
	limited.Handle("/webhook", hook)
	limited.Handle("POST /-/reload", auth.Require(intake.Operate, http.HandlerFunc(s.reloadHandler)))
	api.Register(limited, api.Options{Controller: s.pipeline, Auth: auth, ReadAuth: o.ReadAuth, Logger: o.Logger.With("component", "api")})
	if err := s.registerPages(limited, auth); err != nil {
		st.Close()
		return nil, err
	}
	api.RegisterSimulate(limited, api.SimulateOptions{Simulator: s.pipeline, Auth: auth, ReadAuth: o.ReadAuth, MaxBodyBytes: o.MaxBodyBytes})
	limitedHandler := limitRequests(limited, o.MaxRequests)

	mux := http.NewServeMux()
	mux.Handle("/webhook", limitedHandler)
	mux.Handle("/api/", limitedHandler)
	mux.Handle("/-/reload", limitedHandler)
	mux.Handle("GET /{$}", limitedHandler)
	mux.Handle("GET /heals", limitedHandler)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{Registry: o.Registerer, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK\n")) })
	mux.HandleFunc("GET /-/ready", s.readyHandler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		intake.WriteError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	s.handler = mux
	o.Logger.Info("configuration loaded", "file", o.ConfigFile, "playbooks", len(cfg.Playbooks), "storage", st.Path())
	return s, nil
}

func querier(cfg *config.Config) (verify.Querier, error) {
	if cfg.Global.PrometheusURL == "" {
		return nil, nil
	}
	return verify.NewPrometheusWithConfig(cfg.Global.PrometheusURL, cfg.Global.Prometheus.HTTPConfig)
}

// Handler is the remediator's HTTP handler (tests serve it with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Pipeline exposes the pipeline (tests).
func (s *Server) Pipeline() *pipeline.Pipeline { return s.pipeline }

// Start runs the pipeline (recovering from the store) until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	if err := s.pipeline.Start(ctx); err != nil {
		return err
	}
	s.readyOnce.Do(func() { close(s.ready) })
	return nil
}

// Close waits for the pipeline (after ctx ended) and closes the store.
func (s *Server) Close() error {
	s.pipeline.Wait()
	return s.store.Close()
}

// Serve runs the pipeline and the HTTP server (TLS, basic auth per --web.config.file) until ctx
// ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, flags *web.FlagConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: orDefault(s.o.ReadHeaderTimeout, 5*time.Second),
		ReadTimeout:       orDefault(s.o.ReadTimeout, 15*time.Second),
		WriteTimeout:      orDefault(s.o.WriteTimeout, 30*time.Second),
		IdleTimeout:       orDefault(s.o.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, flags, s.logger) }()
	var err error
	select {
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	cancel()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Reload re-reads the configuration and the credentials; a bad file keeps the running one and
// says so in remediator_config_last_reload_successful.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if err := s.auth.Reload(); err != nil {
		s.reloadOK.Set(0)
		s.reloads.WithLabelValues("failure").Inc()
		s.logger.Error("credentials reload failed; keeping the running credentials", "file", s.o.CredentialsFile, "err", err)
		return err
	}
	cfg, err := config.LoadWithOptions(s.o.ConfigFile, s.o.ConfigOptions)
	if err == nil {
		var q verify.Querier
		if q, err = querier(cfg); err == nil {
			s.verifier.SetQuerier(q)
			s.pipeline.SetConfig(cfg)
		}
	}
	if err != nil {
		s.reloadOK.Set(0)
		s.reloads.WithLabelValues("failure").Inc()
		s.logger.Error("configuration reload failed; keeping the running configuration", "file", s.o.ConfigFile, "err", err)
		return err
	}
	s.reloadOK.Set(1)
	s.reloadTime.SetToCurrentTime()
	s.reloads.WithLabelValues("success").Inc()
	s.logger.Info("configuration reloaded", "file", s.o.ConfigFile, "playbooks", len(cfg.Playbooks))
	return nil
}

func (s *Server) reloadHandler(w http.ResponseWriter, r *http.Request) {
	s.logger.Info("api write", "action", "reload", "actor", intake.ActorFrom(r.Context()).Name)
	if err := s.Reload(); err != nil {
		intake.WriteError(w, http.StatusInternalServerError, "reload failed, running configuration kept: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"reloaded"}` + "\n"))
}

func (s *Server) readyHandler(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-s.ready:
		_, _ = w.Write([]byte("OK\n"))
	default:
		intake.WriteError(w, http.StatusServiceUnavailable, "starting")
	}
}

// limitRequests serves at most max requests at once. A burst waits briefly for a slot; a flood
// that keeps every slot busy gets 503 instead of piling up goroutines and memory.
func limitRequests(next http.Handler, max int) http.Handler {
	sem := make(chan struct{}, max)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
		default:
			t := time.NewTimer(queueWait)
			defer t.Stop()
			select {
			case sem <- struct{}{}:
			case <-t.C:
				w.Header().Set("Retry-After", "1")
				intake.WriteError(w, http.StatusServiceUnavailable, "too many concurrent requests")
				return
			case <-r.Context().Done():
				return
			}
		}
		defer func() { <-sem }()
		next.ServeHTTP(w, r)
	})
}

// queueWait is how long a request waits for a free slot.
var queueWait = time.Second
