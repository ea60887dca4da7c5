package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// IntakeRun is one measurement of the webhook with one load driver.
type IntakeRun struct {
	Receiver      string // "bare", "bare+fsync" or "remediator"
	Senders       int
	Notifications int
	Alerts        int
	Elapsed       time.Duration
	Throughput    float64 // notifications per second
	P50, P99, Max time.Duration
	Non2xx        int
	// HealsDuring is how many heals the remediator ran while the load lasted.
	HealsDuring int
}

// benchPlaybooks heal every BenchMemoryHigh alert with a recovery call that takes a while, so
// heals run (max_concurrent_heals at a time) for as long as the load lasts. The cooldown and
// budget are out of the way: the benchmark measures the path, not the policy.
const benchPlaybooks = `
global:
  max_concurrent_heals: 4
  heals_per_minute: 100000
  history_max_entries: 1000
defaults:
  cooldown: {initial: 1ms, factor: 1, max: 1ms, reset_after: 1m}
  budget: {attempts: 1000000, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  verify: {skip: true}
  step_timeout: 10s
playbooks:
  - name: bench
    match: ['alertname="BenchMemoryHigh"']
    steps:
      - name: flush
        http: {method: POST, url: '%s/recover/{{ .Labels.container }}'}
`

// benchRounds is how many slices of its notifications each receiver is given in turn (see
// Interleave).
const benchRounds = 5

// benchBodies builds n notifications of two new alerts each (a new episode every time, so the
// remediator cannot answer from its deduplication), cycling over targets.
func benchBodies(run string, n, targets int) [][]byte {
	start := time.Now().Add(-time.Hour)
	out := make([][]byte, n)
	for i := range out {
		target := fmt.Sprintf("bench-%04d", i%targets)
		at := start.Add(time.Duration(i) * time.Millisecond)
		ex := map[string]string{"run": run}
		out[i] = Notification(fmt.Sprintf(`{}:{alertname="BenchMemoryHigh", instance="%s:8080"}`, target),
			Alert{Name: "BenchMemoryHigh", Target: target, Severity: "warning", Extra: ex, StartsAt: at},
			Alert{Name: "BenchMemoryHigh", Target: target, Severity: "critical", Extra: ex, StartsAt: at})
	}
	return out
}

func intakeRun(receiver string, d *Delivery, alerts int) IntakeRun {
	r := IntakeRun{Receiver: receiver, Notifications: d.Sent, Alerts: alerts, Elapsed: d.Elapsed,
		Throughput: float64(d.Sent) / d.Elapsed.Seconds(), P50: d.Quantile(.5), P99: d.Quantile(.99), Max: d.Quantile(1)}
	for code, n := range d.Statuses {
		if code != http.StatusAccepted {
			r.Non2xx += n
		}
	}
	r.Non2xx += len(d.Errors)
	return r
}

// MeasureIntake drives the bare handler, the durable bare handler and a real remediator
// (webhook, store in dir, pipeline, http steps running heals) with the same driver, the same
// bodies, and the same number of senders, in turns in this process (see Interleave). A second
// remediator whose playbook matches none of the alerts takes its turns too: its webhook does
// the same work, its pipeline only records that nothing matched, so the two remediator rows
// tell the cost of the intake path from the cost of the decisions and heals beside it.
func MeasureIntake(dir string, senders, notifications int) (runs [4]IntakeRun, err error) {
	rec := &Recovery{Delay: 100 * time.Millisecond}
	endpoint := httptest.NewServer(rec)
	defer endpoint.Close()
	r, err := Start(Options{Dir: filepath.Join(dir, "matched"), Playbooks: fmt.Sprintf(benchPlaybooks, endpoint.URL), Token: "bench-token"})
	if err != nil {
		return runs, err
	}
	defer r.Stop()
	unmatchedPlaybooks := strings.Replace(fmt.Sprintf(benchPlaybooks, endpoint.URL), `alertname="BenchMemoryHigh"`, `alertname="NoBenchAlert"`, 1)
	u, err := Start(Options{Dir: filepath.Join(dir, "unmatched"), Playbooks: unmatchedPlaybooks, Token: "bench-token"})
	if err != nil {
		return runs, err
	}
	defer u.Stop()
	bareURL, stopBare, err := ServeBare()
	if err != nil {
		return runs, err
	}
	defer stopBare()
	dh, closeLog, err := DurableBareHandler(filepath.Join(dir, "durable-bare.log"))
	if err != nil {
		return runs, err
	}
	defer closeLog()
	durableURL, stopDurable, err := Serve(dh)
	if err != nil {
		return runs, err
	}
	defer stopDurable()

	posts := []func(*http.Client, []byte) (int, string, error){PostTo(bareURL, ""), PostTo(durableURL, ""), r.Post, u.Post}
	// Warm them up (connections, caches, the database file's first pages).
	warm := benchBodies("warm-"+strconv.Itoa(senders), 500, 200)
	for _, post := range posts {
		Deliver(post, warm, senders)
	}

	tag := fmt.Sprintf("s%d", senders)
	bodies := benchBodies(tag, notifications, 500)
	runtime.GC()
	callsBefore := rec.Calls()
	ds := Interleave(posts, bodies, senders, benchRounds)
	for i, name := range []string{"bare", "bare+fsync", "remediator", "remediator, nothing matches"} {
		runs[i] = intakeRun(name, ds[i], 2*notifications)
		runs[i].Senders = senders
	}
	runs[2].HealsDuring = rec.Calls() - callsBefore
	return runs, nil
}

// MeasureRepeat drives the bare handler and a real remediator with one notification repeated,
// as Alertmanager re-sends a firing group every repeat_interval and its HA peers send the same
// group again: two alerts whose heals are running (their recovery calls hang until the end), so
// every delivery after the first is a repeat of an acting episode and changes nothing.
func MeasureRepeat(dir string, senders, notifications int) (bare, rem IntakeRun, err error) {
	rec := &Recovery{Hang: true, Notify: make(chan string, 4)}
	endpoint := httptest.NewServer(rec)
	defer endpoint.Close()
	defer rec.Release()
	r, err := Start(Options{Dir: dir, Playbooks: fmt.Sprintf(benchPlaybooks, endpoint.URL), Token: "bench-token"})
	if err != nil {
		return bare, rem, err
	}
	defer r.Stop()
	bareURL, stopBare, err := ServeBare()
	if err != nil {
		return bare, rem, err
	}
	defer stopBare()

	at := time.Now().Add(-time.Minute)
	body := Notification(`{}:{alertname="BenchMemoryHigh"}`,
		Alert{Name: "BenchMemoryHigh", Target: "repeat-a", Severity: "critical", StartsAt: at},
		Alert{Name: "BenchMemoryHigh", Target: "repeat-b", Severity: "critical", StartsAt: at})
	if code, msg, err := r.Post(Client(1), body); err != nil || code != http.StatusAccepted {
		return bare, rem, fmt.Errorf("first delivery of the repeated notification: %d %s %v", code, msg, err)
	}
	for range 2 {
		select {
		case <-rec.Notify:
		case <-time.After(10 * time.Second):
			return bare, rem, errors.New("the repeated notification's heals did not start")
		}
	}
	bodies := make([][]byte, notifications)
	for i := range bodies {
		bodies[i] = body
	}
	warm := bodies[:min(len(bodies), 500)]
	Deliver(PostTo(bareURL, ""), warm, senders)
	Deliver(r.Post, warm, senders)
	runtime.GC()
	ds := Interleave([]func(*http.Client, []byte) (int, string, error){PostTo(bareURL, ""), r.Post}, bodies, senders, benchRounds)
	d := ds[1]
	bare = intakeRun("bare", ds[0], 2*notifications)
	rem = intakeRun("remediator", d, 2*notifications)
	bare.Senders, rem.Senders = senders, senders
	if d.Replies.Deduplicated != 2*d.Statuses[http.StatusAccepted] {
		return bare, rem, fmt.Errorf("repeats: %d alerts deduplicated in %d accepted notifications, want all", d.Replies.Deduplicated, d.Statuses[http.StatusAccepted])
	}
	return bare, rem, nil
}

// DecisionRun is the time from posting an alert to its first action starting.
type DecisionRun struct {
	Samples     int
	Background  string
	P50, P99    time.Duration
	Max         time.Duration
	PostP50     time.Duration // the webhook's own answer time in the same samples
	Unaccounted int           // alerts whose action never started
}

// MeasureDecision posts one alert at a time for a fresh target and waits for the recovery call
// it causes: receipt -> durable record -> decision -> dispatch -> http step starting. With
// background > 0, that many senders keep posting other alerts meanwhile (the decision loop then
// has a queue).
func MeasureDecision(dir string, samples, background int) (DecisionRun, error) {
	rec := &Recovery{Notify: make(chan string, 1024)}
	endpoint := httptest.NewServer(rec)
	defer endpoint.Close()
	r, err := Start(Options{Dir: dir, Playbooks: fmt.Sprintf(benchPlaybooks, endpoint.URL), Token: "bench-token"})
	if err != nil {
		return DecisionRun{}, err
	}
	defer r.Stop()
	out := DecisionRun{Samples: samples, Background: "idle"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if background > 0 {
		out.Background = fmt.Sprintf("%d senders posting unmatched alerts", background)
		go func() {
			c := Client(background)
			for i := 0; ctx.Err() == nil; i++ {
				var bodies [][]byte
				for j := range 64 {
					target := fmt.Sprintf("noise-%d-%d", i, j)
					bodies = append(bodies, Notification(target, Alert{Name: "NoiseLow", Target: target, Severity: "warning", StartsAt: time.Now()}))
				}
				Deliver(func(_ *http.Client, b []byte) (int, string, error) { return r.Post(c, b) }, bodies, background)
			}
		}()
		time.Sleep(200 * time.Millisecond)
	}
	c := Client(1)
	var lat, post []time.Duration
	for i := range samples {
		target := fmt.Sprintf("decide-%05d", i)
		body := Notification(target, Alert{Name: "BenchMemoryHigh", Target: target, Severity: "critical", StartsAt: time.Now()})
		t0 := time.Now()
		code, _, err := r.Post(c, body)
		post = append(post, time.Since(t0))
		if err != nil || code != http.StatusAccepted {
			out.Unaccounted++
			continue
		}
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case got := <-rec.Notify:
				if got == target {
					lat = append(lat, time.Since(t0))
					break wait
				}
			case <-timeout:
				out.Unaccounted++
				break wait
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(post)
	out.P50, out.P99, out.Max, out.PostP50 = Quantile(lat, .5), Quantile(lat, .99), Quantile(lat, 1), Quantile(post, .5)
	return out, nil
}

// MemoryRun is the real remediator binary holding many active alerts.
type MemoryRun struct {
	// GoMemLimit is the GOMEMLIMIT the process ran with ("" for none).
	GoMemLimit       string
	Alerts, Targets  int
	Ingest           time.Duration // posting all notifications
	Decide           time.Duration // until every alert was decided
	RSS, PeakRSS     float64       // bytes, at the end and the peak (VmHWM)
	RSSAnon, RSSFile float64       // resident anonymous memory (Go heap, stacks) and file pages (the mmap'ed state file)
	HeapInuse        float64
	DBBytes          int64
	Firing           int // alerts the remediator reports as firing on its targets
	// APITime and MetricsTime are how long GET /api/v1/targets and GET /metrics took at the end.
	APITime, MetricsTime time.Duration
	// Goal is the resident memory the run must stay under (bytes).
	Goal float64
}

// MeasureMemory starts the real binary, pauses healing (so nothing resolves the alerts), posts
// alerts firing on targets in notifications of perTarget alerts, waits until all are
// decided, and reads the process' resident memory from its own /metrics and from /proc.
func MeasureMemory(binary, dir string, alerts, targets int, goMemLimit string) (MemoryRun, error) {
	out := MemoryRun{Alerts: alerts, Targets: targets, GoMemLimit: goMemLimit, Goal: GoalRSS}
	if alerts > 100000 {
		out.Goal = GoalLargeRSS
	}
	perTarget := alerts / targets
	cfg := filepath.Join(dir, "playbooks.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(benchPlaybooks, "http://127.0.0.1:9")), 0o600); err != nil {
		return out, err
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("bench-token"), 0o600); err != nil {
		return out, err
	}
	addr, err := freeAddr()
	if err != nil {
		return out, err
	}
	cmd := exec.Command(binary, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--webhook.token-file="+tok, "--log.level=error", "--web.max-requests=64")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GOMEMLIMIT=" + goMemLimit}
	if goMemLimit == "" {
		cmd.Env = cmd.Env[:1]
	}
	if err := cmd.Start(); err != nil {
		return out, fmt.Errorf("start the remediator binary (build it first: make build): %w", err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	r := &Remediator{URL: "http://" + addr, Token: "bench-token"}
	if err := waitReady(r.URL, 15*time.Second); err != nil {
		return out, err
	}
	c := Client(1)
	req, _ := http.NewRequest(http.MethodPost, r.URL+"/api/v1/pause", strings.NewReader(`{"reason":"memory benchmark"}`))
	req.Header.Set("Authorization", "Bearer "+r.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return out, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("pause: %s", resp.Status)
	}

	start := time.Now()
	// Built and posted in batches, so the driver does not hold every notification at once.
	for first := 0; first < targets; first += 5000 {
		bodies := make([][]byte, 0, 5000)
		for tg := first; tg < min(first+5000, targets); tg++ {
			target := fmt.Sprintf("mem-%05d", tg)
			var as []Alert
			for a := range perTarget {
				as = append(as, Alert{Name: "BenchMemoryHigh", Target: target, Severity: "warning",
					Extra: map[string]string{"pod": strconv.Itoa(a)}, StartsAt: start.Add(-time.Hour)})
			}
			bodies = append(bodies, Notification(target, as...))
		}
		d := Deliver(r.Post, bodies, 16)
		if bad := len(bodies) - d.Statuses[http.StatusAccepted]; bad > 0 {
			return out, fmt.Errorf("%d notifications not accepted: %v %v", bad, d.Statuses, firstErrOf(d.Errors))
		}
	}
	out.Ingest = time.Since(start)
	// Decided when every alert is counted: suppressed (paused) or coalesced.
	for {
		m, err := r.Scrape()
		if err != nil {
			return out, err
		}
		decided := m.Value("remediator_heals_suppressed_total", "reason", "paused") +
			m.Value("remediator_alerts_total", "outcome", "deduplicated") + m.Value("remediator_alerts_total", "outcome", "unmatched")
		if int(decided) >= alerts {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return out, fmt.Errorf("only %v of %d alerts decided after 10 minutes", decided, alerts)
		}
		time.Sleep(250 * time.Millisecond)
	}
	out.Decide = time.Since(start)
	time.Sleep(2 * time.Second) // let the heap settle after the decisions
	t0 := time.Now()
	m, err := r.Scrape()
	if err != nil {
		return out, err
	}
	out.MetricsTime = time.Since(t0)
	out.RSS = m.Value("process_resident_memory_bytes")
	out.HeapInuse = m.Value("go_memstats_heap_inuse_bytes")
	out.PeakRSS = procStatus(cmd.Process.Pid, "VmHWM")
	out.RSSAnon = procStatus(cmd.Process.Pid, "RssAnon")
	out.RSSFile = procStatus(cmd.Process.Pid, "RssFile")
	if st, err := os.Stat(filepath.Join(dir, "data", "remediator.db")); err == nil {
		out.DBBytes = st.Size()
	}
	t0 = time.Now()
	// The default answer: a page of targets, and the counts of all of them.
	resp, err = http.Get(r.URL + "/api/v1/targets")
	if err == nil {
		var body struct {
			Firing int `json:"firing"`
		}
		_ = decodeJSON(resp, &body)
		out.APITime = time.Since(t0)
		out.Firing = body.Firing
	}
	return out, nil
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func firstErrOf(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("remediator not ready in time")
}

// procStatus reads a "kB" field of /proc/<pid>/status in bytes (0 where there is no /proc).
func procStatus(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n * 1024
		}
	}
	return 0
}
