package docker

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// chaos posts to the demo service's fault API; each start of a fault writes one log line.
func chaos(t *testing.T, port int, query string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/chaos/%s", port, query), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /chaos/%s: %s", query, resp.Status)
	}
}

func TestEvidenceHoldsStateAndLastLogLines(t *testing.T) {
	t.Parallel()
	name, _, port := demoContainer(t, demoImages(t).healthy, optIn)
	for range action.MaxEvidenceLogLines + 50 {
		chaos(t, port, "errors?ratio=0.01")
	}
	waitHealthy(t, name)
	a := newActuator(t, Options{Host: leastPrivilegeProxy(t)})
	req := request(config.DockerAction{Action: "restart"}, map[string]string{"container": name})

	ev, err := a.Evidence(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(ev.Log, "\n"), "\n")
	if len(lines) != action.MaxEvidenceLogLines || len(ev.Log) > action.MaxEvidenceLog {
		t.Errorf("evidence log: %d lines, %d bytes; want the last %d lines within %d bytes", len(lines), len(ev.Log), action.MaxEvidenceLogLines, action.MaxEvidenceLog)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "fault started") {
		t.Errorf("last log line %q, want the newest (a fault start)", last)
	}
	want := map[string]string{"status": "running", "exit_code": "0", "oom_killed": "false", "restart_count": "0", "health": "healthy"}
	for k, v := range want {
		if ev.State[k] != v {
			t.Errorf("state[%s] = %q, want %q (state %v)", k, ev.State[k], v, ev.State)
		}
	}
	if ev.State["started_at"] != testutil.InspectField(t, name, "{{.State.StartedAt}}") || !strings.Contains(ev.State["health_probes"], "exit 0") {
		t.Errorf("state %v: want the start time and the health probes", ev.State)
	}
	if !strings.Contains(ev.Object, name) {
		t.Errorf("object %q does not name the container", ev.Object)
	}

	before, err := a.Incarnation(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Run(context.Background(), request(config.DockerAction{Action: "restart", StopTimeout: model.Duration(2 * time.Second)}, map[string]string{"container": name})); err != nil {
		t.Fatal(err)
	}
	after, err := a.Incarnation(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if after.Same(before) || !after.Started.After(before.Started) || after.ID != before.ID {
		t.Errorf("run before %+v, after a restart %+v: want the same container, started later", before, after)
	}
}

func TestEvidenceRefusesWhatRunRefuses(t *testing.T) {
	t.Parallel()
	name, _, _ := demoContainer(t, demoImages(t).plain, nil)
	a := newActuator(t, Options{})
	req := request(config.DockerAction{Action: "restart"}, map[string]string{"container": name})
	if ev, err := a.Evidence(context.Background(), req); err == nil || !strings.Contains(err.Error(), "has not opted in") {
		t.Errorf("evidence of a container that did not opt in: %+v, %v", ev, err)
	}
	if _, err := a.Incarnation(context.Background(), req); err == nil || !strings.Contains(err.Error(), "has not opted in") {
		t.Errorf("run of a container that did not opt in: err = %v", err)
	}
}

// oomContainer runs the demo service with a 48 MiB limit, no swap and restart policy on-failure:
// an unflushable leak makes the kernel kill it and the engine start it again.
func oomContainer(t *testing.T) (name string, port int) {
	t.Helper()
	name, _, port = demoContainer(t, demoImages(t).plain, optIn, "--memory", "48m", "--memory-swap", "48m", "--restart", "on-failure")
	return name, port
}

// waitRestartedByPolicy waits until the engine restarted the container (RestartCount > 0) and
// it runs again.
func waitRestartedByPolicy(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := testutil.InspectField(t, name, "{{.RestartCount}} {{.State.Running}}")
		if n, running, _ := strings.Cut(st, " "); n != "0" && running == "true" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not restarted by its policy within 60s: restart count, running = %s", name, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitHealthy(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for testutil.InspectField(t, name, "{{.State.Health.Status}}") != "healthy" {
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy within 30s", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestOOMKillAndPolicyRestartIsAnotherRun(t *testing.T) {
	t.Parallel()
	name, port := oomContainer(t)
	a := newActuator(t, Options{})
	req := request(config.DockerAction{Action: "restart"}, map[string]string{"container": name})
	before, err := a.Incarnation(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	chaos(t, port, "memory-leak?rate_mb=64&kind=unflushable")
	waitRestartedByPolicy(t, name)
	after, err := a.Incarnation(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	what := after.ChangeSince(before)
	t.Log(what)
	if after.Same(before) || after.Restarts < 1 || !strings.Contains(what, "restarted by its restart policy") {
		t.Fatalf("after the OOM kill: %+v, %q; want another run restarted by its policy", after, what)
	}
	// Engines keep OOMKilled across a policy restart (20.10 does); where one does, it must be said.
	if oom := testutil.InspectField(t, name, "{{.State.OOMKilled}}"); oom == "true" && !strings.Contains(what, "OOMKilled") {
		t.Errorf("the engine says OOMKilled, the change does not: %q", what)
	}
	ev, err := a.Evidence(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Log, "fault started") || ev.State["restart_count"] == "0" {
		t.Errorf("evidence after the OOM kill: state %v, log %q; want the killed run's lines and the restart count", ev.State, ev.Log)
	}
}

// engineHeal runs one heal through the pipeline with the Docker actuator on the real engine,
// without Prometheus (a resolved notification verifies), and returns its record.
type engineHeal struct {
	t     *testing.T
	st    *store.Store
	p     *pipeline.Pipeline
	alert template.Alert
}

// newEngineHeal heals container with one playbook for ServiceMemoryHigh whose steps are given
// in YAML.
func newEngineHeal(t *testing.T, steps, container string) *engineHeal {
	t.Helper()
	playbook := `
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    target: '{{ .Labels.container }}'
    steps:` + steps
	cfg, err := config.Parse([]byte(playbook), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := action.NewDispatcher(action.DispatcherOptions{Actuators: []action.Actuator{newActuator(t, Options{})}})
	p, err := pipeline.New(pipeline.Options{Store: st, Runner: runner, Verifier: verify.New(nil), Registerer: prometheus.NewRegistry(), Tick: 50 * time.Millisecond}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.Wait(); st.Close() })
	return &engineHeal{t: t, st: st, p: p, alert: template.Alert{
		Status:      "firing",
		Labels:      template.KV{"alertname": "ServiceMemoryHigh", "container": container},
		Annotations: template.KV{"summary": "Memory high on " + container, "runbook_url": "docs/runbooks.md#servicememoryhigh"},
		StartsAt:    time.Now().Add(-time.Minute).Truncate(time.Second),
	}}
}

func (e *engineHeal) deliver(status string) {
	e.t.Helper()
	a := e.alert
	a.Status = status
	if status == "resolved" {
		a.EndsAt = time.Now()
	}
	entries, errs := intake.Entries(&intake.Message{Data: &template.Data{Alerts: template.Alerts{a}}, Version: "4"}, time.Now())
	if len(errs) > 0 {
		e.t.Fatal(errs)
	}
	if _, err := e.st.Accept(entries); err != nil {
		e.t.Fatal(err)
	}
	e.p.Submit(entries)
}

func (e *engineHeal) heal() store.Heal {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.p.WaitIdle(ctx); err != nil {
		e.t.Fatal(err)
	}
	hs, err := e.st.Heals(store.HealFilter{})
	if err != nil || len(hs) != 1 {
		e.t.Fatalf("heals = %+v, %v; want one", hs, err)
	}
	return hs[0]
}

func TestRestartHealRecordsEvidence(t *testing.T) {
	t.Parallel()
	name, _, _ := demoContainer(t, demoImages(t).healthy, optIn)
	e := newEngineHeal(t, `
      - name: restart
        docker: {action: restart, stop_timeout: 2s}
        timeout: 60s
        verify: {skip: true}
`, name)
	waitHealthy(t, name)
	startedBefore := testutil.InspectField(t, name, "{{.State.StartedAt}}")
	e.deliver("firing")
	h := e.heal()
	if h.Result != store.HealHealed || len(h.Steps) != 1 || h.Steps[0].Outcome != store.StepSucceeded {
		t.Fatalf("heal = %+v, want the restart healed", h)
	}
	ev := h.Steps[0].Evidence
	if ev == nil {
		t.Fatalf("restart step has no evidence (error %q)", h.Steps[0].EvidenceError)
	}
	if !strings.Contains(ev.Log, "msg=listening") || ev.State["status"] != "running" || ev.State["health"] != "healthy" || ev.State["started_at"] != startedBefore {
		t.Errorf("evidence = state %v, log %q; want the state and log before the restart", ev.State, ev.Log)
	}
	if h.Incarnation == nil || h.Steps[0].Incarnation == nil || !h.Steps[0].Incarnation.Started.After(h.Incarnation.Started) {
		t.Errorf("runs: heal began with %+v, the restart left %+v", h.Incarnation, h.Steps[0].Incarnation)
	}
	if h.Alert.Annotations["runbook_url"] != "docs/runbooks.md#servicememoryhigh" {
		t.Errorf("annotations = %v", h.Alert.Annotations)
	}
}

// The compose stack's case: an unflushable leak reaches the limit while the flush step waits for
// its check, the kernel kills the container, its restart policy starts it, the alert resolves.
func TestOOMKillDuringHealIsNotHealed(t *testing.T) {
	t.Parallel()
	name, port := oomContainer(t)
	e := newEngineHeal(t, `
      - name: flush-cache
        http: {method: POST, url: 'http://127.0.0.1:`+strconv.Itoa(port)+`/recover/flush-cache'}
        timeout: 10s
        verify: {timeout: 90s}
      - name: restart
        docker: {action: restart, stop_timeout: 2s}
        timeout: 60s
`, name)
	chaos(t, port, "memory-leak?rate_mb=4&kind=unflushable")
	e.deliver("firing")
	waitRestartedByPolicy(t, name)
	startedByPolicy := testutil.InspectField(t, name, "{{.State.StartedAt}}")
	e.deliver("resolved")
	h := e.heal()
	t.Logf("result %s: %s", h.Result, h.Reason)
	if h.Result != store.HealRestartedOutside || len(h.Steps) != 1 || h.Steps[0].Name != "flush-cache" || h.Steps[0].Outcome != store.StepUncredited {
		t.Fatalf("heal = %+v, want restarted_outside with the flush uncredited and no restart step", h)
	}
	o := h.OutsideRestart
	if o == nil || !strings.Contains(o.What, "restarted by its restart policy") || o.After.Restarts < 1 {
		t.Fatalf("outside restart = %+v", o)
	}
	if got := testutil.InspectField(t, name, "{{.State.StartedAt}}"); got != startedByPolicy {
		t.Errorf("the container was started again (%s, policy started it at %s): the heal acted after the outside restart", got, startedByPolicy)
	}
}

func TestTailWriter(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		// Cut inside the first line: the kept part starts at the next whole line.
		{[]string{"first line\n", "second\n", "end\xff"}, "end\uFFFD"},
		// Nothing cut: all of it, even without a newline.
		{[]string{"short\n", "ok"}, "short\nok"},
		// Cut with no newline left to start from: the bytes as they are.
		{[]string{"0123456789"}, "23456789"},
	} {
		w := &tailWriter{max: 8}
		for _, s := range tc.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if got := w.String(); got != tc.want {
			t.Errorf("%q: kept %q, want %q", tc.writes, got, tc.want)
		}
	}
}

func TestLogTailReadsBothStreamKinds(t *testing.T) {
	// The engine's frames: stream, three zero bytes, the payload's length big-endian, the payload.
	var muxed bytes.Buffer
	for _, f := range []struct {
		stream stdcopy.StdType
		line   string
	}{{stdcopy.Stdout, "out 1\n"}, {stdcopy.Stderr, "err 2\n"}} {
		muxed.Write(binary.BigEndian.AppendUint32([]byte{byte(f.stream), 0, 0, 0}, uint32(len(f.line))))
		muxed.WriteString(f.line)
	}
	got, err := LogTail(&muxed, false)
	if err != nil || got != "out 1\nerr 2\n" {
		t.Errorf("multiplexed: %q, %v; want both streams in order", got, err)
	}

	long := strings.Repeat("x", 100) + "\n"
	raw := strings.Repeat(long, 2*action.MaxEvidenceLog/len(long))
	got, err = LogTail(strings.NewReader(raw+"last\n"), true)
	if err != nil || len(got) > action.MaxEvidenceLog || !strings.HasPrefix(got, long) || !strings.HasSuffix(got, long+"last\n") {
		t.Errorf("terminal stream: %d bytes, %v; want whole lines up to the last, within %d bytes", len(got), err, action.MaxEvidenceLog)
	}
}
