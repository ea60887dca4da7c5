// Package faults injects real failures into a running demo service: memory that is really
// retained, CPU that is really burnt, requests that really fail, wait, or never get an answer,
// and database connections that are really leaked. Each fault is declared once, in table; the
// HTTP layer and the FAULTS environment variable both drive it through Start and Stop, so both
// validate the same way.
package faults

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
		leaks:  map[string]*memoryLeak{},
		activeDesc: prometheus.NewDesc("demo_fault_active",
			"Whether a fault is being injected (1) or not (0).", []string{"fault"}, nil),
		leakedDesc: prometheus.NewDesc("demo_memory_leaked_bytes",
			"Bytes retained by the memory leak fault, by kind.", []string{"kind"}, nil),
	}
	budget := &leakBudget{max: maxLeakBytes}
	for _, kind := range leakKinds {
		in.leaks[kind] = newLeak(budget)
	}
	return in
}

// Start begins (or re-tunes) a fault. params are the query parameters of POST /chaos/{name}.
func (in *Injector) Start(name string, params url.Values) (Active, error) {
	f, err := lookup(name)
	if err != nil {
		return Active{}, err
	}
	p := paramReader{v: params}
	v := p.number(f.param)
	kind := ""
	if len(f.kinds) > 0 {
		kind = p.oneOf("kind", f.kinds[0], f.kinds...)
	}
	if err := p.done(); err != nil {
		return Active{}, err
	}
	if f.needsPool && in.pool == nil {
		return Active{}, fmt.Errorf("%w: %s needs a database connection pool (--database.url is not set)", ErrUnsupported, f.name)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if f.param.ceiling != nil {
		v = math.Min(v, f.param.ceiling(in))
	}
	label := f.label(kind)
	wasActive := f.active(in, kind)
	shown := map[string]any{f.param.name: v}
	if kind != "" {
		shown["kind"] = kind
	}
	f.start(in, kind, v)
	if f.shown != nil {
		maps.Copy(shown, f.shown(in))
	}
	if !wasActive {
		in.since[label] = time.Now()
	}
	in.params[label] = shown
	return Active{Fault: label, Params: shown, Since: in.since[label]}, nil
}

// Stop ends a fault's injection. What it already did stays done: leaked memory stays retained
// (the flushable kind until /recover/flush-cache, the other until a restart) and leaked
// connections stay leaked until /recover/reset-pool. For a fault with kinds, kind selects one;
// without it all stop.
func (in *Injector) Stop(name string, params url.Values) error {
	f, err := lookup(name)
	if err != nil {
		return err
	}
	p := paramReader{v: params}
	kinds := f.variants()
	if len(f.kinds) > 0 {
		if kind := p.oneOf("kind", "", f.kinds...); kind != "" {
			kinds = []string{kind}
		}
	}
	if err := p.done(); err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, kind := range kinds {
		f.stop(in, kind)
	}
	return nil
}

// StopAll ends every fault's injection (DELETE /chaos).
func (in *Injector) StopAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, f := range table {
		for _, kind := range f.variants() {
			f.stop(in, kind)
		}
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

// LeakedBytes returns the memory retained by the memory leak, by kind.
func (in *Injector) LeakedBytes() map[string]int64 {
	out := make(map[string]int64, len(in.leaks))
	for kind, l := range in.leaks {
		out[kind] = l.size()
	}
	return out
}

// List returns the active faults, sorted by label.
func (in *Injector) List() []Active {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []Active
	in.eachLocked(func(label string, active bool) {
		if active {
			out = append(out, Active{Fault: label, Params: in.params[label], Since: in.since[label]})
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Fault < out[j].Fault })
	return out
}

// eachLocked calls fn with the label of every fault and kind and whether it is active.
func (in *Injector) eachLocked(fn func(label string, active bool)) {
	for _, f := range table {
		for _, kind := range f.variants() {
			fn(f.label(kind), f.active(in, kind))
		}
	}
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
	in.eachLocked(func(label string, active bool) {
		v := 0.0
		if active {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(in.activeDesc, prometheus.GaugeValue, v, label)
	})
	for _, kind := range leakKinds {
		ch <- prometheus.MustNewConstMetric(in.leakedDesc, prometheus.GaugeValue, float64(in.leaks[kind].size()), kind)
	}
}

func unknown(name string) error {
	return fmt.Errorf("%w %q (known: %s)", ErrUnknownFault, name, strings.Join(names(), ", "))
}
