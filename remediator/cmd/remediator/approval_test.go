package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// do sends a request with a bearer token through client.
func do(t *testing.T, client *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// targetState reads a target's state through the API with a reader's token.
func targetState(t *testing.T, base, token, target string) string {
	t.Helper()
	var r struct {
		Targets []struct{ Name, State string }
	}
	code, body := testutil.Do(t, "GET", base+"/api/v1/targets", "", testutil.Bearer(token))
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("targets: %d %s", code, body)
	}
	for _, tg := range r.Targets {
		if tg.Name == target {
			return tg.State
		}
	}
	return ""
}

// A heal awaiting approval survives a kill -9: the restarted remediator awaits it again, a
// credential added meanwhile and loaded on SIGHUP approves it, and the step acts once.
func TestApprovalSurvivesRestartOfTheProcess(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	var hits atomic.Int32
	endpoint := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer endpoint.Close()

	dir := t.TempDir()
	playbooks := fmt.Sprintf(`
defaults:
  verify: {skip: true}
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    approval: {required: true, timeout: 1h}
    steps:
      - name: flush-cache
        http: {method: POST, url: '%s/recover/flush-cache'}
`, endpoint.URL)
	testutil.WriteFile(t, dir, "am-token", "am")
	testutil.WriteFile(t, dir, "reader-token", "rd")
	testutil.WriteFile(t, dir, "ops-token", "op")
	credentials := `credentials:
  - {name: alertmanager, role: webhook, bearer_token_file: am-token}
  - {name: grafana, role: reader, bearer_token_file: reader-token}
`
	creds := testutil.WriteFile(t, dir, "credentials.yml", credentials)
	args := []string{"--web.credentials-file=" + creds, "--web.api.read-auth"}
	notification := `{"version":"4","groupKey":"g","status":"firing","receiver":"remediator","alerts":[
{"status":"firing","labels":{"alertname":"ServiceMemoryHigh","container":"c1","severity":"critical"},
"startsAt":"2026-01-02T03:04:05Z","fingerprint":"f1"}]}`

	first := testutil.StartRemediator(t, bin, dir, playbooks, args...)
	if code, body := testutil.Do(t, "POST", first.URL+"/webhook", notification, testutil.Bearer("am")); code != 202 {
		t.Fatalf("webhook: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "the heal to await approval", func() bool {
		return targetState(t, first.URL, "rd", "c1") == "awaiting_approval"
	})
	first.Kill()

	second := testutil.StartRemediator(t, bin, dir, playbooks, args...)
	if s := targetState(t, second.URL, "rd", "c1"); s != "awaiting_approval" {
		t.Fatalf("after the restart c1 is %q, want awaiting_approval", s)
	}
	if m := testutil.GetText(t, second.URL+"/metrics"); !strings.Contains(m, "remediator_heals_awaiting_approval 1") {
		t.Fatal("remediator_heals_awaiting_approval is not 1 after the restart")
	}
	heal := second.URL + "/api/v1/heals/1"
	if code, _ := testutil.Do(t, "POST", heal+"/approve", "", testutil.Bearer("op")); code != 401 {
		t.Fatalf("an unknown token approved: %d", code)
	}
	testutil.WriteFile(t, dir, "credentials.yml", credentials+"  - {name: oncall, role: operator, bearer_token_file: ops-token}\n")
	if err := second.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the SIGHUP reload to add the operator", func() bool {
		code, _ := testutil.Do(t, "GET", heal, "", testutil.Bearer("op"))
		return code == 200
	})
	if code, body := testutil.Do(t, "POST", heal+"/approve", "", testutil.Bearer("am")); code != 403 {
		t.Fatalf("the webhook credential approved: %d %s", code, body)
	}
	if code, body := testutil.Do(t, "POST", heal+"/approve", `{"comment":"after the restart"}`, testutil.Bearer("op")); code != 200 {
		t.Fatalf("approve: %d %s", code, body)
	}
	testutil.Eventually(t, 10*time.Second, "the approved step to act", func() bool { return hits.Load() == 1 })
	testutil.Eventually(t, 10*time.Second, "the heal to end", func() bool {
		_, body := testutil.Do(t, "GET", heal, "", testutil.Bearer("rd"))
		return strings.Contains(body, `"result":"healed"`)
	})
	_, body := testutil.Do(t, "GET", heal, "", testutil.Bearer("rd"))
	if !strings.Contains(body, `"by":"oncall"`) || !strings.Contains(body, `"comment":"after the restart"`) {
		t.Fatalf("the heal record lacks the approval: %s", body)
	}
	if !strings.Contains(second.Output(), `actor=oncall`) {
		t.Errorf("the approval is not logged with its actor:\n%s", second.Tail(30))
	}
	time.Sleep(300 * time.Millisecond)
	if n := hits.Load(); n != 1 {
		t.Fatalf("the step acted %d times, want 1", n)
	}
}

// mTLS: the verified client certificate's CN names the actor and its role, as the credentials
// file maps it; exporter-toolkit's web configuration does the TLS.
func TestClientCertificateNamesTheActor(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	ca, webCfg := mutualTLSConfig(t, dir)
	creds := testutil.WriteFile(t, dir, "credentials.yml", `credentials:
  - {name: deploy-bot, role: operator, client_certificate_cn: deploy.example}
  - {name: alertmanager, role: webhook, client_certificate_cn: alertmanager.example}
`)
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", testutil.Testdata(t, "playbooks.yml"))
	port := testutil.FreePort(t)
	proc := testutil.StartProcess(t, "remediator", nil, bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.credentials-file="+creds, "--web.config.file="+webCfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	client := func(cn string) *http.Client {
		c := newCert(t, cn, ca, false)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{c.der}, PrivateKey: c.key}},
		}}}
	}
	bot, am, stranger := client("deploy.example"), client("alertmanager.example"), client("stranger.example")
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	testutil.Eventually(t, 15*time.Second, "the TLS listener", func() bool {
		res, err := bot.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if code, body := do(t, am, "POST", base+"/api/v1/pause", "", `{"target":"c1"}`); code != 403 || !strings.Contains(body, "alertmanager") {
		t.Fatalf("the webhook certificate paused: %d %s", code, body)
	}
	if code, body := do(t, stranger, "POST", base+"/api/v1/pause", "", `{"target":"c1"}`); code != 401 {
		t.Fatalf("an unmapped certificate paused: %d %s", code, body)
	}
	if code, body := do(t, bot, "POST", base+"/api/v1/pause", "", `{"target":"c1","reason":"deploy"}`); code != 200 {
		t.Fatalf("the operator certificate could not pause: %d %s", code, body)
	}
	_, body := do(t, bot, "GET", base+"/api/v1/history?target=c1", "", "")
	if !strings.Contains(body, `"actor":"deploy-bot"`) || !strings.Contains(body, `"action":"pause"`) {
		t.Fatalf("history does not name the certificate's actor: %s", body)
	}
	if !strings.Contains(proc.Output(), "actor=deploy-bot") {
		t.Error("the pause is not logged with the certificate's actor")
	}
}
