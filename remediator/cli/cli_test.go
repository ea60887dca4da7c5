package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/store"
)

const clientPlaybooks = `
global:
  heals_per_minute: 600
defaults:
  target: '{{ .Labels.service }}'
  cooldown: {initial: 1h, factor: 2, max: 4h, reset_after: 1h}
  budget: {attempts: 3, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  verify: {timeout: 2s, interval: 100ms}
  step_timeout: 5s
playbooks:
  - name: errors-high
    match: ['alertname="ErrorsHigh"']
    steps:
      - name: reset-pool
        http: {url: '%s/recover/{{ .Labels.service }}', expect_status: [204]}
`

// remediator starts a real remediator (webhook, store, pipeline, API over HTTP) that requires
// token, with one failed heal of target "order-service" in its history.
func remediator(t *testing.T, token string) (*loadtest.Remediator, store.Heal) {
	t.Helper()
	rem, _ := startRemediator(t, token)
	code, body, err := rem.Post(http.DefaultClient, loadtest.Notification("g1",
		loadtest.Alert{Name: "ErrorsHigh", Target: "order-service", Severity: "critical", StartsAt: time.Now().Add(-time.Minute)}))
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("posting the alert: %d %s %v", code, body, err)
	}
	h, err := rem.WaitHeal("order-service", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h.Result != store.HealFailed || len(h.Steps) != 1 {
		t.Fatalf("the heal to inspect: %+v", h)
	}
	return rem, h
}

// startRemediator starts a remediator with clientPlaybooks whose recovery endpoint answers 500
// (the step fails with an error the history keeps) and records the paths it was called at.
func startRemediator(t *testing.T, token string) (*loadtest.Remediator, *calls) {
	t.Helper()
	got := &calls{}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.add(r.Method + " " + r.URL.Path)
		http.Error(w, "pool stuck", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	got.base = broken.URL
	rem, err := loadtest.Start(loadtest.Options{
		Dir: t.TempDir(), Playbooks: fmt.Sprintf(clientPlaybooks, broken.URL), Token: token, Tick: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rem.Stop(); err != nil {
			t.Error(err)
		}
	})
	return rem, got
}

// calls are the requests a recovery endpoint received.
type calls struct {
	base string
	mu   sync.Mutex
	seen []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, s)
}

func (c *calls) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

// run runs the client as the binary does, with args, and returns its exit code and output.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	return runShared(t, "", "", args...)
}

// runShared is run with the binary's --config.file and --prometheus.url set.
func runShared(t *testing.T, config, prom string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	app := kingpin.New("remediator", "")
	app.Terminate(nil)
	c := Register(app, Shared{ConfigFile: &config, PrometheusURL: &prom})
	var out, errOut bytes.Buffer
	c.Stdout, c.Stderr = &out, &errOut
	app.UsageWriter(&errOut)
	app.ErrorWriter(&errOut)
	cmd, err := app.Parse(args)
	if err != nil {
		return 2, out.String(), err.Error()
	}
	handled, code := c.Run(context.Background(), cmd)
	if !handled {
		t.Fatalf("%v: not a client command", args)
	}
	return code, out.String(), errOut.String()
}

func tokenFile(t *testing.T, token string) string {
	return testutil.WriteFile(t, t.TempDir(), "token", token+"\n")
}

func mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, env, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

func wantAll(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

func TestClientCommands(t *testing.T) {
	rem, h := remediator(t, "s3cret")
	tf := tokenFile(t, "s3cret")
	url := "--remediator.url=" + rem.URL
	auth := "--remediator.token-file=" + tf

	out := mustRun(t, nil, "targets", url)
	wantAll(t, "targets table", out, "TARGET", "STATE", "order-service", "errors-high", "1 used, 2 left /1h", "ErrorsHigh", h.ID+" failed")
	var targets struct {
		Targets []struct {
			Name          string     `json:"name"`
			AttemptsUsed  int        `json:"attempts_used"`
			CooldownUntil *time.Time `json:"cooldown_until"`
		} `json:"targets"`
	}
	decode(t, mustRun(t, nil, "targets", url, "-o", "json"), &targets)
	if len(targets.Targets) != 1 || targets.Targets[0].Name != "order-service" || targets.Targets[0].AttemptsUsed != 1 || targets.Targets[0].CooldownUntil == nil {
		t.Errorf("targets json: %+v", targets)
	}

	out = mustRun(t, nil, "heals", url)
	wantAll(t, "heals table", out, "ID", "RESULT", h.ID, "order-service", "errors-high", "ErrorsHigh", "failed", "reset-pool:failed")
	var heals struct {
		Heals []store.Heal `json:"heals"`
	}
	decode(t, mustRun(t, nil, "heals", url, "--target", "order-service", "--since", "1h", "-o", "json"), &heals)
	if len(heals.Heals) != 1 || heals.Heals[0].ID != h.ID {
		t.Errorf("heals --target --since: %+v", heals)
	}
	// --since cuts heals older than it: the heal started well under a minute ago, so a window
	// that ends before it is empty only if the filter works. The smallest window is 1ms.
	time.Sleep(10 * time.Millisecond)
	decode(t, mustRun(t, nil, "heals", url, "--since", "5ms", "-o", "json"), &heals)
	if len(heals.Heals) != 0 {
		t.Errorf("heals --since 5ms kept %d heals", len(heals.Heals))
	}

	out = mustRun(t, nil, "heal", h.ID, url)
	wantAll(t, "heal detail", out, "Heal:", h.ID, "Result:", "failed", "STEP", "reset-pool", "http", h.Steps[0].Error)
	var one store.Heal
	decode(t, mustRun(t, nil, "heal", h.ID, url, "-o", "json"), &one)
	if one.ID != h.ID || len(one.Steps) != 1 || one.Steps[0].Error == "" {
		t.Errorf("heal json: %+v", one)
	}

	out = mustRun(t, nil, "pause", url, auth, "--target", "order-service", "--for", "15m", "--comment", "maintenance")
	wantAll(t, "pause", out, "paused target order-service until ")
	out = mustRun(t, nil, "targets", url)
	wantAll(t, "targets after pause", out, "paused", "until ")
	// The token from the environment works as the file does.
	var res map[string]any
	decode(t, mustRun(t, map[string]string{TokenEnv: "s3cret"}, "resume", url, "--target", "order-service", "-o", "json"), &res)
	if res["status"] != "resumed" || res["target"] != "order-service" {
		t.Errorf("resume json: %v", res)
	}
	decode(t, mustRun(t, nil, "targets", url, "-o", "json"), &targets)
	out = mustRun(t, nil, "pause", url, auth)
	wantAll(t, "global pause", out, "paused all healing until resumed")
	out = mustRun(t, nil, "resume", url, auth)
	wantAll(t, "global resume", out, "resumed all healing")

	out = mustRun(t, nil, "reset", "order-service", url, auth)
	wantAll(t, "reset", out, "reset order-service")
	decode(t, mustRun(t, nil, "targets", url, "-o", "json"), &targets)
	if tg := targets.Targets[0]; tg.AttemptsUsed != 0 || tg.CooldownUntil != nil {
		t.Errorf("after reset: %+v", tg)
	}
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
}

// Each mistake an operator makes ends with exit 1 and a message that names what to fix.
func TestClientErrors(t *testing.T) {
	rem, _ := remediator(t, "s3cret")
	url := "--remediator.url=" + rem.URL
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	wrong := tokenFile(t, "nope")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"connection refused", nil, []string{"targets", "--remediator.url=" + closed.URL},
			[]string{"cannot reach the remediator at " + closed.URL, "connection refused"}},
		{"not a URL", nil, []string{"targets", "--remediator.url=127.0.0.1:9096"},
			[]string{`--remediator.url "127.0.0.1:9096" is not an http(s) URL`}},
		{"no credential", nil, []string{"pause", url},
			[]string{"401 Unauthorized", "needs a credential", "--remediator.token-file", TokenEnv}},
		{"wrong token file", nil, []string{"reset", "order-service", url, "--remediator.token-file=" + wrong},
			[]string{"401", "did not accept the token in " + wrong}},
		{"wrong token in the environment", map[string]string{TokenEnv: "nope"}, []string{"resume", url},
			[]string{"401", "did not accept the token in $" + TokenEnv}},
		{"missing token file", nil, []string{"pause", url, "--remediator.token-file=/nonexistent/token"},
			[]string{"--remediator.token-file", "no such file"}},
		{"unknown heal", nil, []string{"heal", "999999", url},
			[]string{"404", "no heal 999999 in the history"}},
		{"heal id not a number", nil, []string{"heal", "abc", url},
			[]string{"400", "heal id must be a number"}},
		{"unknown target to reset", map[string]string{TokenEnv: "s3cret"}, []string{"reset", "ordr-service", url},
			[]string{`unknown target "ordr-service"`, "remediator targets"}},
		{"unknown target to resume", map[string]string{TokenEnv: "s3cret"}, []string{"resume", "--target", "ordr-service", url},
			[]string{`unknown target "ordr-service"`}},
		{"unknown target of heals", nil, []string{"heals", "--target", "ordr-service", url},
			[]string{`unknown target "ordr-service"`}},
		{"bad --since", nil, []string{"heals", "--since", "yesterday", url},
			[]string{`--since "yesterday"`}},
		{"bad --for", map[string]string{TokenEnv: "s3cret"}, []string{"pause", "--for=-5m", url},
			[]string{`--for "-5m"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env == nil {
				t.Setenv(TokenEnv, "")
			}
			code, out, errOut := run(t, tc.env, tc.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			wantAll(t, "error", errOut, tc.want...)
		})
	}
}
