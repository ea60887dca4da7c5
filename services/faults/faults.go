// Package faults injects real failures into a running demo service: memory that is really
// retained, CPU that is really burnt, requests that really fail, wait, or never get an answer,
// and database connections that are really leaked. The HTTP layer and the FAULTS environment
// variable both drive it through Start and Stop, so both validate the same way.
package faults

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Fault names as used in URLs (/chaos/{name}) and in FAULTS.
const (
	MemoryLeak = "memory-leak"
	CPU        = "cpu"
	Errors     = "errors"
	Latency    = "latency"
	PoolLeak   = "pool-leak"
	Partition  = "partition"
)

// Names lists the faults in the order they are documented.
var Names = []string{MemoryLeak, CPU, Errors, Latency, PoolLeak, Partition}

// Labels of demo_fault_active: the memory leak is two faults there because only one of them
// can be healed without a restart.
var Labels = []string{"memory_leak", "memory_leak_unflushable", "cpu", "errors", "latency", "pool_leak", "partition"}

// Leak kinds.
const (
	Flushable   = "flushable"
	Unflushable = "unflushable"
)

var (
	// ErrUnknownFault is returned for a fault name nobody defined.
	ErrUnknownFault = errors.New("unknown fault")
	// ErrBadParameter is returned for a missing, malformed, unknown or out of range parameter.
	ErrBadParameter = errors.New("bad parameter")
	// ErrUnsupported is returned when this service cannot have the fault (pool leak without a database).
	ErrUnsupported = errors.New("unsupported here")
)

// PoolLeaker is the connection pool seen from the fault injector.
type PoolLeaker interface {
	StartLeak(perSecond float64)
	StopLeak()
	Leaking() bool
	LeakedConnections() int
}

// Active describes one running fault for GET /chaos.
type Active struct {
	Fault  string         `json:"fault"`
	Params map[string]any `json:"params"`
	Since  time.Time      `json:"since"`
}

// Injector holds the faults of one process. Its zero value is not usable; use New.
type Injector struct {
	mu     sync.Mutex
	cpuMax float64
	pool   PoolLeaker
	since  map[string]time.Time // by label
	params map[string]map[string]any

	leaks     map[string]*memoryLeak // by kind
	burn      *burner
	errRatio  float64
	errAcc    float64
	latency   time.Duration
	partUntil time.Time

	activeDesc *prometheus.Desc
	leakedDesc *prometheus.Desc
}

// New returns an injector whose memory leaks stop growing at maxLeakBytes in total (so that a
// process without a container limit cannot eat its host) and whose CPU burn never asks for
// more than cpuLimit cores. pool may be nil when the service has no database.
func New(maxLeakBytes int64, cpuLimit float64, pool PoolLeaker) *Injector {
	in := &Injector{
		cpuMax: cpuLimit,
		pool:   pool,
		since:  map[string]time.Time{},
		params: map[string]map[string]any{},
		activeDesc: prometheus.NewDesc("demo_fault_active",
			"Whether a fault is being injected (1) or not (0).", []string{"fault"}, nil),
		leakedDesc: prometheus.NewDesc("demo_memory_leaked_bytes",
			"Bytes retained by the memory leak fault, by kind.", []string{"kind"}, nil),
	}
	budget := &leakBudget{max: maxLeakBytes}
	in.leaks = map[string]*memoryLeak{
		Flushable:   newLeak(budget),
		Unflushable: newLeak(budget),
	}
	return in
}

// Start begins (or re-tunes) a fault. params are the query parameters of POST /chaos/{name}.
func (in *Injector) Start(name string, params url.Values) (Active, error) {
	p := paramReader{v: params}
	var label string
	var shown map[string]any
	in.mu.Lock()
	defer in.mu.Unlock()
	wasActive := map[string]bool{}
	for _, l := range Labels {
		wasActive[l] = in.activeLocked(l)
	}
	switch name {
	case MemoryLeak:
		rate := p.float("rate_mb", 4, 0.1, 1024)
		kind := p.oneOf("kind", Flushable, Flushable, Unflushable)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		in.leaks[kind].start(rate)
		label = leakLabel(kind)
		shown = map[string]any{"rate_mb": rate, "kind": kind}
	case CPU:
		cores := p.float("cores", 1, 0.05, 64)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		// Bounded by what the container may use: asking for more only queues threads.
		cores = math.Min(cores, in.cpuMax)
		if in.burn != nil {
			in.burn.stop()
		}
		in.burn = startBurner(cores)
		label, shown = "cpu", map[string]any{"cores": cores}
	case Errors:
		ratio := p.float("ratio", 0.5, 0, 1)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		in.errRatio, in.errAcc = ratio, 0
		label, shown = "errors", map[string]any{"ratio": ratio}
	case Latency:
		ms := p.float("ms", 500, 1, 60000)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		in.latency = time.Duration(ms * float64(time.Millisecond))
		label, shown = "latency", map[string]any{"ms": ms}
	case PoolLeak:
		rate := p.float("rate", 1, 0.01, 1000)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		if in.pool == nil {
			return Active{}, fmt.Errorf("%w: pool-leak needs a database connection pool (--database.url is not set)", ErrUnsupported)
		}
		in.pool.StartLeak(rate)
		label, shown = "pool_leak", map[string]any{"rate": rate}
	case Partition:
		secs := p.float("seconds", 300, 1, 86400)
		if err := p.done(); err != nil {
			return Active{}, err
		}
		in.partUntil = time.Now().Add(time.Duration(secs * float64(time.Second)))
		label, shown = "partition", map[string]any{"seconds": secs, "until": in.partUntil.UTC().Format(time.RFC3339)}
	default:
		return Active{}, unknown(name)
	}
	if !wasActive[label] {
		in.since[label] = time.Now()
	}
	in.params[label] = shown
	return Active{Fault: label, Params: shown, Since: in.since[label]}, nil
}

// Stop ends a fault's injection. What it already did stays done: leaked memory stays retained
// (the flushable kind until /recover/flush-cache, the other until a restart) and leaked
// connections stay leaked until /recover/reset-pool. For memory-leak, kind selects one kind;
// without it both stop.
func (in *Injector) Stop(name string, params url.Values) error {
	p := paramReader{v: params}
	in.mu.Lock()
	defer in.mu.Unlock()
	switch name {
	case MemoryLeak:
		kind := p.oneOf("kind", "", Flushable, Unflushable)
		if err := p.done(); err != nil {
			return err
		}
		for k, l := range in.leaks {
			if kind == "" || kind == k {
				l.stop()
			}
		}
	case CPU, Errors, Latency, PoolLeak, Partition:
		if err := p.done(); err != nil {
			return err
		}
		in.stopLocked(name)
	default:
		return unknown(name)
	}
	return nil
}

// StopAll ends every fault's injection (DELETE /chaos).
func (in *Injector) StopAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, l := range in.leaks {
		l.stop()
	}
	for _, n := range []string{CPU, Errors, Latency, PoolLeak, Partition} {
		in.stopLocked(n)
	}
}

func (in *Injector) stopLocked(name string) {
	switch name {
	case CPU:
		if in.burn != nil {
			in.burn.stop()
			in.burn = nil
		}
	case Errors:
		in.errRatio, in.errAcc = 0, 0
	case Latency:
		in.latency = 0
	case PoolLeak:
		if in.pool != nil {
			in.pool.StopLeak()
		}
	case Partition:
		in.partUntil = time.Time{}
	}
}

// FlushCache drops the runaway cache (the flushable leak), ends its growth and gives the memory
// back to the operating system. It returns the bytes dropped. The unflushable leak is untouched:
// that is the point of it.
func (in *Injector) FlushCache() int64 {
	in.mu.Lock()
	l := in.leaks[Flushable]
	l.stop()
	freed := l.drop()
	in.mu.Unlock()
	freeOSMemory()
	return freed
}

// ShouldFail decides whether this request fails under the errors fault. It spreads failures
// evenly (an accumulator, not a coin) so the observed share equals the ratio over any window of
// a few requests, which is what an alert on the ratio measures.
func (in *Injector) ShouldFail() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.errRatio <= 0 {
		return false
	}
	in.errAcc += in.errRatio
	if in.errAcc >= 1-1e-9 {
		in.errAcc--
		return true
	}
	return false
}

// Latency is the delay added to each unit of work.
func (in *Injector) Latency() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.latency
}

// PartitionedUntil returns when the partition ends, or the zero time when there is none.
func (in *Injector) PartitionedUntil() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	if time.Now().Before(in.partUntil) {
		return in.partUntil
	}
	return time.Time{}
}

// LeakedBytes returns the memory retained by a leak kind.
func (in *Injector) LeakedBytes(kind string) int64 { return in.leaks[kind].size() }

// List returns the active faults, sorted by name.
func (in *Injector) List() []Active {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []Active
	for _, label := range Labels {
		if in.activeLocked(label) {
			out = append(out, Active{Fault: label, Params: in.params[label], Since: in.since[label]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fault < out[j].Fault })
	return out
}

func (in *Injector) activeLocked(label string) bool {
	switch label {
	case "memory_leak":
		return in.leaks[Flushable].running()
	case "memory_leak_unflushable":
		return in.leaks[Unflushable].running()
	case "cpu":
		return in.burn != nil
	case "errors":
		return in.errRatio > 0
	case "latency":
		return in.latency > 0
	case "pool_leak":
		return in.pool != nil && in.pool.Leaking()
	case "partition":
		return time.Now().Before(in.partUntil)
	}
	return false
}

// Describe implements prometheus.Collector.
func (in *Injector) Describe(ch chan<- *prometheus.Desc) {
	ch <- in.activeDesc
	ch <- in.leakedDesc
}

// Collect implements prometheus.Collector: state is read at scrape time so that a partition that
// ran out is reported as over without anyone having to notice.
func (in *Injector) Collect(ch chan<- prometheus.Metric) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, label := range Labels {
		v := 0.0
		if in.activeLocked(label) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(in.activeDesc, prometheus.GaugeValue, v, label)
	}
	for _, kind := range []string{Flushable, Unflushable} {
		ch <- prometheus.MustNewConstMetric(in.leakedDesc, prometheus.GaugeValue, float64(in.leaks[kind].size()), kind)
	}
}

func leakLabel(kind string) string {
	if kind == Unflushable {
		return "memory_leak_unflushable"
	}
	return "memory_leak"
}

func unknown(name string) error {
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownFault, name, strings.Join(Names, ", "))
}

// ParseSpec parses FAULTS: a comma-separated list of name[:value] or name?query, where value
// is the fault's main parameter (memory-leak:8 is 8 MB/s, cpu:1 is one core, errors:0.75,
// latency:500 in ms, pool-leak:2 per second, partition:300 seconds);
// memory-leak-unflushable:8 is the leak a flush cannot free.
func ParseSpec(spec string) ([]Request, error) {
	var out []Request
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var r Request
		if name, query, ok := strings.Cut(item, "?"); ok {
			v, err := url.ParseQuery(query)
			if err != nil {
				return nil, fmt.Errorf("%w: fault %q: %v", ErrBadParameter, item, err)
			}
			r = Request{Name: name, Params: v}
		} else {
			name, value, hasValue := strings.Cut(item, ":")
			r = Request{Name: name, Params: url.Values{}}
			if r.Name == "memory-leak-unflushable" {
				r.Name = MemoryLeak
				r.Params.Set("kind", Unflushable)
			}
			main, ok := mainParam[r.Name]
			if !ok {
				return nil, unknown(name)
			}
			if hasValue {
				r.Params.Set(main, value)
			}
		}
		if _, ok := mainParam[r.Name]; !ok {
			return nil, unknown(r.Name)
		}
		out = append(out, r)
	}
	return out, nil
}

// Request is one fault to start.
type Request struct {
	Name   string
	Params url.Values
}

var mainParam = map[string]string{
	MemoryLeak: "rate_mb", CPU: "cores", Errors: "ratio", Latency: "ms", PoolLeak: "rate", Partition: "seconds",
}

// paramReader validates query parameters, remembering the first problem and which parameters
// were consumed, so that a misspelt parameter is an error instead of being silently ignored.
type paramReader struct {
	v    url.Values
	used map[string]bool
	err  error
}

func (p *paramReader) use(name string) (string, bool) {
	if p.used == nil {
		p.used = map[string]bool{}
	}
	p.used[name] = true
	vals, ok := p.v[name]
	if !ok {
		return "", false
	}
	if len(vals) != 1 && p.err == nil {
		p.err = fmt.Errorf("%w: %s given %d times", ErrBadParameter, name, len(vals))
	}
	return vals[0], true
}

func (p *paramReader) float(name string, def, lo, hi float64) float64 {
	s, ok := p.use(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		if p.err == nil {
			p.err = fmt.Errorf("%w: %s=%q must be a number from %g to %g", ErrBadParameter, name, s, lo, hi)
		}
		return def
	}
	return f
}

func (p *paramReader) oneOf(name, def string, allowed ...string) string {
	s, ok := p.use(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s=%q must be one of %s", ErrBadParameter, name, s, strings.Join(allowed, ", "))
	}
	return def
}

func (p *paramReader) done() error {
	if p.err != nil {
		return p.err
	}
	var extra []string
	for k := range p.v {
		if !p.used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%w: unknown parameter(s) %s", ErrBadParameter, strings.Join(extra, ", "))
	}
	return nil
}
