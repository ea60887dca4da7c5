package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// A kill -9 in the middle of a heal, then a restart on the same state: the heal shows as
// interrupted, counts against the budget, and the same alert episode gets no second action.
func TestKill9MidHeal(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
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
