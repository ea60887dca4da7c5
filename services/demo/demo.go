// Package demo is the demo service: one program that plays user-service, order-service and
// payment-service. A request does a unit of work, stores an order when the service has a
// database, and calls the next services; faults injected through /chaos break it for real, and
// /recover offers the gentle repairs an operator's API could offer.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/selfheal/selfheal/services/dependency"
	"github.com/selfheal/selfheal/services/faults"
	"github.com/selfheal/selfheal/services/limits"
	"github.com/selfheal/selfheal/services/pool"
)

// Config is everything the service is started with.
type Config struct {
	Service       string
	ListenAddress string
	Dependencies  string // DEPENDENCIES syntax, see dependency.Parse
	DatabaseURL   string
	Faults        string // FAULTS syntax, see faults.ParseSpec

	// Fallbacks when no cgroup limits the process.
	MemoryLimit int64
	CPULimit    float64
	// CgroupRoot is where /proc and /sys are looked up ("/"); tests point it elsewhere.
	CgroupRoot string

	DBMaxConns       int32
	DBAcquireTimeout time.Duration

	DependencyTimeout  time.Duration // per attempt at one endpoint
	BreakerOpenTimeout time.Duration

	// PartitionHang is the longest a request hangs under a partition before it is dropped.
	PartitionHang time.Duration
}

// Validate reports configuration errors in words an operator can act on.
func (c *Config) Validate() error {
	switch {
	case c.Service == "":
		return errors.New("service name must not be empty")
	case c.MemoryLimit <= 0:
		return errors.New("memory limit must be positive")
	case c.CPULimit <= 0:
		return errors.New("cpu limit must be positive")
	case c.DBMaxConns < 1:
		return errors.New("database max connections must be at least 1")
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/"
	}
	if c.PartitionHang <= 0 {
		c.PartitionHang = 30 * time.Second
	}
	if c.DBAcquireTimeout <= 0 {
		c.DBAcquireTimeout = time.Second
	}
	return nil
}

// Service is a running demo service without its listener, so tests can serve it in-process.
type Service struct {
	cfg     Config
	logger  *slog.Logger
	limits  limits.Limits
	faults  *faults.Injector
	pool    *pool.Pool // nil without a database
	deps    *dependency.Client
	metrics *metrics
	handler http.Handler
}

// New builds the service: limits, faults from cfg.Faults, database pool (connecting in the
// background), dependency client, metrics registered on reg and served from gatherer.
func New(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	specs, err := dependency.Parse(cfg.Dependencies)
	if err != nil {
		return nil, fmt.Errorf("--dependencies: %w", err)
	}
	initial, err := faults.ParseSpec(cfg.Faults)
	if err != nil {
		return nil, fmt.Errorf("--faults: %w", err)
	}
	s := &Service{cfg: cfg, logger: logger}
	s.limits = limits.Detect(cfg.CgroupRoot, cfg.MemoryLimit, cfg.CPULimit)
	pm := pool.NewMetrics(reg)
	var leaker faults.PoolLeaker
	if cfg.DatabaseURL != "" {
		s.pool, err = pool.Open(ctx, pool.Config{
			URL: cfg.DatabaseURL, MaxConns: cfg.DBMaxConns, AcquireTimeout: cfg.DBAcquireTimeout, Service: cfg.Service,
		}, logger, pm)
		if err != nil {
			return nil, fmt.Errorf("--database.url: %w", err)
		}
		leaker = s.pool
	}
	s.faults = faults.New(s.limits.MemoryBytes, s.limits.CPUCores, leaker)
	reg.MustRegister(s.faults)
	s.deps = dependency.New(cfg.Service, specs, dependency.Settings{
		AttemptTimeout: cfg.DependencyTimeout, OpenTimeout: cfg.BreakerOpenTimeout,
	}, reg)
	s.metrics = newMetrics(reg, s)
	s.handler = s.routes(gatherer)
	for _, f := range initial {
		a, err := s.faults.Start(f.Name, f.Params)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("--faults: %s: %w", f.Name, err)
		}
		logger.Warn("fault active from start", "fault", a.Fault, "params", a.Params)
	}
	logger.Info("demo service configured", "limits", s.limits.String(),
		"dependencies", cfg.Dependencies, "database", cfg.DatabaseURL != "")
	return s, nil
}

// Handler serves the service's HTTP API.
func (s *Service) Handler() http.Handler { return s.handler }

// Close stops the faults and closes the pool.
func (s *Service) Close() {
	s.faults.StopAll()
	if s.pool != nil {
		s.pool.Close()
	}
}

// Ready says whether the service can serve, and why not.
func (s *Service) Ready() (bool, string) {
	if s.pool != nil {
		return s.pool.Ready()
	}
	return true, ""
}

// Run serves the service on cfg.ListenAddress until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := New(ctx, cfg, logger, reg, gatherer)
	if err != nil {
		return err
	}
	defer s.Close()
	l, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	logger.Info("listening", "address", l.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Requests hanging in a partition would hold a graceful shutdown forever.
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	logger.Info("stopped")
	return nil
}
