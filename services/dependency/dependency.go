// Package dependency calls the services a demo service depends on. Every endpoint of every
// dependency has its own circuit breaker, and a call tries the endpoints in turn within the same
// request, so one failing or partitioned instance costs at most one short attempt until its
// breaker opens, after which it costs nothing.
package dependency

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/sony/gobreaker/v2"
)

// Spec is one logical dependency and its endpoints (host:port).
type Spec struct {
	Name      string
	Addresses []string
}

// Parse reads DEPENDENCIES: a comma-separated list where `name=host1:port|host2:port` names a
// dependency with several endpoints and a plain `host:port` is a dependency named by its host.
func Parse(spec string) ([]Spec, error) {
	var out []Spec
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addrs, named := strings.Cut(item, "=")
		if !named {
			addrs = item
		}
		var s Spec
		for _, a := range strings.Split(addrs, "|") {
			a = strings.TrimSpace(a)
			a = strings.TrimPrefix(a, "http://")
			a = strings.TrimSuffix(a, "/")
			host, port, err := net.SplitHostPort(a)
			if err != nil || host == "" || port == "" {
				return nil, fmt.Errorf("dependency %q: endpoint %q is not host:port", item, a)
			}
			s.Addresses = append(s.Addresses, a)
		}
		if named {
			s.Name = strings.TrimSpace(name)
			if s.Name == "" {
				return nil, fmt.Errorf("dependency %q: empty name before '='", item)
			}
		} else {
			if len(s.Addresses) != 1 {
				return nil, fmt.Errorf("dependency %q: several endpoints need a name (name=host1:port|host2:port)", item)
			}
			s.Name, _, _ = net.SplitHostPort(s.Addresses[0])
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("dependency %q given twice", s.Name)
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// Settings tune the calls and the breakers.
type Settings struct {
	// AttemptTimeout bounds one attempt at one endpoint: short, so a hanging instance is left
	// for the next one quickly.
	AttemptTimeout time.Duration
	// OpenTimeout is how long a breaker stays open before letting one probe through.
	OpenTimeout time.Duration
	// ConsecutiveFailures trips a breaker; so does half or more of at least 10 calls failing
	// in the last 10 seconds.
	ConsecutiveFailures uint32
}

// Results of one attempt, as in demo_dependency_requests_total.
const (
	ResultSuccess  = "success"
	ResultFailure  = "failure"
	ResultRejected = "rejected"
)

type endpoint struct {
	dependency, address string
	cb                  *gobreaker.CircuitBreaker[struct{}]
}

type dep struct {
	name      string
	endpoints []*endpoint
	next      atomic.Uint64
}

// Client calls dependencies.
type Client struct {
	service  string
	deps     map[string]*dep
	order    []string
	http     *http.Client
	settings Settings
	requests *prometheus.CounterVec
	state    *prometheus.Desc
}

// errCallerGone marks attempts cut short by the caller, which say nothing about the endpoint.
var errCallerGone = errors.New("caller gave up")

// New builds a client for the given dependencies and registers its metrics.
func New(service string, specs []Spec, s Settings, reg prometheus.Registerer) *Client {
	if s.AttemptTimeout <= 0 {
		s.AttemptTimeout = 400 * time.Millisecond
	}
	if s.OpenTimeout <= 0 {
		s.OpenTimeout = 5 * time.Second
	}
	if s.ConsecutiveFailures == 0 {
		s.ConsecutiveFailures = 3
	}
	c := &Client{
		service:  service,
		deps:     map[string]*dep{},
		settings: s,
		http: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: s.AttemptTimeout}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		}},
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "demo_dependency_requests_total",
			Help: "Attempts to call a dependency's endpoint, by result (rejected: breaker open, not sent).",
		}, []string{"dependency", "endpoint", "result"}),
		state: prometheus.NewDesc("demo_dependency_circuit_state",
			"Circuit breaker state of a dependency's endpoint: 0 closed, 1 half-open, 2 open.",
			[]string{"dependency", "endpoint"}, nil),
	}
	for _, sp := range specs {
		d := &dep{name: sp.Name}
		for _, a := range sp.Addresses {
			e := &endpoint{dependency: sp.Name, address: a}
			e.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
				Name:         sp.Name + "/" + a,
				MaxRequests:  1,
				Interval:     10 * time.Second,
				BucketPeriod: time.Second,
				Timeout:      s.OpenTimeout,
				ReadyToTrip: func(n gobreaker.Counts) bool {
					return n.ConsecutiveFailures >= s.ConsecutiveFailures ||
						(n.Requests >= 10 && 2*n.TotalFailures >= n.Requests)
				},
				IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
			})
			for _, r := range []string{ResultSuccess, ResultFailure, ResultRejected} {
				c.requests.WithLabelValues(sp.Name, a, r)
			}
			d.endpoints = append(d.endpoints, e)
		}
		c.deps[sp.Name] = d
		c.order = append(c.order, sp.Name)
	}
	if reg != nil {
		reg.MustRegister(stateCollector{c})
	}
	return c
}

// Names lists the dependencies in configuration order.
func (c *Client) Names() []string { return c.order }

// Call does one unit of work at the named dependency: GET / at one endpoint, trying the others
// in turn when it fails or its breaker is open. Endpoints take turns being first so that the
// load spreads. It returns the endpoint that answered.
func (c *Client) Call(ctx context.Context, name string) (string, error) {
	d, ok := c.deps[name]
	if !ok {
		return "", fmt.Errorf("unknown dependency %q", name)
	}
	n := len(d.endpoints)
	first := int(d.next.Add(1) % uint64(n))
	var errs []error
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		e := d.endpoints[(first+i)%n]
		timeout := c.attemptTimeout(ctx, n-i)
		_, err := e.cb.Execute(func() (struct{}, error) { return struct{}{}, c.attempt(ctx, e, timeout) })
		switch {
		case err == nil:
			c.requests.WithLabelValues(e.dependency, e.address, ResultSuccess).Inc()
			return e.address, nil
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			c.requests.WithLabelValues(e.dependency, e.address, ResultRejected).Inc()
		case errors.Is(err, errCallerGone):
		default:
			c.requests.WithLabelValues(e.dependency, e.address, ResultFailure).Inc()
		}
		errs = append(errs, fmt.Errorf("%s: %w", e.address, err))
	}
	if len(errs) == 0 {
		errs = append(errs, ctx.Err())
	}
	return "", fmt.Errorf("%s unavailable: %w", name, errors.Join(errs...))
}

// DeadlineHeader carries the milliseconds the caller will wait, so that the callee can share
// them among its own attempts and answer (or fail over) before its caller gives up. Without
// it, a hanging instance two hops down would make every hop above time out at once, and the
// failure would be blamed on the wrong service.
const DeadlineHeader = "X-Deadline-Ms"

// attemptTimeout shares what is left of the caller's deadline among the endpoints still to
// try, keeping a margin to answer in.
func (c *Client) attemptTimeout(ctx context.Context, left int) time.Duration {
	t := c.settings.AttemptTimeout
	if dl, ok := ctx.Deadline(); ok {
		share := time.Duration(float64(time.Until(dl)) * 0.9 / float64(left))
		t = min(t, max(share, time.Millisecond))
	}
	return t
}

func (c *Client) attempt(ctx context.Context, e *endpoint, timeout time.Duration) error {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, "http://"+e.address+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "demo-service/"+c.service)
	req.Header.Set(DeadlineHeader, strconv.FormatInt(timeout.Milliseconds(), 10))
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", errCallerGone, err)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 500 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

type stateCollector struct{ c *Client }

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.c.state }

// Collect reads each breaker's state at scrape time: an open breaker turns half-open when its
// timeout passes, without a call to notice it.
func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range s.c.order {
		for _, e := range s.c.deps[name].endpoints {
			var v float64
			switch e.cb.State() {
			case gobreaker.StateHalfOpen:
				v = 1
			case gobreaker.StateOpen:
				v = 2
			}
			ch <- prometheus.MustNewConstMetric(s.c.state, prometheus.GaugeValue, v, e.dependency, e.address)
		}
	}
}
