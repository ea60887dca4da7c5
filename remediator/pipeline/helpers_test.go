package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/notify"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// fakeRunner records the steps it is asked to run; fail names steps whose action errors.
type fakeRunner struct {
	mu    sync.Mutex
	calls []string
	// alerts are the alerts of the calls.
	alerts []template.Alert
	fail   map[string]bool
	delay  time.Duration
	// block, when set, holds every action until closed.
	block chan struct{}
	// after, when set, runs as each action returns.
	after func()
}

func (r *fakeRunner) Run(ctx context.Context, req action.Request) (string, error) {
	if r.after != nil {
		defer r.after()
	}
	r.mu.Lock()
	r.calls = append(r.calls, req.Target+"/"+req.Step.Name)
	r.alerts = append(r.alerts, req.Alert)
	fail := r.fail[req.Step.Name]
	r.mu.Unlock()
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	if fail {
		return "", errors.New("injected failure")
	}
	return "done " + req.Step.Name, nil
}

func (r *fakeRunner) Alerts() []template.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]template.Alert(nil), r.alerts...)
}

func (r *fakeRunner) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// fakeProm answers queries: firing[alertname] says whether ALERTS still has the alert; an up
// query returns the target's series unless gap is set.
type fakeProm struct {
	mu     sync.Mutex
	firing map[string]bool
	down   bool
	gap    bool
	// pending[alertname] puts the alert back in ALERTS as pending (seen by the hold, which asks
	// for every state, not by the verification, which asks for firing only).
	pending map[string]bool
	// pendingAfter, when set, puts ServiceMemoryHigh back in pending after that many looks of a
	// hold (once): the alert comes back after the hold saw it gone.
	pendingAfter, looks int
	// result for any non-ALERTS query
	queryOK bool
}

func (f *fakeProm) Query(_ context.Context, q string) (model.Vector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, errors.New("connection refused")
	}
	if len(q) > 6 && q[:6] == "ALERTS" {
		if f.pendingAfter > 0 && !strings.Contains(q, `alertstate="firing"`) {
			if f.looks++; f.looks > f.pendingAfter {
				f.pending, f.pendingAfter = map[string]bool{"ServiceMemoryHigh": true}, 0
			}
		}
		for name, on := range f.firing {
			if on && strings.Contains(q, `alertname="`+name+`"`) {
				return model.Vector{&model.Sample{Metric: model.Metric{"alertname": model.LabelValue(name)}}}, nil
			}
		}
		for name, on := range f.pending {
			if on && strings.Contains(q, `alertname="`+name+`"`) && !strings.Contains(q, `alertstate="firing"`) {
				return model.Vector{&model.Sample{Metric: model.Metric{"alertname": model.LabelValue(name), "alertstate": "pending"}}}, nil
			}
		}
		return nil, nil
	}
	if strings.HasPrefix(q, "up{") && !f.gap {
		return model.Vector{&model.Sample{Metric: model.Metric{"__name__": "up"}, Value: 1}}, nil
	}
	if f.queryOK {
		return model.Vector{&model.Sample{}}, nil
	}
	return nil, nil
}

// edit replaces the text old, which must occur, with new in a playbook file.
type edit struct{ old, new string }

// Edits that several tests make to testdata/playbooks.yml.
var (
	fastVerify    = edit{"verify: {timeout: 2s,", "verify: {timeout: 300ms,"}
	shortCooldown = edit{"cooldown: {initial: 1h,", "cooldown: {initial: 1ms,"}
)

// budgetOf sets the default budget's attempts in testdata/playbooks.yml.
func budgetOf(attempts int) edit {
	return edit{"budget: {attempts: 3,", "budget: {attempts: " + strconv.Itoa(attempts) + ","}
}

// playbooks returns testdata/playbooks.yml with the edits made. An edit whose text is not in the
// file fails the test: a fixture that drifted must not leave a test running on what it did not
// mean to test.
func playbooks(t testing.TB, edits ...edit) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "playbooks.yml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(b)
	for _, e := range edits {
		if !strings.Contains(yaml, e.old) {
			t.Fatalf("testdata/playbooks.yml has no %q to edit", e.old)
		}
		yaml = strings.Replace(yaml, e.old, e.new, 1)
	}
	return yaml
}

// quietProm is a Prometheus where no alert fires and every other query returns nothing.
func quietProm() *fakeProm { return &fakeProm{firing: map[string]bool{}} }

// firingProm is a Prometheus where the named alerts keep firing.
func firingProm(alertnames ...string) *fakeProm {
	p := quietProm()
	for _, n := range alertnames {
		p.firing[n] = true
	}
	return p
}

// newFakeRunner is a runner whose actions all succeed until told otherwise.
func newFakeRunner() *fakeRunner { return &fakeRunner{fail: map[string]bool{}} }

type harness struct {
	t      *testing.T
	p      *Pipeline
	st     *store.Store
	runner *fakeRunner
	prom   *fakeProm
	reg    *prometheus.Registry
	cancel context.CancelFunc
	dir    string
}

func mustConfig(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newHarness starts a pipeline with the playbooks in yaml on a fresh store, with a runner whose
// actions succeed and prom as its Prometheus (nil: none). It stops with the test.
func newHarness(t *testing.T, yaml string, prom *fakeProm) *harness {
	t.Helper()
	return newHarnessIn(t, t.TempDir(), yaml, prom, newFakeRunner())
}

// newHarnessIn is newHarness on the store in dir (to start again after a stop) with runner;
// options may change what the pipeline is built with (a fake clock).
func newHarnessIn(t *testing.T, dir, yaml string, prom *fakeProm, runner *fakeRunner, options ...func(*Options)) *harness {
	t.Helper()
	return startHarness(t, dir, mustConfig(t, yaml), prom, runner, nil, options...)
}

// startHarness is newHarnessIn with a parsed configuration and a notifier (nil: none).
func startHarness(t *testing.T, dir string, cfg *config.Config, prom *fakeProm, runner *fakeRunner, n *notify.Notifier, options ...func(*Options)) *harness {
	t.Helper()
	st, err := store.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var q verify.Querier
	if prom != nil {
		q = prom
	}
	reg := prometheus.NewRegistry()
	o := Options{Store: st, Runner: runner, Verifier: verify.New(q), Registerer: reg, Tick: 20 * time.Millisecond, Notifier: n}
	for _, f := range options {
		f(&o)
	}
	p, err := New(o, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, p: p, st: st, runner: runner, prom: prom, reg: reg, cancel: cancel, dir: dir}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.p.Wait()
	h.st.Close()
	h.cancel = nil
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func alert(name, container, status string) template.Alert {
	return template.Alert{
		Status:   status,
		Labels:   template.KV{"alertname": name, "container": container, "severity": "critical", "service": container, "instance": container + ":8080", "job": "demo"},
		StartsAt: t0,
	}
}

// deliver records alerts as the intake does and hands them to the pipeline.
func (h *harness) deliver(alerts ...template.Alert) {
	h.t.Helper()
	entries, errs := intake.Entries(&intake.Message{Data: &template.Data{Alerts: alerts}, Version: "4"}, time.Now())
	if len(errs) > 0 {
		h.t.Fatalf("bad test alerts: %v", errs)
	}
	fresh, err := h.st.Accept(entries)
	if err != nil {
		h.t.Fatal(err)
	}
	var acc []store.InboxEntry
	for i, e := range entries {
		if fresh[i] {
			acc = append(acc, e)
		}
	}
	h.p.Submit(acc)
}

func (h *harness) idle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.p.WaitIdle(ctx); err != nil {
		h.t.Fatalf("pipeline never idle: %v", err)
	}
}

func (h *harness) heals() []store.Heal {
	h.t.Helper()
	hs, err := h.st.Heals(store.HealFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return hs
}

func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	var c prometheus.Collector
	switch name {
	case "suppressed":
		c = h.p.m.suppressed.WithLabelValues(labels...)
	case "heals":
		c = h.p.m.heals.WithLabelValues(labels...)
	case "alerts":
		c = h.p.m.alerts.WithLabelValues(labels...)
	case "stopped":
		c = h.p.m.stopped.WithLabelValues(labels...)
	case "suspended", "state":
		return h.targetGauge("remediator_target_"+name, labels[0])
	default:
		h.t.Fatalf("unknown metric %s", name)
	}
	return testutil.ToFloat64(c)
}

// targetGauge reads a per-target gauge as a scrape would show it (0 when it has no series).
func (h *harness) targetGauge(name, target string) float64 {
	h.t.Helper()
	ch := make(chan prometheus.Metric, 1024)
	go func() { newTargetMetrics(h.p, 0).Collect(ch); close(ch) }()
	v := 0.0
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			h.t.Fatal(err)
		}
		if strings.Contains(m.Desc().String(), `"`+name+`"`) && pb.GetLabel()[0].GetValue() == target {
			v = pb.GetGauge().GetValue()
		}
	}
	return v
}

// firingSet builds a target's firing alerts.
func firingSet(m map[string]store.Firing) store.FiringSet {
	var s store.FiringSet
	for k, f := range m {
		s.Set(k, f)
	}
	return s
}

func steps(hl store.Heal) string {
	s := ""
	for _, st := range hl.Steps {
		s += fmt.Sprintf("%s=%s;", st.Name, st.Outcome)
	}
	return s
}

// newVerifier asks q, or no Prometheus when q is nil.
func newVerifier(q *fakeProm) *verify.Verifier {
	if q == nil {
		return verify.New(nil)
	}
	return verify.New(q)
}

// acceptOnly records alerts in st as the intake does, with no pipeline to decide them, and
// returns how many were new.
func acceptOnly(t *testing.T, st *store.Store, alerts ...template.Alert) int {
	t.Helper()
	h := &harness{t: t, st: st, p: &Pipeline{signal: make(chan struct{}, 1)}}
	h.deliver(alerts...)
	return len(h.p.incoming)
}

// fakeClock is a pipeline clock that moves only when the test says.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock(at time.Time) *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(at.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.nanos.Load()).UTC() }

func (c *fakeClock) advance(d time.Duration) { c.nanos.Add(int64(d)) }

// withClock builds the pipeline on c.
func withClock(c *fakeClock) func(*Options) { return func(o *Options) { o.Now = c.Now } }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliverUnmatchedThenCooldown delivers an alert no playbook matches, one that heals c1, and a
// new episode for c1 inside the cooldown that heal started.
func (h *harness) deliverUnmatchedThenCooldown() {
	h.t.Helper()
	h.deliver(alert("SomethingElse", "c1", "firing"))
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	h.idle()
	second := alert("ServiceMemoryHigh", "c1", "firing")
	second.StartsAt = t0.Add(time.Hour) // a new episode, inside the 1h cooldown
	h.deliver(second)
	h.idle()
}
