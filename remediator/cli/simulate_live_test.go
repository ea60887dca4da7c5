package cli

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/pipeline"
)

// simulateAPI posts a notification to the remediator's POST /api/v1/simulate.
func simulateAPI(t *testing.T, rem *loadtest.Remediator, payload []byte) []pipeline.Simulation {
	t.Helper()
	resp, err := http.Post(rem.URL+"/api/v1/simulate", "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/simulate: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Simulations []pipeline.Simulation `json:"simulations"`
		Rejected    []string              `json:"rejected"`
	}
	decode(t, string(b), &out)
	if len(out.Rejected) != 0 || len(out.Simulations) != 1 {
		t.Fatalf("simulate answer: %s", b)
	}
	return out.Simulations
}

// simulateCLI runs `remediator simulate --state URL -o json` on one notification file.
func simulateCLI(t *testing.T, config, state, file string) pipeline.Simulation {
	t.Helper()
	code, out, errOut := runShared(t, config, "", "simulate", "--state", state, "-o", "json", file)
	if code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errOut)
	}
	var res []simulatedPayload
	decode(t, out, &res)
	if len(res) != 1 || len(res[0].Simulations) != 1 {
		t.Fatalf("simulate output: %s", out)
	}
	return res[0].Simulations[0]
}

// verdicts is "stage=verdict" for each stage but dedupe, which only the remediator can answer.
func verdicts(s pipeline.Simulation) string {
	var out []string
	for _, v := range s.Stages {
		if v.Stage != "dedupe" {
			out = append(out, v.Stage+"="+v.Verdict+":"+v.Reason)
		}
	}
	return strings.Join(out, " ")
}

func wantDecision(t *testing.T, what string, s pipeline.Simulation, decision, stoppedBy, reason string) {
	t.Helper()
	if s.Decision != decision || s.StoppedBy != stoppedBy || s.Reason != reason || s.Playbook != "errors-high" || s.Target != "order-service" {
		t.Errorf("%s: decision %q by %q (%s: %s), playbook %q target %q; want %q by %q (%s)",
			what, s.Decision, s.StoppedBy, s.Reason, s.Detail, s.Playbook, s.Target, decision, stoppedBy, reason)
	}
}

// A simulation of a recorded notification says what the real pipeline then does with it: the
// same playbook, target and first step, and the same guard that stops it. Asked of the running
// remediator (POST /api/v1/simulate) and from outside with its state (simulate --state).
func TestSimulationMatchesPipeline(t *testing.T) {
	rem, got := startRemediator(t, "tok")
	config := filepath.Join(t.TempDir(), "playbooks.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(clientPlaybooks, got.base)), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(simDir, "recorded.json")
	payload, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	before := simulateAPI(t, rem, payload)[0]
	wantDecision(t, "API before", before, pipeline.DecisionHeal, "", "")
	if len(before.Steps) != 1 || before.Steps[0].URL != got.base+"/recover/order-service" || before.Steps[0].Does != "POST "+got.base+"/recover/order-service" {
		t.Fatalf("simulated steps: %+v", before.Steps)
	}
	offline := simulateCLI(t, config, rem.URL, file)
	wantDecision(t, "CLI before", offline, pipeline.DecisionHeal, "", "")
	if verdicts(offline) != verdicts(before) || !reflect.DeepEqual(offline.Steps, before.Steps) {
		t.Errorf("CLI and API differ:\n%s %+v\n%s %+v", verdicts(offline), offline.Steps, verdicts(before), before.Steps)
	}
	if len(got.all()) != 0 {
		t.Fatalf("a simulation acted: %v", got.all())
	}
	// The simulation's match noted the firing alert on a copy: the remediator knows no target.
	if out := mustRun(t, nil, "targets", "--remediator.url="+rem.URL, "-o", "json"); !strings.Contains(out, `"targets": []`) {
		t.Fatalf("a simulation changed the remediator's state:\n%s", out)
	}

	// The real pipeline does what the simulation said.
	if code, body, err := rem.Post(http.DefaultClient, payload); err != nil || code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s %v", code, body, err)
	}
	h, err := rem.WaitHeal("order-service", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.Playbook != before.Playbook || h.Target != before.Target || len(h.Steps) == 0 || h.Steps[0].Name != before.Steps[0].Name {
		t.Errorf("the pipeline healed %s/%s with %+v; the simulation said %s/%s with %s", h.Playbook, h.Target, h.Steps, before.Playbook, before.Target, before.Steps[0].Name)
	}
	if c := got.all(); len(c) != 1 || c[0] != "POST /recover/order-service" {
		t.Errorf("the step called %v, want the simulated POST /recover/order-service", c)
	}

	// A repeat delivery now meets the cooldown the heal started; so says the simulation, and so
	// does the pipeline with the delivery.
	after := simulateAPI(t, rem, payload)[0]
	wantDecision(t, "API after the heal", after, "suppressed", "cooldown", pipeline.ReasonCooldown)
	offline = simulateCLI(t, config, rem.URL, file)
	wantDecision(t, "CLI after the heal", offline, "suppressed", "cooldown", pipeline.ReasonCooldown)
	if verdicts(offline) != verdicts(after) {
		t.Errorf("CLI and API differ after the heal:\n%s\n%s", verdicts(offline), verdicts(after))
	}
	deliverAndSee(t, rem, payload, pipeline.ReasonCooldown)

	// A paused target: the guards stop it first.
	mustRun(t, nil, "pause", "--remediator.url="+rem.URL, "--remediator.token-file="+tokenFile(t, "tok"), "--target", "order-service", "--for", "1h")
	paused := simulateAPI(t, rem, payload)[0]
	wantDecision(t, "API paused", paused, "suppressed", "guards", pipeline.ReasonPaused)
	offline = simulateCLI(t, config, rem.URL, file)
	wantDecision(t, "CLI paused", offline, "suppressed", "guards", pipeline.ReasonPaused)
	deliverAndSee(t, rem, payload, pipeline.ReasonPaused)

	if c := got.all(); len(c) != 1 {
		t.Errorf("the recovery endpoint was called %d times, want the one real heal's call: %v", len(c), c)
	}
	hs, err := rem.WaitHeal("order-service", time.Second)
	if err != nil || hs.ID != h.ID {
		t.Errorf("a second heal ran: %+v %v", hs, err)
	}
}

// deliverAndSee posts the notification and waits for the pipeline to count it suppressed for
// reason.
func deliverAndSee(t *testing.T, rem *loadtest.Remediator, payload []byte, reason string) {
	t.Helper()
	count := func() float64 {
		m, err := rem.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		return m.Value("remediator_heals_suppressed_total", "reason", reason)
	}
	n := count()
	if code, body, err := rem.Post(http.DefaultClient, payload); err != nil || code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s %v", code, body, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline did not suppress the delivery for %s", reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Preconditions are asked of a real Prometheus (--prometheus.url): one that holds lets the heal
// through, one that does not stops it, with the query rendered from the alert.
func TestSimulatePreconditionsOnPrometheus(t *testing.T) {
	prom := testutil.StartPrometheus(t, "global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
	config := filepath.Join(t.TempDir(), "playbooks.yml")
	pb := `
global: {prometheus_url: http://127.0.0.1:1}
defaults: {target: '{{ .Labels.service }}'}
playbooks:
  - name: guarded
    match: ['alertname="ReplicaDown"']
    preconditions:
      - description: another replica is up
        query: 'count(up{service="{{ .Labels.service }}"} == 1) >= 1'
    steps: [{name: restart, docker: {action: restart}}]
  - name: unguarded
    match: ['alertname="MemoryHigh"']
    preconditions:
      - description: no replica of it is scraped
        query: 'absent(up{service="{{ .Labels.service }}"})'
    steps: [{name: restart, docker: {action: restart}}]
`
	if err := os.WriteFile(config, []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runShared(t, config, prom, "simulate", "-o", "json",
		filepath.Join(simDir, "precondition.json"), filepath.Join(simDir, "memory.json"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res []simulatedPayload
	decode(t, out, &res)
	guarded, unguarded := res[0].Simulations[0], res[1].Simulations[0]
	if guarded.StoppedBy != "preconditions" || guarded.Reason != pipeline.ReasonPrecondition ||
		guarded.Detail != `precondition "another replica is up" does not hold` {
		t.Errorf("guarded: %+v", guarded)
	}
	if unguarded.Decision != pipeline.DecisionHeal {
		t.Errorf("unguarded: %s by %s: %s", unguarded.Decision, unguarded.StoppedBy, unguarded.Detail)
	}
}

// The endpoint refuses what the webhook refuses, saying why, and lists rejected alerts.
func TestSimulateEndpointBadInput(t *testing.T) {
	rem, _ := startRemediator(t, "tok")
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"not JSON", "{", http.StatusBadRequest, "malformed JSON"},
		{"version 3", `{"version":"3","alerts":[]}`, http.StatusBadRequest, `unsupported notification version \"3\"`},
		{"too large", `{"version":"4","x":"` + strings.Repeat("a", 2<<20) + `"}`, http.StatusRequestEntityTooLarge, "larger than the webhook accepts"},
		{"an alert without a name", `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"service":"x"},"startsAt":"2026-03-02T09:00:00Z"}]}`,
			http.StatusOK, `"rejected":["alert 0: no alertname label"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(rem.URL+"/api/v1/simulate", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Errorf("%d %s; want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
}
