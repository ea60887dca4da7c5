// Package pool keeps a service's orders in PostgreSQL through an instrumented pgx connection
// pool, and can leak that pool's connections on purpose, the way a code path that forgets to
// release them would, until requests wait for a connection and time out.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/selfheal/selfheal/services/leak"
)

var (
	// ErrExhausted means no connection became free within the acquire timeout.
	ErrExhausted = errors.New("connection pool exhausted: timed out waiting for a connection")
	// ErrNotReady means the database has not been reached (or the schema not created) yet.
	ErrNotReady = errors.New("database not ready")
)

// Config configures the pool.
type Config struct {
	URL            string
	MaxConns       int32
	AcquireTimeout time.Duration
	Service        string // recorded with each order
}

// Metrics are the pool's series. They exist, at zero, even in a service without a database so
// that dashboards and rules see the same series everywhere.
type Metrics struct {
	waitSeconds prometheus.Counter
	timeouts    prometheus.Counter
	pool        atomic.Pointer[Pool]
}

// NewMetrics registers the demo_pool_* series.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{}
	f := promauto.With(reg)
	m.waitSeconds = f.NewCounter(prometheus.CounterOpts{
		Name: "demo_pool_wait_seconds_total", Help: "Time spent waiting to acquire a database connection.",
	})
	m.timeouts = f.NewCounter(prometheus.CounterOpts{
		Name: "demo_pool_acquire_timeouts_total", Help: "Acquires that gave up because no connection became free in time.",
	})
	stat := func(get func(p *Pool) float64) func() float64 {
		return func() float64 {
			if p := m.pool.Load(); p != nil {
				return get(p)
			}
			return 0
		}
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "demo_pool_max_connections", Help: "Maximum connections of the pool."},
		stat(func(p *Pool) float64 { return float64(p.pg.Stat().MaxConns()) }))
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "demo_pool_in_use_connections", Help: "Connections acquired (including leaked ones)."},
		stat(func(p *Pool) float64 { return float64(p.pg.Stat().AcquiredConns()) }))
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "demo_pool_idle_connections", Help: "Open connections not acquired."},
		stat(func(p *Pool) float64 { return float64(p.pg.Stat().IdleConns()) }))
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "demo_pool_waiters", Help: "Requests waiting for a connection now."},
		stat(func(p *Pool) float64 { return float64(p.waiters.Load()) }))
	return m
}

// Pool is the instrumented pool.
type Pool struct {
	pg     *pgxpool.Pool
	cfg    Config
	logger *slog.Logger
	m      *Metrics

	schemaReady atomic.Bool
	lastErr     atomic.Pointer[string]
	waiters     atomic.Int64

	drip   leak.Drip
	mu     sync.Mutex
	leaked []*pgxpool.Conn
}

// Open parses the URL and starts connecting in the background: a database that is down at
// start must not keep the service from starting (it reports not ready until it gets through).
// Only a malformed URL is an error.
func Open(ctx context.Context, cfg Config, logger *slog.Logger, m *Metrics) (*Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	pc.MinConns = 0
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > 3*time.Second {
		pc.ConnConfig.ConnectTimeout = 3 * time.Second
	}
	if cfg.AcquireTimeout <= 0 {
		cfg.AcquireTimeout = time.Second
	}
	pg, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	p := &Pool{pg: pg, cfg: cfg, logger: logger, m: m}
	msg := "not connected yet"
	p.lastErr.Store(&msg)
	m.pool.Store(p)
	go p.prepare(ctx)
	return p, nil
}

const schema = `CREATE TABLE IF NOT EXISTS orders (
	id         bigserial PRIMARY KEY,
	service    text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
)`

// prepare creates the table, retrying with a growing pause until it works or ctx ends.
func (p *Pool) prepare(ctx context.Context) {
	pause := 500 * time.Millisecond
	for {
		err := func() error {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := p.pg.Exec(c, schema)
			return err
		}()
		if err == nil {
			p.schemaReady.Store(true)
			p.logger.Info("database ready", "table", "orders")
			return
		}
		msg := err.Error()
		p.lastErr.Store(&msg)
		p.logger.Warn("database not ready, retrying", "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// acquire waits at most the acquire timeout and accounts for the wait.
func (p *Pool) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	c, cancel := context.WithTimeout(ctx, p.cfg.AcquireTimeout)
	defer cancel()
	p.waiters.Add(1)
	start := time.Now()
	conn, err := p.pg.Acquire(c)
	p.waiters.Add(-1)
	p.m.waitSeconds.Add(time.Since(start).Seconds())
	if err == nil {
		return conn, nil
	}
	var connectErr *pgconn.ConnectError
	// A deadline (ours or the caller's, propagated) is a timeout; a caller hanging up is not.
	if errors.Is(c.Err(), context.DeadlineExceeded) && !errors.As(err, &connectErr) {
		p.m.timeouts.Inc()
		return nil, ErrExhausted
	}
	return nil, err
}

// InsertOrder stores one order and returns its id.
func (p *Pool) InsertOrder(ctx context.Context) (int64, error) {
	if !p.schemaReady.Load() {
		return 0, fmt.Errorf("%w: %s", ErrNotReady, *p.lastErr.Load())
	}
	conn, err := p.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	var id int64
	err = conn.QueryRow(ctx, "INSERT INTO orders (service) VALUES ($1) RETURNING id", p.cfg.Service).Scan(&id)
	return id, err
}

// Ready says whether the pool can serve, and why not.
func (p *Pool) Ready() (bool, string) {
	if !p.schemaReady.Load() {
		return false, "database not reachable: " + *p.lastErr.Load()
	}
	s := p.pg.Stat()
	if s.AcquiredConns() >= s.MaxConns() && (p.waiters.Load() > 0 || int32(p.LeakedConnections()) >= s.MaxConns()) {
		return false, "connection pool exhausted"
	}
	return true, ""
}

// StartLeak acquires a connection perSecond times a second and never releases it. It stops
// taking once every connection is leaked, so that the leak itself is never a waiter: the
// waiters are the requests it starves.
func (p *Pool) StartLeak(perSecond float64) {
	p.drip.Start(time.Duration(float64(time.Second)/perSecond), p.leakOne)
}

func (p *Pool) leakOne(keep leak.Keep) {
	if !p.schemaReady.Load() {
		return
	}
	s := p.pg.Stat()
	if s.AcquiredConns() >= s.MaxConns() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.AcquireTimeout)
	defer cancel()
	conn, err := p.pg.Acquire(ctx)
	if err != nil {
		return
	}
	kept := keep(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.leaked = append(p.leaked, conn)
	})
	if !kept { // stopped or reset while acquiring
		conn.Release()
	}
}

// StopLeak stops leaking more connections; leaked ones stay leaked.
func (p *Pool) StopLeak() { p.drip.Stop() }

// Leaking reports whether the pool-leak fault is running.
func (p *Pool) Leaking() bool { return p.drip.Running() }

// LeakedConnections counts the connections held by the leak.
func (p *Pool) LeakedConnections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.leaked)
}

// Reset is the operator's pool reset: stop the leak, give every leaked connection back and
// reopen the pool's connections. It returns how many connections it got back.
func (p *Pool) Reset() int {
	p.drip.Stop() // first, so that no connection taken by the leak turns up after the release
	p.mu.Lock()
	leaked := p.leaked
	p.leaked = nil
	p.mu.Unlock()
	for _, c := range leaked {
		c.Release()
	}
	p.pg.Reset()
	p.logger.Info("connection pool reset", "released", len(leaked))
	return len(leaked)
}

// Close closes the pool.
func (p *Pool) Close() {
	p.Reset()
	p.pg.Close()
}
