package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
)

var httpc = &http.Client{Timeout: 10 * time.Second}

// episode is one stretch during which Prometheus reported an alert (one label set) as active.
type episode struct {
	Labels   map[string]string
	ActiveAt time.Time // Prometheus' own activeAt
	Pending  time.Time // first seen pending by the watcher
	Firing   time.Time // first seen firing
	Gone     time.Time // first seen absent again (resolved)
	Value    string
}

// alertWatch polls Prometheus' /api/v1/alerts and keeps every episode it saw, so a scenario can
// ask when an alert went pending, firing and away without racing the evaluation.
type alertWatch struct {
	mu       sync.Mutex
	episodes map[string][]*episode // by label set
}

const watchInterval = 500 * time.Millisecond

func watchAlerts(t *testing.T, api promv1.API) *alertWatch {
	w := &alertWatch{episodes: map[string][]*episode{}}
	watch(t, func(ctx context.Context) {
		if res, err := api.Alerts(ctx); err == nil {
			w.observe(time.Now(), res.Alerts)
		}
	})
	return w
}

// watch calls poll every watchInterval, each call bounded to five seconds, until the test ends.
func watch(t *testing.T, poll func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(watchInterval)
		defer tick.Stop()
		for {
			qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
			poll(qctx)
			qcancel()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func labelKey(ls model.LabelSet) string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		if n == "alertstate" {
			continue
		}
		names = append(names, string(n))
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%q,", n, ls[model.LabelName(n)])
	}
	return b.String()
}

func (w *alertWatch) observe(now time.Time, alerts []promv1.Alert) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range alerts {
		k := labelKey(a.Labels)
		seen[k] = true
		eps := w.episodes[k]
		var e *episode
		if n := len(eps); n > 0 && eps[n-1].Gone.IsZero() {
			e = eps[n-1]
		} else {
			e = &episode{Labels: map[string]string{}, ActiveAt: a.ActiveAt}
			for n, v := range a.Labels {
				e.Labels[string(n)] = string(v)
			}
			w.episodes[k] = append(eps, e)
		}
		e.Value = a.Value
		switch a.State {
		case promv1.AlertStatePending:
			if e.Pending.IsZero() {
				e.Pending = now
			}
		case promv1.AlertStateFiring:
			if e.Pending.IsZero() {
				e.Pending = a.ActiveAt // went firing between two polls (no for:)
			}
			if e.Firing.IsZero() {
				e.Firing = now
			}
		}
	}
	for k, eps := range w.episodes {
		if e := eps[len(eps)-1]; !seen[k] && e.Gone.IsZero() {
			e.Gone = now
		}
	}
}

// find returns the episodes of alertname whose labels include match, that were active at or after since.
func (w *alertWatch) find(alertname string, match map[string]string, since time.Time) []episode {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []episode
	for _, eps := range w.episodes {
	next:
		for _, e := range eps {
			if e.Labels["alertname"] != alertname {
				continue
			}
			if !e.Gone.IsZero() && e.Gone.Before(since) {
				continue
			}
			for k, v := range match {
				if e.Labels[k] != v {
					continue next
				}
			}
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pending.Before(out[j].Pending) })
	return out
}

// waitFiring waits until alertname fires with labels match, and returns its episode (the one
// that fired first; with two severities, usually the warning went pending first).
func (w *alertWatch) waitFiring(t *testing.T, alertname string, match map[string]string, since time.Time, timeout time.Duration) episode {
	t.Helper()
	var got episode
	ok := testutil.Poll(timeout, poll, func() bool {
		for _, e := range w.find(alertname, match, since) {
			if !e.Firing.IsZero() && (got.Firing.IsZero() || e.Firing.Before(got.Firing)) {
				got = e
			}
		}
		return !got.Firing.IsZero()
	})
	if !ok {
		t.Fatalf("%s%v did not fire within %s (seen: %s)", alertname, match, timeout, w.describe(alertname, match, since))
	}
	return got
}

// waitAllGone waits until no episode of alertname with labels match is active, and returns when
// the last one went away.
func (w *alertWatch) waitAllGone(t *testing.T, alertname string, match map[string]string, since time.Time, timeout time.Duration) time.Time {
	t.Helper()
	var last time.Time
	ok := testutil.Poll(timeout, poll, func() bool {
		last = time.Time{}
		for _, e := range w.find(alertname, match, since) {
			if e.Gone.IsZero() {
				return false
			}
			if e.Gone.After(last) {
				last = e.Gone
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("%s%v still active after %s: %s", alertname, match, timeout, w.describe(alertname, match, since))
	}
	return last
}

// firstPending returns the earliest pending time of alertname with labels match since since.
func (w *alertWatch) firstPending(alertname string, match map[string]string, since time.Time) time.Time {
	var first time.Time
	for _, e := range w.find(alertname, match, since) {
		if !e.Pending.IsZero() && (first.IsZero() || e.Pending.Before(first)) {
			first = e.Pending
		}
	}
	return first
}

func (w *alertWatch) describe(alertname string, match map[string]string, since time.Time) string {
	var parts []string
	for _, e := range w.find(alertname, match, since) {
		parts = append(parts, fmt.Sprintf("[%s pending=%s firing=%s gone=%s value=%s]", e.Labels["severity"],
			clock(e.Pending), clock(e.Firing), clock(e.Gone), e.Value))
	}
	if len(parts) == 0 {
		return "never active"
	}
	return strings.Join(parts, " ")
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05.0")
}

// poll is how often the suite checks a condition: each check may query Prometheus, and the
// stack shares the machine with the suite.
const poll = 500 * time.Millisecond

// query runs an instant PromQL query and returns its vector.
func (s *stack) query(t *testing.T, q string) model.Vector {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, _, _, err := s.prom.Query(ctx, q, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		t.Fatalf("query %s: %s, not a vector", q, v.Type())
	}
	return vec
}

// scalarOf returns the single value of q, or false when it has none.
func (s *stack) scalarOf(t *testing.T, q string) (float64, bool) {
	vec := s.query(t, q)
	if len(vec) == 0 {
		return 0, false
	}
	return float64(vec[0].Value), true
}

// chaos injects a fault into a demo container through its chaos API.
func (s *stack) chaos(t *testing.T, container, fault string, params url.Values) time.Time {
	t.Helper()
	svc := s.svc(container)
	u := svc.url("/chaos/" + fault)
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	at := time.Now()
	code, body := testutil.Do(t, http.MethodPost, u, "", nil)
	if code/100 != 2 {
		t.Fatalf("POST %s: %d %s", u, code, body)
	}
	t.Logf("%s injected %s %s", clock(at), container, fault)
	return at
}

// heal is one entry of the remediator's GET /api/v1/heals, read as an outside client would.
type heal struct {
	ID       string `json:"id"`
	Target   string `json:"target"`
	Playbook string `json:"playbook"`
	Alert    struct {
		Name     string            `json:"name"`
		StartsAt time.Time         `json:"startsAt"`
		Labels   map[string]string `json:"labels"`
	} `json:"alert"`
	Received time.Time `json:"received"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
	Steps    []step    `json:"steps"`
	// Relapse is set when the alert came back within the relapse window after the heal.
	Relapse *struct {
		At    time.Time `json:"at"`
		Alert struct {
			Name     string    `json:"name"`
			StartsAt time.Time `json:"startsAt"`
		} `json:"alert"`
	} `json:"relapse"`
	OutsideRestart *struct {
		What string `json:"what"`
	} `json:"outside_restart"`
	// Silences are the ids of the Alertmanager silences the heal held while it acted.
	Silences []string `json:"silences"`
}

// step is one step of a heal record.
type step struct {
	Name    string    `json:"name"`
	Action  string    `json:"action"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason"`
	Error   string    `json:"error"`
	Detail  string    `json:"detail"`
	// StabilizingSince is when the step's checks passed and its hold began.
	StabilizingSince time.Time `json:"stabilizing_since"`
	Evidence         *struct {
		Captured time.Time         `json:"captured"`
		Object   string            `json:"object"`
		State    map[string]string `json:"state"`
		Log      string            `json:"log"`
	} `json:"evidence"`
	EvidenceError string `json:"evidence_error"`
}

// step returns the heal's step of that name, and whether it ran.
func (h heal) step(name string) (step, bool) {
	for _, st := range h.Steps {
		if st.Name == name {
			return st, true
		}
	}
	return step{}, false
}

func (h heal) String() string {
	var steps []string
	for _, st := range h.Steps {
		s := st.Name + "/" + st.Action + "=" + st.Outcome
		if st.Reason != "" {
			s += " (" + st.Reason + ")"
		}
		if st.Error != "" {
			s += " error: " + st.Error
		}
		if !st.StabilizingSince.IsZero() {
			s += " stabilizing " + clock(st.StabilizingSince) + "-" + clock(st.End)
		}
		steps = append(steps, s)
	}
	s := fmt.Sprintf("heal %s %s on %s for %s: %s %s [%s] %s-%s", h.ID, h.Playbook, h.Target, h.Alert.Name,
		h.Result, h.Reason, strings.Join(steps, "; "), clock(h.Started), clock(h.Ended))
	if h.OutsideRestart != nil {
		s += " outside restart: " + h.OutsideRestart.What
	}
	if h.Relapse != nil {
		s += " relapsed at " + clock(h.Relapse.At)
	}
	return s
}

// firstAction returns when the heal's first step that did something started.
func (h heal) firstAction() time.Time {
	for _, st := range h.Steps {
		if st.Outcome != "skipped" && !st.Start.IsZero() {
			return st.Start
		}
	}
	return time.Time{}
}

// heals returns the remediator's heal history for a target, oldest first.
func (s *stack) heals(t *testing.T, target string) []heal {
	t.Helper()
	u := s.remURL + "/api/v1/heals"
	if target != "" {
		u += "?target=" + url.QueryEscape(target)
	}
	resp, err := httpc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	var hs []heal
	if err := json.Unmarshal(b, &hs); err != nil {
		// Tolerate an envelope such as {"heals": [...]} or {"data": [...]}.
		var env map[string]json.RawMessage
		if json.Unmarshal(b, &env) != nil {
			t.Fatalf("GET %s: decode: %v: %.300s", u, err, b)
		}
		for _, k := range []string{"heals", "data", "items"} {
			if raw, ok := env[k]; ok {
				if err := json.Unmarshal(raw, &hs); err != nil {
					t.Fatalf("GET %s: decode %s: %v", u, k, err)
				}
				break
			}
		}
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].Started.Before(hs[j].Started) })
	return hs
}

// healsSince returns the target's heals started at or after since.
func (s *stack) healsSince(t *testing.T, target string, since time.Time) []heal {
	var out []heal
	for _, h := range s.heals(t, target) {
		if !h.Started.Before(since) {
			out = append(out, h)
		}
	}
	return out
}

// waitHeal waits for a finished heal of target started after since and returns it.
func (s *stack) waitHeal(t *testing.T, target string, since time.Time, timeout time.Duration) heal {
	t.Helper()
	var got heal
	ok := testutil.Poll(timeout, poll, func() bool {
		for _, h := range s.healsSince(t, target, since) {
			if h.Result != "" && h.Result != "running" {
				got = h
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no finished heal of %s within %s; history: %v", target, timeout, s.healsSince(t, target, since))
	}
	return got
}

// inspect returns a container's state as the engine reports it.
type containerState struct {
	ID           string
	Running      bool
	StartedAt    time.Time
	RestartCount int
}

func inspect(t *testing.T, name string) containerState {
	t.Helper()
	out := testutil.InspectField(t, name, "{{.Id}} {{.State.Running}} {{.State.StartedAt}} {{.RestartCount}}")
	f := strings.Fields(out)
	if len(f) != 4 {
		t.Fatalf("docker inspect %s: %q", name, out)
	}
	st, _ := time.Parse(time.RFC3339Nano, f[2])
	var rc int
	fmt.Sscan(f[3], &rc)
	return containerState{ID: f[0], Running: f[1] == "true", StartedAt: st, RestartCount: rc}
}
