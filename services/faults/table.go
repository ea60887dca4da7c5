package faults

import (
	"strings"
	"time"
)

// A fault is one kind of failure the injector can cause. Everything that names it is derived
// from name, so that the names users see cannot drift apart: the URL path /chaos/{name}, the
// FAULTS entry name[:value], and the demo_fault_active label (name with underscores).
type fault struct {
	name string
	// param is the one number the fault takes; FAULTS' name:value sets it.
	param param
	// kinds are variants chosen by ?kind=. Each is a fault of its own on demo_fault_active
	// (label name_kind) and in FAULTS (name-kind), except the first: it is the default and
	// goes by the plain name. DELETE without ?kind= stops every kind.
	kinds []string
	// needsPool: the fault acts on the database connection pool, which not every service has.
	needsPool bool

	// start applies the fault at v, replacing a run of the same kind. stop ends the
	// injection; what the fault already did stays done. active says whether the fault is
	// being injected now. shown, if set, is what the caller sees of a start besides the
	// parameters. All of them run under the injector's lock.
	start  func(in *Injector, kind string, v float64)
	stop   func(in *Injector, kind string)
	active func(in *Injector, kind string) bool
	shown  func(in *Injector) map[string]any
}

// param is a fault's numeric parameter: its default, the range it must be in, and optionally
// a ceiling set by the service, to which a larger value is lowered rather than refused.
type param struct {
	name     string
	def      float64
	min, max float64
	ceiling  func(in *Injector) float64
}

// Leak kinds: the flushable leak is a runaway cache that /recover/flush-cache drops; nothing
// but a restart frees the unflushable one. They are also the kind label of
// demo_memory_leaked_bytes.
const (
	Flushable   = "flushable"
	Unflushable = "unflushable"
)

var leakKinds = []string{Flushable, Unflushable}

// table holds every fault, in the order they are documented.
var table = []fault{
	{
		name:   "memory-leak",
		param:  param{name: "rate_mb", def: 4, min: 0.1, max: 1024},
		kinds:  leakKinds,
		start:  func(in *Injector, kind string, rateMB float64) { in.leaks[kind].start(rateMB) },
		stop:   func(in *Injector, kind string) { in.leaks[kind].stop() },
		active: func(in *Injector, kind string) bool { return in.leaks[kind].running() },
	},
	{
		name: "cpu",
		// Capped by what the container may use: asking for more only queues threads.
		param:  param{name: "cores", def: 1, min: 0.05, max: 64, ceiling: func(in *Injector) float64 { return in.cpuMax }},
		start:  func(in *Injector, _ string, cores float64) { in.burn.stop(); in.burn = startBurner(cores) },
		stop:   func(in *Injector, _ string) { in.burn.stop(); in.burn = nil },
		active: func(in *Injector, _ string) bool { return in.burn != nil },
	},
	{
		name:   "errors",
		param:  param{name: "ratio", def: 0.5, min: 0, max: 1},
		start:  func(in *Injector, _ string, ratio float64) { in.errRatio, in.errAcc = ratio, 0 },
		stop:   func(in *Injector, _ string) { in.errRatio, in.errAcc = 0, 0 },
		active: func(in *Injector, _ string) bool { return in.errRatio > 0 },
	},
	{
		name:   "latency",
		param:  param{name: "ms", def: 500, min: 1, max: 60000},
		start:  func(in *Injector, _ string, ms float64) { in.latency = time.Duration(ms * float64(time.Millisecond)) },
		stop:   func(in *Injector, _ string) { in.latency = 0 },
		active: func(in *Injector, _ string) bool { return in.latency > 0 },
	},
	{
		name:      "pool-leak",
		param:     param{name: "rate", def: 1, min: 0.01, max: 1000},
		needsPool: true,
		start:     func(in *Injector, _ string, rate float64) { in.pool.StartLeak(rate) },
		stop: func(in *Injector, _ string) {
			if in.pool != nil {
				in.pool.StopLeak()
			}
		},
		active: func(in *Injector, _ string) bool { return in.pool != nil && in.pool.Leaking() },
	},
	{
		name:  "partition",
		param: param{name: "seconds", def: 300, min: 1, max: 86400},
		start: func(in *Injector, _ string, secs float64) {
			in.partUntil = time.Now().Add(time.Duration(secs * float64(time.Second)))
		},
		stop: func(in *Injector, _ string) { in.partUntil = time.Time{} },
		// Read at the time of asking, so that a partition that ran out is over without anyone
		// having to notice.
		active: func(in *Injector, _ string) bool { return time.Now().Before(in.partUntil) },
		shown: func(in *Injector) map[string]any {
			return map[string]any{"until": in.partUntil.UTC().Format(time.RFC3339)}
		},
	},
}

// variants lists the kinds of f, or the one unnamed kind of a fault without kinds.
func (f *fault) variants() []string {
	if len(f.kinds) == 0 {
		return []string{""}
	}
	return f.kinds
}

// plain says whether kind goes by the fault's plain name: the default kind, or none.
func (f *fault) plain(kind string) bool { return kind == "" || kind == f.kinds[0] }

// label is the demo_fault_active label of one kind of f.
func (f *fault) label(kind string) string {
	l := strings.ReplaceAll(f.name, "-", "_")
	if !f.plain(kind) {
		l += "_" + kind
	}
	return l
}

// specName is the FAULTS name of one kind of f.
func (f *fault) specName(kind string) string {
	if !f.plain(kind) {
		return f.name + "-" + kind
	}
	return f.name
}

// lookup finds a fault by its URL name.
func lookup(name string) (*fault, error) {
	for i := range table {
		if table[i].name == name {
			return &table[i], nil
		}
	}
	return nil, unknown(name)
}

// lookupSpec finds a fault and its kind by a FAULTS name.
func lookupSpec(name string) (*fault, string, error) {
	for i := range table {
		f := &table[i]
		for _, kind := range f.variants() {
			if f.specName(kind) == name {
				return f, kind, nil
			}
		}
	}
	return nil, "", unknown(name)
}

// names lists the URL names of the faults.
func names() []string {
	out := make([]string, len(table))
	for i, f := range table {
		out[i] = f.name
	}
	return out
}
