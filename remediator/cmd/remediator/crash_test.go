package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// A kill -9 in the middle of a heal, then a restart on the same state: the heal shows as
// interrupted, counts against the budget, and the same alert episode gets no second action.
// The heal's start and its step's start are one record of the intake log: killed as the action
// begins, the record is most likely in the log only; killed later, the committer has moved it
// into the database and emptied the log.
func TestKill9MidHeal(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	for _, after := range []time.Duration{0, 200 * time.Millisecond} {
		t.Run(fmt.Sprintf("killed %s into the action", after), func(t *testing.T) { kill9MidHeal(t, bin, after) })
	}
}

func kill9MidHeal(t *testing.T, bin string, after time.Duration) {
	var hits atomic.Int32
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select { // a recovery endpoint that takes its time
		case <-release:
		case <-time.After(30 * time.Second):
		}
	}))
	defer slow.Close()
	defer close(release)

	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", fmt.Sprintf(`
defaults:
  cooldown: {initial: 1h, max: 2h}
  budget: {attempts: 3, window: 1h}
  verify: {timeout: 5s}
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - name: flush-cache
        http: {method: POST, url: '%s/recover/flush-cache'}
        timeout: 60s
`, slow.URL))
	token := testutil.WriteFile(t, dir, "token", "t0ken")
	args := []string{"--config.file=" + cfg, "--storage.path=" + dir + "/data", "--webhook.token-file=" + token}
	notification := `{"version":"4","groupKey":"g","status":"firing","receiver":"remediator","alerts":[
{"status":"firing","labels":{"alertname":"ServiceMemoryHigh","container":"c1","severity":"critical"},
"startsAt":"2026-01-02T03:04:05Z","fingerprint":"f1"}]}`

	first := testutil.StartServer(t, "remediator", bin, "/-/ready", args...)
	if code, body := testutil.Do(t, http.MethodPost, first.URL+"/webhook", notification, testutil.Bearer("t0ken")); code != 202 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "the recovery endpoint to be called", func() bool { return hits.Load() == 1 })
	time.Sleep(after)
	first.Kill()

	second := testutil.StartServer(t, "remediator", bin, "/-/ready", args...)
	hs := heals(t, second.URL, "")
	if len(hs) != 1 || hs[0].Result != "interrupted" || hs[0].stepSummary() != "flush-cache=interrupted" {
		t.Fatalf("heals after restart: %+v", hs)
	}
	// Alertmanager re-sends the notification (it may not have seen our 202, or repeats it).
	if code, _ := testutil.Do(t, http.MethodPost, second.URL+"/webhook", notification, testutil.Bearer("t0ken")); code != 202 {
		t.Fatalf("re-delivery: %d", code)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := hits.Load(); n != 1 {
		t.Fatalf("recovery endpoint called %d times, want 1 (no second action for the episode)", n)
	}
	var targets struct {
		Targets []struct {
			Name         string `json:"name"`
			AttemptsUsed int    `json:"attempts_used"`
			AttemptsLeft int    `json:"attempts_left"`
		}
	}
	testutil.GetJSON(t, second.URL+"/api/v1/targets", &targets)
	if len(targets.Targets) != 1 || targets.Targets[0].AttemptsUsed != 1 || targets.Targets[0].AttemptsLeft != 2 {
		t.Fatalf("targets %+v, want the interrupted attempt counted", targets)
	}
	if m := testutil.GetText(t, second.URL+"/metrics"); !strings.Contains(m, `remediator_heals_total{playbook="memory-high",result="interrupted"} 1`) {
		t.Fatalf("interrupted heal not in metrics")
	}
}

// A kill -9 while notifications pour in, new alerts and repeats of earlier ones from several
// senders: after a restart on the same state, every alert answered with 202 is accounted for by
// a heal of its target (each alert fires on its own target, and the policy is out of the way),
// and none is healed twice.
func TestKill9DuringDeliveries(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	var mu sync.Mutex
	calls := map[string]int{}
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[strings.TrimPrefix(r.URL.Path, "/recover/")]++
		mu.Unlock()
	}))
	defer endpoint.Close()

	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", fmt.Sprintf(`
global:
  heals_per_minute: 100000
  max_concurrent_heals: 8
defaults:
  cooldown: {initial: 1h, max: 2h}
  budget: {attempts: 3, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  verify: {skip: true}
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - name: flush-cache
        http: {method: POST, url: '%s/recover/{{ .Labels.container }}'}
`, endpoint.URL))
	token := testutil.WriteFile(t, dir, "token", "t0ken")
	args := []string{"--config.file=" + cfg, "--storage.path=" + dir + "/data", "--webhook.token-file=" + token, "--log.level=warn"}
	notification := func(target string) string {
		return fmt.Sprintf(`{"version":"4","groupKey":"g-%[1]s","status":"firing","receiver":"remediator","alerts":[
{"status":"firing","labels":{"alertname":"ServiceMemoryHigh","container":"%[1]s","severity":"critical"},
"startsAt":"2026-01-02T03:04:05Z"}]}`, target)
	}

	first := testutil.StartServer(t, "remediator", bin, "/-/ready", args...)
	var accepted sync.Map
	var count atomic.Int32
	var wg sync.WaitGroup
	stop := make(chan struct{})
	c := &http.Client{Timeout: 5 * time.Second}
	for s := range 8 {
		wg.Go(func() {
			var previous string
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				target := fmt.Sprintf("c-%d-%d", s, i)
				body := notification(target)
				for _, b := range []string{body, previous} { // the new alert, then a repeat of the last one
					if b == "" {
						continue
					}
					req, _ := http.NewRequest(http.MethodPost, first.URL+"/webhook", strings.NewReader(b))
					req.Header.Set("Authorization", "Bearer t0ken")
					req.Header.Set("Content-Type", "application/json")
					res, err := c.Do(req)
					if err != nil {
						return // killed
					}
					_ = res.Body.Close()
					if res.StatusCode == http.StatusAccepted && b == body {
						accepted.Store(target, true)
						count.Add(1)
					}
				}
				previous = body
			}
		})
	}
	testutil.Eventually(t, 20*time.Second, "200 notifications accepted", func() bool { return count.Load() >= 200 })
	first.Kill()
	close(stop)
	wg.Wait()

	second := testutil.StartServer(t, "remediator", bin, "/-/ready", args...)
	var want []string
	accepted.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	healed := map[string]int{}
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("a heal for each of the %d accepted alerts", len(want)), func() bool {
		clear(healed)
		for _, h := range heals(t, second.URL, "?limit=10000") {
			healed[h.Target]++
		}
		for _, target := range want {
			if healed[target] == 0 {
				return false
			}
		}
		return true
	})
	for target, n := range healed {
		if n > 1 {
			t.Errorf("target %s healed %d times, want once", target, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for target, n := range calls {
		if n > 1 {
			t.Errorf("recovery endpoint called %d times for %s, want once", n, target)
		}
	}
	t.Logf("%d alerts accepted before the kill, %d targets healed", len(want), len(healed))
}
