package web_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/docker"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/store"
)

var screenshot = flag.String("screenshot", "", "also write a screenshot of the heal history page to this file (docs/heals-page.png)")

const browserPlaybooks = `
global:
  heals_per_minute: 600
defaults:
  cooldown: {initial: 1h, factor: 2, max: 4h, reset_after: 1h}
  budget: {attempts: 3, window: 1h}
  blast_radius: {max_targets: 0, max_ratio: 0}
  verify: {skip: true}
  step_timeout: 5s
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - name: flush-cache
        http: {method: POST, url: '%[1]s/recover/{{ .Labels.container }}'}
  - name: service-down
    match: ['alertname="ServiceDown"']
    steps:
      - name: restart-worker
        http: {method: POST, url: '%[1]s/broken/{{ .Labels.container }}'}
  - name: service-errors
    match: ['alertname="ServiceErrorsHigh"']
    steps:
      - name: reset-pool
        http: {method: POST, url: '%[1]s/broken/{{ .Labels.container }}'}
      - name: restart
        docker: {action: restart, stop_timeout: 2s}
        timeout: 30s
`

// TestHealsPageInBrowser runs a remediator with real heals (healed and failed through http steps
// against a small service, and healed by restarting a real container, whose state and last log
// lines the heal keeps as evidence) and reads its pages the way a person does: in Chromium, with
// the filters applied through the page's own form parameters.
func TestHealsPageInBrowser(t *testing.T) {
	chromium := testutil.LookPath(t, "chromium", "chromium-browser")
	container, docker := demoContainer(t)
	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/broken/") {
			http.Error(w, "worker pool wedged", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("flushed\n"))
	}))
	defer service.Close()
	rem, err := loadtest.Start(loadtest.Options{
		Dir: t.TempDir(), Playbooks: strings.ReplaceAll(browserPlaybooks, "%[1]s", service.URL), Tick: 50 * time.Millisecond,
		Actuators: []action.Actuator{docker},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rem.Stop(); err != nil {
			t.Error(err)
		}
	}()
	now := time.Now()
	for _, a := range []loadtest.Alert{
		{Name: "ServiceMemoryHigh", Target: "checkout", Severity: "warning", StartsAt: now.Add(-2 * time.Minute)},
		// A label an attacker could set on an alert: the page shows it as text, never as markup.
		{Name: "ServiceDown", Target: "ledger", Severity: "critical", StartsAt: now.Add(-time.Minute),
			Extra: map[string]string{"note": `<img src=x onerror="document.title='owned'">`}},
		{Name: "ServiceErrorsHigh", Target: container, Severity: "critical", StartsAt: now.Add(-30 * time.Second)},
	} {
		if code, body, err := rem.Post(http.DefaultClient, loadtest.Notification(a.Target, a)); err != nil || code != http.StatusAccepted {
			t.Fatalf("posting %s: %d %s %v", a.Name, code, body, err)
		}
	}
	for target, want := range map[string]string{"checkout": store.HealHealed, "ledger": store.HealFailed, container: store.HealHealed} {
		h, err := rem.WaitHeal(target, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if h.Result != want {
			t.Fatalf("heal of %s: %s, want %s (%+v)", target, h.Result, want, h)
		}
	}

	b := &browser{t: t, bin: chromium, profile: t.TempDir()}
	for _, tc := range []struct {
		name, path string
		want, not  []string
	}{
		{name: "landing page", path: "/",
			want: []string{`<a href="/heals">Heal history</a>`, `<a href="/metrics">Metrics</a>`, `<a href="/api/v1/targets">`}},
		{name: "all heals", path: "/heals",
			want: []string{`data-target="checkout" data-result="healed"`, `data-target="ledger" data-result="failed"`,
				`data-target="` + container + `" data-result="healed"`, "3 heals, newest first",
				// The restart's evidence: the container's state and its last log lines.
				"container " + container, "status: running", "oom_killed: false", "<summary>last log lines</summary>", "fault started", "flush-cache", "restart-worker", "500 Internal Server Error",
				"&lt;img src=x onerror=", "<title>remediator: heal history</title>"},
			not: []string{"<img", "owned</title>"}},
		{name: "by target", path: "/heals?target=ledger",
			want: []string{`data-target="ledger"`, "1 heal of target <b>ledger</b>", `value="ledger"`},
			not:  []string{`data-target="checkout"`}},
		{name: "by result", path: "/heals?target=&result=healed&limit=50",
			want: []string{`data-target="checkout" data-result="healed"`, `data-target="` + container + `"`, "2 heals with result",
				`<option value="healed" selected="">healed</option>`},
			not: []string{`data-target="ledger"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dom := b.dumpDOM(rem.URL + tc.path)
			for _, w := range tc.want {
				if !strings.Contains(dom, w) {
					t.Errorf("rendered page lacks %q:\n%s", w, dom)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(dom, n) {
					t.Errorf("rendered page has %q:\n%s", n, dom)
				}
			}
		})
	}
	if *screenshot != "" {
		out, err := filepath.Abs(*screenshot)
		if err != nil {
			t.Fatal(err)
		}
		b.run("--window-size=1280,1100", "--hide-scrollbars", "--screenshot="+out, rem.URL+"/heals")
		if st, err := os.Stat(out); err != nil || st.Size() == 0 {
			t.Fatalf("no screenshot at %s: %v", out, err)
		}
	}
}

// demoContainer runs the demo service in a container the docker actuator may restart, with a
// fault started so that its log has something to show, and returns its name and the actuator.
func demoContainer(t *testing.T) (string, action.Actuator) {
	t.Helper()
	testutil.RequireDocker(t)
	bin := filepath.Join(t.TempDir(), "demo-service")
	if err := testutil.BuildStatic(testutil.RepoRoot(t), "./services/cmd/demo-service", bin); err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%04x", rand.IntN(0x10000))
	image := testutil.ScratchImage(t, bin, "selfheal-web-test-demo:"+suffix)
	name := "selfheal-web-test-ledger-" + suffix
	testutil.RunContainer(t, testutil.ContainerSpec{
		Name: name, Image: image, Labels: map[string]string{"remediator.enable": "true"},
		Env: map[string]string{"SERVICE_NAME": "user-service"}, Publish: []int{8080},
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", testutil.HostPort(t, name, 8080))
	if err := testutil.WaitHTTP(base+"/metrics", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/chaos/errors?ratio=0.01", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	a, err := docker.New(docker.Options{OptInLabel: "remediator.enable", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return name, a
}

// browser runs headless Chromium, one page load per run.
type browser struct {
	t            *testing.T
	bin, profile string
}

func (b *browser) dumpDOM(url string) string { return b.run("--dump-dom", url) }

func (b *browser) run(args ...string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + b.profile}
	cmd := exec.CommandContext(ctx, b.bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}
