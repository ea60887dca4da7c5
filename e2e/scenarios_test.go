package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
)

// Timeouts of one scenario's legs. The rules' `for:` are 15-60s and the playbooks give a step
// 30-90s to verify; these leave room for a loaded 2-core machine without hiding a stuck loop.
const (
	fireTimeout    = 3 * time.Minute
	healTimeout    = 4 * time.Minute
	resolveTimeout = 2 * time.Minute
	// Memory is filled to this share of the limit: above both thresholds even after a GC returns
	// the garbage (about 1% of the limit), and below the OOM kill.
	fillRatio  = 0.94
	fillRateMB = "16"
)

// fillMemory leaks memory of the given kind into container c until its resident memory reaches
// fillRatio of its limit, then stops the growth (what was leaked stays). A leak left growing
// would reach the limit, and the kernel's OOM kill, before the alert's `for:` has passed.
func (s *stack) fillMemory(t *testing.T, c, kind string) time.Time {
	t.Helper()
	return s.fillMemoryTo(t, c, kind, fillRateMB, fillRatio)
}

// fillMemoryTo is fillMemory at another leak rate (MB/s) and share of the limit.
func (s *stack) fillMemoryTo(t *testing.T, c, kind, rateMB string, target float64) time.Time {
	t.Helper()
	svc := s.svc(c)
	at := s.chaos(t, c, "memory-leak", url.Values{"kind": {kind}, "rate_mb": {rateMB}})
	ratio, ok := s.waitMemory(c, target, 90*time.Second)
	code, body := testutil.Do(t, http.MethodDelete, svc.url("/chaos/memory-leak?kind="+kind), "", nil)
	if code/100 != 2 {
		t.Fatalf("stop leak on %s: %d %s", c, code, body)
	}
	if !ok {
		t.Fatalf("%s: resident memory reached only %.0f%% of the limit, want %.0f%%", c, ratio*100, target*100)
	}
	t.Logf("%s memory at %.0f%% of its limit", c, ratio*100)
	return at
}

// waitMemory polls c's resident memory closely (the leak grows a few MB between two polls) until
// it reaches target (a share of the limit); it returns the last ratio seen.
func (s *stack) waitMemory(c string, target float64, timeout time.Duration) (float64, bool) {
	u := s.svc(c).url("/metrics")
	deadline := time.Now().Add(timeout)
	var ratio float64
	for time.Now().Before(deadline) {
		resp, err := httpc.Get(u)
		if err == nil {
			p := expfmt.NewTextParser(model.UTF8Validation)
			fams, perr := p.TextToMetricFamilies(resp.Body)
			resp.Body.Close()
			if perr == nil {
				rss, _ := testutil.Sample(fams, "process_resident_memory_bytes", nil)
				limit, _ := testutil.Sample(fams, "demo_memory_limit_bytes", nil)
				if limit > 0 {
					ratio = rss / limit
					if ratio >= target {
						return ratio, true
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ratio, false
}

// memoryRatio scrapes c's resident memory as a share of its limit.
func (s *stack) memoryRatio(t *testing.T, c string) float64 {
	fams := testutil.Scrape(t, s.svc(c).url("/metrics"))
	rss, _ := testutil.Sample(fams, "process_resident_memory_bytes", nil)
	limit, _ := testutil.Sample(fams, "demo_memory_limit_bytes", nil)
	return rss / limit
}

func (s *stack) processStart(t *testing.T, c string) float64 {
	v, ok := testutil.Sample(testutil.Scrape(t, s.svc(c).url("/metrics")), "process_start_time_seconds", nil)
	if !ok {
		t.Fatalf("%s exports no process_start_time_seconds", c)
	}
	return v
}

// expectHealed follows one alert on container c through the loop and fills the timeline: the
// alert fires, the remediator shows it received it, a heal runs and ends healed, the alert
// resolves. It returns the heal.
func (s *stack) expectHealed(t *testing.T, tl *timeline, c string, alertnames ...string) heal {
	t.Helper()
	tl.Target = c
	tl.Alert = strings.Join(alertnames, "|")
	match := map[string]string{"container": c}
	var ep episode
	testutil.Poll(fireTimeout, poll, func() bool {
		for _, a := range alertnames {
			for _, e := range s.alerts.find(a, match, tl.Injected) {
				if !e.Firing.IsZero() && (ep.Firing.IsZero() || e.Firing.Before(ep.Firing)) {
					ep = e
				}
			}
		}
		return !ep.Firing.IsZero()
	})
	if ep.Firing.IsZero() {
		var seen []string
		for _, a := range alertnames {
			seen = append(seen, a+": "+s.alerts.describe(a, match, tl.Injected))
		}
		t.Fatalf("no alert fired for %s within %s: %s", c, fireTimeout, strings.Join(seen, "; "))
	}
	tl.Alert = ep.Labels["alertname"] + "/" + ep.Labels["severity"]
	tl.Firing = ep.Firing
	for _, a := range alertnames {
		if p := s.alerts.firstPending(a, match, tl.Injected); !p.IsZero() && (tl.Pending.IsZero() || p.Before(tl.Pending)) {
			tl.Pending = p
		}
	}
	t.Logf("%s %s firing (pending since %s)", clock(tl.Firing), tl.Alert, clock(tl.Pending))

	h := s.waitHeal(t, c, tl.Injected, healTimeout)
	tl.Received = s.targets.firstFiring(c, tl.Injected)
	tl.FirstAction = h.firstAction()
	t.Logf("%s", h)
	if h.Result != "healed" {
		t.Fatalf("heal of %s ended %s, want healed: %s", c, h.Result, h)
	}
	tl.Verified = h.Ended
	for _, a := range alertnames {
		if g := s.alerts.waitAllGone(t, a, match, tl.Injected, resolveTimeout); g.After(tl.Resolved) {
			tl.Resolved = g
		}
	}
	return h
}

// healPage returns GET /api/v1/heals/{id}.
func (s *stack) healPage(t *testing.T, id string) heal {
	t.Helper()
	var h heal
	testutil.GetJSON(t, s.remURL+"/api/v1/heals/"+url.PathEscape(id), &h)
	return h
}

// assertEvidence checks that a docker step kept, before acting, what a person would look at
// afterwards: the container's state as the engine showed it, and its log lines as far as the
// engine holds any from before the capture.
func assertEvidence(t *testing.T, c string, st step) {
	t.Helper()
	ev := st.Evidence
	if ev == nil {
		t.Errorf("the %s step kept no evidence (%s)", st.Name, st.EvidenceError)
		return
	}
	if ev.State["status"] != "running" || ev.State["oom_killed"] != "false" || ev.State["restart_count"] == "" || ev.State["log_error"] != "" {
		t.Errorf("the %s step's evidence does not hold the running container's state: %+v", st.Name, ev)
	}
	out, err := exec.Command("docker", "logs", "--until", ev.Captured.Format(time.RFC3339Nano), c).CombinedOutput()
	switch {
	case err != nil:
		t.Errorf("docker logs %s: %v: %s", c, err, out)
	case strings.TrimSpace(ev.Log) == "" && strings.TrimSpace(string(out)) != "":
		t.Errorf("the %s step's evidence has no log lines, the engine has %d bytes from before the capture: %q",
			st.Name, len(out), out)
	case strings.TrimSpace(ev.Log) == "":
		t.Logf("%s printed nothing before the capture: the evidence's empty log is right", c)
	}
}

// ranActions returns the actions of the steps that acted (not skipped), in order.
func ranActions(h heal) []string {
	var out []string
	for _, st := range h.Steps {
		if st.Outcome == "skipped" {
			continue
		}
		out = append(out, st.Name+":"+st.Action+"="+st.Outcome)
	}
	return out
}

func assertNotRestarted(t *testing.T, s *stack, c string, before containerState, startTime float64) {
	t.Helper()
	after := inspect(t, c)
	if after.ID != before.ID || !after.StartedAt.Equal(before.StartedAt) || after.RestartCount != before.RestartCount {
		t.Errorf("%s was restarted or replaced: before %+v, after %+v", c, before, after)
	}
	if st := s.processStart(t, c); st != startTime {
		t.Errorf("%s: process_start_time_seconds changed from %.0f to %.0f: the process restarted", c, startTime, st)
	}
}

func assertRestarted(t *testing.T, s *stack, c string, before containerState, startTime float64) containerState {
	t.Helper()
	after := inspect(t, c)
	if !after.Running {
		t.Fatalf("%s is not running after the heal", c)
	}
	if after.StartedAt.Equal(before.StartedAt) {
		t.Errorf("%s: the engine shows the same start time %s: not restarted", c, before.StartedAt)
	}
	if err := waitReady(s.svc(c), 30*time.Second); err != nil {
		t.Fatalf("%s not ready after the restart: %v", c, err)
	}
	if st := s.processStart(t, c); st <= startTime {
		t.Errorf("%s: process_start_time_seconds %.0f, was %.0f: the process did not restart", c, st, startTime)
	}
	return after
}

func waitReady(svc *service, timeout time.Duration) error {
	var last string
	if testutil.Poll(timeout, poll, func() bool {
		resp, err := httpc.Get(svc.url("/readyz"))
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK
	}) {
		return nil
	}
	return fmt.Errorf("readyz: %s", last)
}

// 1. The flushable leak: the gentle flush heals it and nothing is restarted.
func flushableLeak(t *testing.T, s *stack, tl *timeline) {
	c := cUser
	before, startTime := inspect(t, c), s.processStart(t, c)
	tl.Injected = s.fillMemory(t, c, "flushable")
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	acted := ranActions(h)
	if len(acted) != 1 || !strings.Contains(acted[0], ":http=succeeded") {
		t.Errorf("want exactly one successful http step (the flush), ran %v", acted)
	}
	assertNotRestarted(t, s, c, before, startTime)
	if r := s.memoryRatio(t, c); r > 0.5 {
		t.Errorf("%s memory still at %.0f%% of its limit after the flush", c, r*100)
	}
	if v, _ := testutil.Sample(testutil.Scrape(t, s.svc(c).url("/metrics")), "demo_memory_leaked_bytes", map[string]string{"kind": "flushable"}); v != 0 {
		t.Errorf("%s still holds %.0f leaked bytes", c, v)
	}
	// The heal silenced its alert while it acted, and the person's route waits longer than the
	// remediator's: a heal that succeeds pages nobody. (This scenario runs alone, so its heal
	// is not queued behind another, which the person's wait does not cover.)
	if ps := s.pages(tl.Injected, map[string]string{"alertname": "ServiceMemoryHigh", "container": c}); len(ps) > 0 {
		t.Errorf("the person was paged for %s's ServiceMemoryHigh although the heal succeeded: %+v", c, ps)
	} else {
		tl.Note = "the person was not paged (the alert was silenced while the heal acted)"
	}
}

// 2. The unflushable leak: the flush is tried, fails its verification, and the playbook
// escalates to a restart, which frees the memory.
func unflushableLeak(t *testing.T, s *stack, tl *timeline) {
	c := cPayment2
	before, startTime := inspect(t, c), s.processStart(t, c)
	tl.Injected = s.fillMemory(t, c, "unflushable")
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	acted := ranActions(h)
	if len(acted) < 2 || !strings.Contains(acted[0], ":http=failed") || !strings.Contains(acted[len(acted)-1], ":docker=succeeded") {
		t.Errorf("want the flush to fail and a docker step to heal, ran %v", acted)
	}
	after := assertRestarted(t, s, c, before, startTime)
	if after.ID != before.ID {
		t.Logf("%s was recreated (new id), not restarted", c)
	}
	// The list leaves the evidence logs out; the heal's own page has them.
	full := s.healPage(t, h.ID)
	assertEvidence(t, c, full.Steps[len(full.Steps)-1])
	if r := s.memoryRatio(t, c); r > 0.5 {
		t.Errorf("%s memory still at %.0f%% of its limit after the restart", c, r*100)
	}
}

// 3. Errors on every payment instance: order-service's breakers open and it degrades instead of
// failing, the alert fires, restarts heal the instances, and the breakers close again.
func errorSpike(t *testing.T, s *stack, tl *timeline) {
	payments := []string{cPayment1, cPayment2}
	degradedBefore := s.sumQuery(t, `sum(demo_degraded_responses_total{container="`+cOrder+`"})`)
	for _, c := range payments {
		at := s.chaos(t, c, "errors", url.Values{"ratio": {"1.0"}})
		if tl.Injected.IsZero() {
			tl.Injected = at
		}
	}
	// The breakers open in the caller, and the caller degrades rather than fails.
	if !testutil.Poll(time.Minute, poll, func() bool {
		return len(s.query(t, `demo_dependency_circuit_state{container="`+cOrder+`",dependency="payment-service"} == 2`)) > 0
	}) {
		t.Errorf("order-service never opened a breaker to payment-service: %v",
			s.query(t, `demo_dependency_circuit_state{container="`+cOrder+`"}`))
	}
	if !testutil.Poll(time.Minute, poll, func() bool {
		return s.sumQuery(t, `sum(demo_degraded_responses_total{container="`+cOrder+`"})`) > degradedBefore
	}) {
		t.Errorf("order-service sent no degraded response while payment-service failed")
	}
	h := s.expectHealed(t, tl, cPayment1, "ServiceErrorRateHigh")
	if acted := ranActions(h); len(acted) == 0 || !strings.Contains(acted[len(acted)-1], ":docker=succeeded") {
		t.Errorf("want a restart to heal %s, ran %v", cPayment1, acted)
	}
	// The other instance is healed in turn (heals are serialized).
	tl.Others = append(tl.Others, cPayment2)
	h2 := s.waitHeal(t, cPayment2, tl.Injected, healTimeout)
	t.Logf("%s", h2)
	if h2.Result != "healed" {
		t.Errorf("heal of %s ended %s", cPayment2, h2.Result)
	}
	for _, c := range payments {
		s.alerts.waitAllGone(t, "ServiceErrorRateHigh", map[string]string{"container": c}, tl.Injected, resolveTimeout)
	}
	if !testutil.Poll(time.Minute, poll, func() bool {
		return len(s.query(t, `demo_dependency_circuit_state{container="`+cOrder+`",dependency="payment-service"} != 0`)) == 0
	}) {
		t.Errorf("order-service's breakers to payment-service did not close: %v",
			s.query(t, `demo_dependency_circuit_state{container="`+cOrder+`"}`))
	}
	if r, ok := s.scalarOf(t, `max(instance_route:demo_http_errors:ratio_rate1m{service="payment-service"})`); ok && r > 0.05 {
		t.Errorf("payment-service error ratio still %.2f", r)
	}
}

// sumQuery returns the single value of a sum() query, 0 when it has none.
func (s *stack) sumQuery(t *testing.T, q string) float64 {
	v, _ := s.scalarOf(t, q)
	return v
}

// 4. CPU burn on order-service: restarted, and healthy again within 30s of the alert firing.
func cpuExhaustion(t *testing.T, s *stack, tl *timeline) {
	c := cOrder
	before, startTime := inspect(t, c), s.processStart(t, c)
	tl.Injected = s.chaos(t, c, "cpu", url.Values{"cores": {"1"}})
	h := s.expectHealed(t, tl, c, "ServiceCPUHigh")
	if acted := ranActions(h); len(acted) == 0 || !strings.Contains(acted[len(acted)-1], ":docker=succeeded") {
		t.Errorf("want a restart to heal %s, ran %v", c, acted)
	}
	after := assertRestarted(t, s, c, before, startTime)
	// Healthy again within 30s: restarted and the alert gone, which is when the restart's hold
	// began. The heal is verified a hold later: that it stayed healthy is not part of the 30s.
	restart := h.Steps[len(h.Steps)-1]
	hold := time.Duration(s.stepVerify(t, h.Playbook, restart.Name).StableFor)
	if restart.StabilizingSince.IsZero() {
		t.Fatalf("the restart of %s has no hold: %s", c, h)
	}
	if d := restart.StabilizingSince.Sub(tl.Firing); d > 30*time.Second {
		t.Errorf("%s healthy again %s after the alert fired, want within 30s", c, d.Round(time.Second))
	}
	if d := tl.Verified.Sub(restart.StabilizingSince); d < hold {
		t.Errorf("%s verified %s after its hold began, want at least the hold, %s", c, d.Round(100*time.Millisecond), hold)
	}
	tl.Note = fmt.Sprintf("restarted %.1fs after firing, healthy (hold began) %.1fs after firing, verified after a %s hold",
		after.StartedAt.Sub(tl.Firing).Seconds(), restart.StabilizingSince.Sub(tl.Firing).Seconds(), hold)
	if v, _ := testutil.Sample(testutil.Scrape(t, s.svc(c).url("/metrics")), "demo_fault_active", map[string]string{"fault": "cpu"}); v != 0 {
		t.Errorf("%s still burns CPU after the restart", c)
	}
}

// 5. Two services leaking at once: both healed, one heal at a time, the second waiting for the
// first (from the heal history's timestamps).
func twoAtOnce(t *testing.T, s *stack, tl *timeline) {
	a, b := cUser, cPayment1
	tl.Others = append(tl.Others, b)
	done := make(chan time.Time, 1)
	go func() { done <- s.fillMemoryNoFail(t, b, "flushable") }()
	tl.Injected = s.fillMemory(t, a, "flushable")
	<-done
	ha := s.expectHealed(t, tl, a, "ServiceMemoryHigh")
	hb := s.waitHeal(t, b, tl.Injected, healTimeout)
	t.Logf("%s", hb)
	if hb.Result != "healed" {
		t.Errorf("heal of %s ended %s", b, hb.Result)
	}
	first, second := ha, hb
	if hb.Started.Before(ha.Started) {
		first, second = hb, ha
	}
	if second.Started.Before(first.Ended) {
		t.Errorf("two heals in flight at once: %s started at %s before %s ended at %s",
			second.Target, clock(second.Started), first.Target, clock(first.Ended))
	}
	if !second.Alert.StartsAt.IsZero() && !second.Alert.StartsAt.Before(first.Ended) {
		t.Logf("the second alert started after the first heal ended: the heals did not have to wait (%s, %s)",
			clock(second.Alert.StartsAt), clock(first.Ended))
	} else {
		tl.Note = fmt.Sprintf("one at a time: %s healed %s to %s, then %s %s to %s (seconds after injection)",
			first.Target, tl.since(first.Started), tl.since(first.Ended), second.Target, tl.since(second.Started), tl.since(second.Ended))
	}
	if v, ok := s.scalarOf(t, `max_over_time(remediator_heals_in_flight[5m])`); ok && v > 1 {
		t.Errorf("remediator_heals_in_flight reached %.0f", v)
	}
	s.alerts.waitAllGone(t, "ServiceMemoryHigh", map[string]string{"container": b}, tl.Injected, resolveTimeout)
}

// fillMemoryNoFail is fillMemory for a goroutine: it reports problems with Errorf.
func (s *stack) fillMemoryNoFail(t *testing.T, c, kind string) time.Time {
	svc := s.svc(c)
	at := time.Now()
	code, body := testutil.Do(t, http.MethodPost, svc.url("/chaos/memory-leak?kind="+kind+"&rate_mb="+fillRateMB), "", nil)
	if code/100 != 2 {
		t.Errorf("leak on %s: %d %s", c, code, body)
		return at
	}
	_, ok := s.waitMemory(c, fillRatio, 90*time.Second)
	testutil.Do(t, http.MethodDelete, svc.url("/chaos/memory-leak?kind="+kind), "", nil)
	if !ok {
		t.Errorf("%s: memory did not reach %.0f%% of the limit", c, fillRatio*100)
	}
	return at
}

// startUnhealable starts container c (opted in, service name) whose every start is partitioned for a day, so
// that no restart heals it, and waits until its ServiceDown fires; the caller removes it.
func (s *stack) startUnhealable(t *testing.T, tl *timeline, c, name string) {
	t.Helper()
	tl.Injected = time.Now()
	s.addService(t, &service{Container: c, Service: name, Port: s.addrs.Ports[c], Heal: true,
		Env: map[string]string{"FAULTS": "partition:86400"}, noWait: true})
	tl.Target, tl.Alert = c, "ServiceDown"
	ep := s.alerts.waitFiring(t, "ServiceDown", map[string]string{"container": c}, tl.Injected, fireTimeout)
	tl.Pending, tl.Firing = ep.Pending, ep.Firing
}

// 6. An unhealable service (its fault comes back with every start, from the environment): the
// budget's attempts, then suspended; the escalation alert fires and reaches the human receiver;
// nothing more is done until a person resets the target.
func unhealable(t *testing.T, s *stack, tl *timeline) {
	c := cUnhealable
	s.startUnhealable(t, tl, c, "inventory-service")
	defer s.removeContainer(c)

	// The budget: its attempts, each failing, then suspension.
	// Suspended, and the last attempt over (the API shows the budget spent as soon as the last
	// attempt starts).
	var tv targetView
	if !testutil.Poll(8*time.Minute, poll, func() bool {
		tv, _ = s.target(t, c)
		if !tv.Suspended {
			return false
		}
		for _, h := range s.heals(t, c) {
			if h.Result == "running" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("%s never suspended; target %+v; heals %v", c, tv, s.heals(t, c))
	}
	suspendedAt := time.Now()
	hs := s.heals(t, c)
	tl.Received = s.targets.firstFiring(c, tl.Injected)
	if len(hs) > 0 {
		tl.FirstAction = hs[0].firstAction()
	}
	for _, h := range hs {
		t.Logf("%s", h)
		if h.Result == "healed" {
			t.Errorf("a heal of the unhealable %s claims success: %s", c, h)
		}
	}
	if tv.AttemptsUsed == 0 || len(hs) != tv.AttemptsUsed {
		t.Errorf("%d heals ran, the target shows %d attempts used", len(hs), tv.AttemptsUsed)
	}
	if len(hs) < 1 {
		t.Fatalf("no heal attempt before suspension")
	}
	tl.Note = fmt.Sprintf("%d attempts (the budget), then suspended %.1fs after injection; here *verified* is the escalation alert firing and *resolved* its arrival at the human receiver", len(hs), time.Since(tl.Injected).Seconds())

	// The escalation: Prometheus fires it, Alertmanager routes it to the human receiver.
	esc := s.alerts.waitFiring(t, "RemediatorBudgetExhausted", map[string]string{"target": c}, tl.Injected, time.Minute)
	tl.Verified = esc.Firing // here: when the escalation fired
	if !testutil.Poll(time.Minute, poll, func() bool {
		_, ok := s.oncall.FirstFiring(map[string]string{"alertname": "RemediatorBudgetExhausted", "target": c})
		return ok
	}) {
		t.Errorf("the human receiver never got RemediatorBudgetExhausted for %s", c)
	} else {
		n, _ := s.oncall.FirstFiring(map[string]string{"alertname": "RemediatorBudgetExhausted", "target": c})
		tl.Resolved = n.At
		tl.Note += fmt.Sprintf("; escalation reached receiver %q", n.Receiver)
	}
	var ams []amAlert
	testutil.GetJSON(t, s.amURL+"/api/v2/alerts?filter="+url.QueryEscape(`alertname="RemediatorBudgetExhausted"`), &ams)
	routed := false
	for _, a := range ams {
		if a.Labels["target"] != c {
			continue
		}
		for _, r := range a.Receivers {
			if r.Name == "remediator" {
				t.Errorf("Alertmanager routes the escalation to the remediator itself")
			} else {
				routed = true
			}
		}
	}
	if !routed {
		t.Errorf("Alertmanager shows RemediatorBudgetExhausted for %s with no human receiver: %+v", c, ams)
	}

	// Nothing more while suspended, although the alert keeps firing and being re-sent.
	time.Sleep(20 * time.Second)
	if n := len(s.heals(t, c)); n != len(hs) {
		t.Errorf("%d more heals ran while %s was suspended", n-len(hs), c)
	}
	if st := inspect(t, c); !st.StartedAt.Before(suspendedAt) {
		t.Errorf("%s was started again while suspended (at %s)", c, st.StartedAt)
	}
	// A person resets it: healing resumes (and fails again: the fault is in its environment).
	code, body := s.remPost(t, "/api/v1/targets/"+c+"/reset", nil)
	if code/100 != 2 {
		t.Fatalf("reset %s: %d %s", c, code, body)
	}
	if !testutil.Poll(90*time.Second, poll, func() bool { return len(s.heals(t, c)) > len(hs) }) {
		t.Errorf("no heal after the reset of %s", c)
	}
}

type amAlert struct {
	Labels    map[string]string `json:"labels"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

// 7. Connection pool exhaustion on order-service: the pool reset heals it, no restart.
func poolExhaustion(t *testing.T, s *stack, tl *timeline) {
	c := cOrder
	before, startTime := inspect(t, c), s.processStart(t, c)
	tl.Injected = s.chaos(t, c, "pool-leak", url.Values{"rate": {"2"}})
	h := s.expectHealed(t, tl, c, "ServicePoolSaturated", "ServicePoolWaiters")
	acted := ranActions(h)
	if len(acted) != 1 || !strings.Contains(acted[0], ":http=succeeded") {
		t.Errorf("want exactly one successful http step (the pool reset), ran %v", acted)
	}
	assertNotRestarted(t, s, c, before, startTime)
	fams := testutil.Scrape(t, s.svc(c).url("/metrics"))
	inUse, _ := testutil.Sample(fams, "demo_pool_in_use_connections", nil)
	max, _ := testutil.Sample(fams, "demo_pool_max_connections", nil)
	waiters, _ := testutil.Sample(fams, "demo_pool_waiters", nil)
	if inUse >= max || waiters > 0 {
		t.Errorf("pool still exhausted: %0.f of %0.f in use, %0.f waiting", inUse, max, waiters)
	}
}

// 8. One payment instance partitioned: order-service routes around it (users see no 5xx), and
// the instance is restarted.
func partition(t *testing.T, s *stack, tl *timeline) {
	c := cPayment1
	before, startTime := inspect(t, c), s.processStart(t, c)
	lg := s.svc(cLoadgen).url("/metrics")
	failedBefore := loadgenFailures(t, lg)
	viaOtherBefore := s.sumQuery(t, `sum(demo_dependency_requests_total{container="`+cOrder+`",result="success",endpoint=~".*:`+fmt.Sprint(s.addrs.Ports[cPayment2])+`"})`)
	tl.Injected = s.chaos(t, c, "partition", url.Values{"seconds": {"600"}})
	s.expectHealed(t, tl, c, "ServiceDown")
	assertRestarted(t, s, c, before, startTime)
	if n := loadgenFailures(t, lg) - failedBefore; n > 0 {
		t.Errorf("users saw %.0f failed requests while %s was partitioned", n, c)
	}
	if s.sumQuery(t, `sum(demo_dependency_requests_total{container="`+cOrder+`",result="success",endpoint=~".*:`+fmt.Sprint(s.addrs.Ports[cPayment2])+`"})`) <= viaOtherBefore {
		t.Errorf("order-service sent no successful request to the other payment instance")
	}
}

// loadgenFailures counts the load generator's requests that users would have seen fail.
func loadgenFailures(t *testing.T, url string) float64 {
	fams := testutil.Scrape(t, url)
	f, ok := fams["loadgen_requests_total"]
	if !ok {
		t.Fatalf("load generator exports no loadgen_requests_total")
	}
	var n float64
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "code" && (strings.HasPrefix(l.GetValue(), "5") || l.GetValue() == "error") {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// 9. Healing paused for a target: the fault stays and the alert fires, nothing is done; resumed,
// it is healed.
func pausedThenResumed(t *testing.T, s *stack, tl *timeline) {
	c := cUser
	code, body := s.remPost(t, "/api/v1/pause", map[string]string{"target": c})
	if code/100 != 2 {
		t.Fatalf("pause %s: %d %s", c, code, body)
	}
	resumed := false
	defer func() {
		if !resumed {
			s.remPost(t, "/api/v1/resume", map[string]string{"target": c})
		}
	}()
	suppressedBefore := s.sumQuery(t, `sum(remediator_heals_suppressed_total{reason="paused"})`)
	tl.Injected = s.fillMemory(t, c, "flushable")
	ep := s.alerts.waitFiring(t, "ServiceMemoryHigh", map[string]string{"container": c}, tl.Injected, fireTimeout)
	if !testutil.Poll(time.Minute, poll, func() bool { return !s.targets.firstFiring(c, tl.Injected).IsZero() }) {
		t.Fatalf("the remediator never showed %s's alert", c)
	}
	time.Sleep(15 * time.Second) // several evaluations and notifications while paused
	if hs := s.healsSince(t, c, tl.Injected); len(hs) > 0 {
		t.Fatalf("heals ran while paused: %v", hs)
	}
	if r := s.memoryRatio(t, c); r < 0.8 {
		t.Fatalf("%s memory fell to %.0f%% while paused: something acted", c, r*100)
	}
	if !testutil.Poll(30*time.Second, poll, func() bool {
		return s.sumQuery(t, `sum(remediator_heals_suppressed_total{reason="paused"})`) > suppressedBefore
	}) {
		t.Errorf("remediator_heals_suppressed_total{reason=\"paused\"} did not grow")
	}
	tv, _ := s.target(t, c)
	if !tv.Paused {
		t.Errorf("the API does not show %s paused: %+v", c, tv)
	}
	resumeAt := time.Now()
	code, body = s.remPost(t, "/api/v1/resume", map[string]string{"target": c})
	if code/100 != 2 {
		t.Fatalf("resume %s: %d %s", c, code, body)
	}
	resumed = true
	h := s.expectHealed(t, tl, c, "ServiceMemoryHigh")
	if h.Started.Before(resumeAt) {
		t.Errorf("the heal started at %s, before the resume at %s", clock(h.Started), clock(resumeAt))
	}
	_ = ep
	tl.Note = fmt.Sprintf("paused for %.0fs after firing; healed %.1fs after the resume", resumeAt.Sub(tl.Firing).Seconds(), h.Ended.Sub(resumeAt).Seconds())
}
