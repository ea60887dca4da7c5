package compose

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/services/pager"
)

// heal is one entry of the remediator's heal history (GET /api/v1/heals).
type heal struct {
	Target   string    `json:"target"`
	Playbook string    `json:"playbook"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	Result   string    `json:"result"`
	Alert    struct {
		Name string `json:"name"`
	} `json:"alert"`
	Steps []struct {
		Name    string `json:"name"`
		Outcome string `json:"outcome"`
	} `json:"steps"`
}

// queued bounds a scenario's heal from its injection. The shipped stack heals one target at a
// time (max_concurrent_heals: 1) and the scenarios run side by side, so a heal may wait its turn
// behind the unhealable service's attempts (about two minutes each, three of them): the
// timeline shows the wait between firing and the heal's start.
const queued = 12 * time.Minute

// observe polls, once a second until done says so or timeout passes, what the scenario times:
// the alert firing in Prometheus and the target's heals since the injection. It returns false
// on timeout.
func observe(t *testing.T, tl *timeline, timeout time.Duration, done func(heals []heal) bool) bool {
	t.Helper()
	deadline := tl.Injected.Add(timeout)
	for time.Now().Before(deadline) {
		if tl.Firing.IsZero() && alertFiring(tl.Alert, "container", tl.Target) {
			tl.Firing = time.Now()
		}
		heals := healsSince(t, tl.Target, tl.Injected)
		if len(heals) > 0 && tl.HealStart.IsZero() {
			tl.HealStart = heals[0].Started
		}
		if done(heals) {
			return true
		}
		time.Sleep(time.Second)
	}
	return false
}

// alertFiring reports whether Prometheus has alertname firing with label key=value.
func alertFiring(alertname, key, value string) bool {
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if getJSON(promURL+"/api/v1/alerts", &r) != nil {
		return false
	}
	for _, a := range r.Data.Alerts {
		if a.State == "firing" && a.Labels["alertname"] == alertname && a.Labels[key] == value {
			return true
		}
	}
	return false
}

// healsSince returns the target's heals that started after t0, oldest first.
func healsSince(t *testing.T, target string, t0 time.Time) []heal {
	var r struct {
		Heals []heal `json:"heals"`
	}
	if err := getJSON(remURL+"/api/v1/heals?target="+url.QueryEscape(target), &r); err != nil {
		t.Logf("heal history of %s: %v", target, err)
		return nil
	}
	var out []heal
	for _, h := range r.Heals {
		if !h.Started.Before(t0) {
			out = append(out, h)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		if out[i].Started.After(out[j].Started) { // the API lists newest first
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// healed returns the first heal by one of the playbooks that ended healed.
func healed(heals []heal, playbooks ...string) *heal {
	for i, h := range heals {
		if slices.Contains(playbooks, h.Playbook) && h.Result == "healed" {
			return &heals[i]
		}
	}
	return nil
}

func startedAt(t *testing.T, container string) string {
	return testutil.InspectField(t, container, "{{.State.StartedAt}}")
}

// inject runs a README curl command (a POST) and starts the scenario's clock.
func inject(t *testing.T, tl *timeline, rawURL string) bool {
	if err := post(rawURL, "", ""); err != nil {
		fail(t, tl, "injecting: %v", err)
		return false
	}
	tl.Injected = time.Now()
	return true
}

// README scenario 5: a gentle fix. The reset-pool step returns the leaked connections; no restart.
func poolExhaustion(t *testing.T, s *stack, tl *timeline) {
	*tl = timeline{Scenario: "5. pool exhaustion: pool reset, no restart", Target: "order-service", Alert: "ServicePoolSaturated"}
	before := startedAt(t, tl.Target)
	if !inject(t, tl, "http://127.0.0.1:8082/chaos/pool-leak?rate=1") {
		return
	}
	// A leaking pool makes the service not ready too: ServicePoolSaturated and ServiceNotReady
	// fire within a second of each other, and while the target waits for its turn the newer
	// alert replaces the older one in the queue. Both playbooks begin with the pool reset.
	var h *heal
	if !observe(t, tl, queued, func(hs []heal) bool { h = healed(hs, "pool-exhausted", "not-ready"); return h != nil }) {
		fail(t, tl, "no pool-exhausted or not-ready heal ended healed within %s (heals: %+v)", queued, healsSince(t, tl.Target, tl.Injected))
		return
	}
	tl.Done = h.Ended
	tl.Note = "healed by playbook " + h.Playbook + " (" + h.Alert.Name + ")"
	if len(h.Steps) == 0 || h.Steps[len(h.Steps)-1].Name != "reset-pool" {
		fail(t, tl, "healed by %+v, want the reset-pool step alone", h.Steps)
		return
	}
	if after := startedAt(t, tl.Target); after != before {
		fail(t, tl, "order-service was restarted (started %s, then %s); a pool reset needs no restart", before, after)
		return
	}
	tl.Status = "passed"
}

// settled waits until no alert of container is pending or firing, so that a scenario's fault is
// not cleared by a heal of the one before it.
func settled(t *testing.T, container string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := getJSON(promURL+"/api/v1/alerts", &r); err != nil {
			continue
		}
		quiet := true
		for _, a := range r.Data.Alerts {
			if a.Labels["container"] == container {
				quiet = false
			}
		}
		if quiet {
			return true
		}
	}
	return false
}

// README scenario 3: a restart through the socket proxy heals a CPU burn.
func cpuExhaustion(t *testing.T, s *stack, tl *timeline) {
	*tl = timeline{Scenario: "3. CPU exhaustion: restart", Target: "order-service", Alert: "ServiceCPUHigh"}
	if !settled(t, tl.Target, 4*time.Minute) {
		fail(t, tl, "order-service's alerts from the previous scenario did not clear within 4m")
		return
	}
	before := startedAt(t, tl.Target)
	if !inject(t, tl, "http://127.0.0.1:8082/chaos/cpu?cores=1") {
		return
	}
	var h *heal
	if !observe(t, tl, queued, func(hs []heal) bool { h = healed(hs, "cpu-high"); return h != nil }) {
		fail(t, tl, "no cpu-high heal ended healed within %s (heals: %+v)", queued, healsSince(t, tl.Target, tl.Injected))
		return
	}
	tl.Done = h.Ended
	if after := startedAt(t, tl.Target); after == before {
		fail(t, tl, "order-service was not restarted (started %s)", before)
		return
	}
	tl.Note = "critical fired " + tl.since(tl.Firing) + " s after injection"
	tl.Status = "passed"
}

// README scenario 6: a partitioned payment instance. order-service's breaker to it opens and
// payments go to the other instance; ServiceDown fires and a restart clears the partition.
func partition(t *testing.T, s *stack, tl *timeline) {
	*tl = timeline{Scenario: "6. payment instance partitioned: rerouted, restarted", Target: "payment-service-2", Alert: "ServiceDown"}
	before := startedAt(t, tl.Target)
	if !inject(t, tl, "http://127.0.0.1:8084/chaos/partition?seconds=600") {
		return
	}
	var h *heal
	if !observe(t, tl, queued, func(hs []heal) bool { h = healed(hs, "service-down"); return h != nil }) {
		fail(t, tl, "no service-down heal ended healed within %s", queued)
		return
	}
	tl.Done = h.Ended
	if after := startedAt(t, tl.Target); after == before {
		fail(t, tl, "payment-service-2 was not restarted")
		return
	}
	// Rerouted: during the partition the breaker to payment-service-2 opened, the one to
	// payment-service never did, and users saw no error alert.
	window := fmt.Sprintf("%ds", int(time.Since(tl.Injected).Seconds())+5)
	open2 := query(t, `max(max_over_time(demo_dependency_circuit_state{container="order-service",endpoint=~"payment-service-2.*"}[`+window+`]))`)
	open1 := query(t, `max(max_over_time(demo_dependency_circuit_state{container="order-service",endpoint=~"payment-service:.*"}[`+window+`]))`)
	if open2 != "2" || open1 == "2" {
		fail(t, tl, "not rerouted: breaker state to payment-service-2 reached %q, to payment-service %q; want 2 (open) and below 2", open2, open1)
		return
	}
	if alertFiring("ServiceErrorRateHigh", "container", "user-service") {
		fail(t, tl, "users saw errors: ServiceErrorRateHigh fires for user-service")
		return
	}
	tl.Note = "order-service's breaker to payment-service-2 opened; payments went to payment-service"
	tl.Status = "passed"
}

// README scenario 7: the fault lives in the container's environment, so restarts cannot heal
// it: the budget is spent, the target suspended and a person paged through the oncall receiver.
func unhealable(t *testing.T, s *stack, tl *timeline, token string) {
	*tl = timeline{Scenario: "7. unhealable service: budget spent, suspended, escalated", Target: "user-service", Alert: "ServiceErrorRateHigh"}
	before := s.containers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := s.composeWith(ctx, s.files, []string{"USER_SERVICE_FAULTS=errors:1.0"}, "up", "-d", "user-service"); err != nil {
		fail(t, tl, "USER_SERVICE_FAULTS=errors:1.0 docker compose up -d user-service: %v\n%s", err, out)
		return
	}
	tl.Injected = time.Now()
	after := s.containers(t)
	for svc, id := range before {
		if svc != "user-service" && after[svc] != id {
			fail(t, tl, "`docker compose up -d user-service` recreated %s too", svc)
			return
		}
	}
	ok := observe(t, tl, 14*time.Minute, func([]heal) bool {
		if tl.Done.IsZero() && targetSuspended(t, tl.Target) {
			tl.Done = time.Now()
		}
		if tl.Escalated.IsZero() && escalated(t, tl.Target) {
			tl.Escalated = time.Now()
		}
		return !tl.Done.IsZero() && !tl.Escalated.IsZero()
	})
	if !ok {
		fail(t, tl, "within 14m: suspended %v, RemediatorBudgetExhausted at the pager as oncall %v", !tl.Done.IsZero(), !tl.Escalated.IsZero())
		return
	}
	tl.Note = fmt.Sprintf("%d heals, all failed, before the suspension", len(healsSince(t, tl.Target, tl.Injected)))
	// The README's way out: fix the cause, then give the target back. (The injection's context
	// has long run out: the budget took minutes to spend.)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := s.compose(ctx, "up", "-d", "user-service"); err != nil {
		fail(t, tl, "docker compose up -d user-service: %v\n%s", err, out)
		return
	}
	if err := post(remURL+"/api/v1/targets/user-service/reset", token, ""); err != nil {
		fail(t, tl, "reset: %v", err)
		return
	}
	if targetSuspended(t, tl.Target) {
		fail(t, tl, "user-service still suspended after the reset")
		return
	}
	// The error rule's window still holds the fault's errors, so the remediator may restart
	// the mended service once more; the scenario ends when that is over and the alert gone.
	if !settled(t, tl.Target, 4*time.Minute) || !noHealRunning(t, 3*time.Minute) {
		fail(t, tl, "user-service did not settle within minutes of the reset (heals: %+v)", healsSince(t, tl.Target, tl.Injected))
		return
	}
	tl.Status = "passed"
}

// noHealRunning waits until no heal of any target is running, and reports whether that
// happened within timeout.
func noHealRunning(t *testing.T, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		var r struct {
			Heals []heal `json:"heals"`
		}
		if err := getJSON(remURL+"/api/v1/heals", &r); err != nil {
			t.Logf("heal history: %v", err)
			continue
		}
		running := false
		for _, h := range r.Heals {
			running = running || h.Result == "running"
		}
		if !running {
			return true
		}
	}
	return false
}

func targetSuspended(t *testing.T, target string) bool {
	var r struct {
		Targets []struct {
			Name      string `json:"name"`
			Suspended bool   `json:"suspended"`
		} `json:"targets"`
	}
	if err := getJSON(remURL+"/api/v1/targets", &r); err != nil {
		t.Logf("targets: %v", err)
		return false
	}
	for _, tg := range r.Targets {
		if tg.Name == target {
			return tg.Suspended
		}
	}
	return false
}

// escalated reports whether the shipped pager has received RemediatorBudgetExhausted for target
// through Alertmanager's oncall receiver.
func escalated(t *testing.T, target string) bool {
	var got struct {
		Pages []pager.Page `json:"pages"`
	}
	if err := getJSON(pagerURL+"/api/v1/pages?receiver=oncall", &got); err != nil {
		t.Logf("pager: %v", err)
		return false
	}
	for _, p := range got.Pages {
		for _, a := range p.Alerts {
			if a.Status == "firing" && a.Labels["alertname"] == "RemediatorBudgetExhausted" && a.Labels["target"] == target {
				return true
			}
		}
	}
	return false
}

// query returns the single value of an instant PromQL query, or "" when it has none.
func query(t *testing.T, q string) string {
	var r struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := getJSON(promURL+"/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		errorf(t, "query %s: %v", q, err)
		return ""
	}
	if len(r.Data.Result) == 0 || len(r.Data.Result[0].Value) < 2 {
		return ""
	}
	v, _ := r.Data.Result[0].Value[1].(string)
	return v
}

// README scenario 1 with kind=unflushable: the leak is stopped once memory passes 84% of the
// limit, between the warning (80%) and the critical threshold (90%), so the flush is tried,
// frees nothing, and the playbook escalates to a restart long before the kernel would kill the
// container at its limit (which Docker's restart policy would then restart: not a heal).
func unflushableLeak(t *testing.T, s *stack, tl *timeline) {
	*tl = timeline{Scenario: "1. memory leak, unflushable: flush fails, restart", Target: "payment-service", Alert: "ServiceMemoryHigh"}
	before := startedAt(t, tl.Target)
	if !inject(t, tl, "http://127.0.0.1:8083/chaos/memory-leak?rate_mb=2&kind=unflushable") {
		return
	}
	ratio := ""
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		ratio = query(t, `instance:demo_memory_usage:ratio{container="payment-service"}`)
		var r float64
		fmt.Sscan(ratio, &r)
		if r >= 0.84 {
			break
		}
		if time.Now().After(deadline) {
			fail(t, tl, "memory reached only %s of the limit in 3m", ratio)
			return
		}
	}
	stopped := time.Since(tl.Injected)
	if err := del("http://127.0.0.1:8083/chaos/memory-leak?kind=unflushable"); err != nil {
		fail(t, tl, "stopping the leak: %v", err)
		return
	}
	t.Logf("payment-service memory at %s of its limit when the leak stopped, %s after injection", ratio, stopped.Round(time.Second))
	var h *heal
	if !observe(t, tl, queued, func(hs []heal) bool { h = healed(hs, "memory-high"); return h != nil }) {
		fail(t, tl, "no memory-high heal ended healed within %s (heals: %+v)", queued, healsSince(t, tl.Target, tl.Injected))
		return
	}
	tl.Done = h.Ended
	if len(h.Steps) < 2 || h.Steps[0].Name != "flush-cache" || h.Steps[0].Outcome != "failed" || h.Steps[len(h.Steps)-1].Name != "restart" {
		fail(t, tl, "healed by %+v, want the flush to fail and the restart to heal", h.Steps)
		return
	}
	if after := startedAt(t, tl.Target); after == before {
		fail(t, tl, "payment-service was not restarted")
		return
	}
	if oom := testutil.InspectField(t, tl.Target, "{{.State.OOMKilled}}"); oom != "false" {
		fail(t, tl, "payment-service was OOM-killed")
		return
	}
	tl.Note = fmt.Sprintf("leak stopped at %s of the limit, %.0f s after injection", ratio, stopped.Seconds())
	tl.Status = "passed"
}
