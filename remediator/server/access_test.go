package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/store"
)

// Credentials of the tests: Alertmanager's webhook token (the flag's, and one in the file), a
// reader, and an operator with basic auth.
type creds struct {
	dir, file string
}

func writeCreds(t *testing.T, dir, extra string) *creds {
	t.Helper()
	for name, secret := range map[string]string{"am-token": "am-s3cret", "reader-token": "r3ader", "legacy-token": "t0ken"} {
		testutil.WriteFile(t, dir, name, secret+"\n")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := &creds{dir: dir, file: filepath.Join(dir, "credentials.yml")}
	c.write(t, fmt.Sprintf(`credentials:
  - name: alertmanager
    role: webhook
    bearer_token_file: am-token
  - name: grafana
    role: reader
    bearer_token_file: reader-token
  - name: alice
    role: operator
    basic_auth: {username: alice, password_hash: %q}
%s`, hash, extra))
	return c
}

func (c *creds) write(t *testing.T, content string) {
	t.Helper()
	testutil.WriteFile(t, c.dir, filepath.Base(c.file), content)
}

type accessEnv struct {
	*env
	creds *creds
}

func newAccessEnv(t *testing.T) *accessEnv {
	t.Helper()
	dir := t.TempDir()
	c := writeCreds(t, dir, "")
	r := &recordingRunner{}
	ts := newTestServer(t, dir, testutil.Testdata(t, "approval-playbooks.yml"), Options{
		WebhookTokenFile: filepath.Join(dir, "legacy-token"), CredentialsFile: c.file, ReadAuth: true,
		Runner: r, Tick: 20 * time.Millisecond,
	}, true)
	return &accessEnv{env: &env{testServer: ts, runner: r}, creds: c}
}

// as makes a request with a credential: "bearer:<token>", "basic:<user>:<password>" or "".
func (e *env) as(cred, method, path, body string) (int, string) {
	e.t.Helper()
	var header map[string]string
	switch kind, rest, _ := strings.Cut(cred, ":"); kind {
	case "bearer":
		header = testutil.Bearer(rest)
	case "basic":
		header = map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(rest))}
	}
	return testutil.Do(e.t, method, e.http.URL+path, body, header)
}

const (
	webhookCred  = "bearer:am-s3cret"
	legacyCred   = "bearer:t0ken"
	readerCred   = "bearer:r3ader"
	operatorCred = "basic:alice:alice-pw"
)

func (e *accessEnv) decode(cred, path string, v any) {
	e.t.Helper()
	code, body := e.as(cred, "GET", path, "")
	if code != 200 {
		e.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		e.t.Fatal(err)
	}
}

// awaiting posts a firing alert and waits until its heal awaits approval; it returns the heal.
func (e *accessEnv) awaiting(alertname, container string) store.Heal {
	e.t.Helper()
	body := strings.ReplaceAll(notification("firing", container, startsAt), "ServiceMemoryHigh", alertname)
	if code, resp := e.as(webhookCred, "POST", "/webhook", body); code != 202 {
		e.t.Fatalf("webhook: %d %s", code, resp)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ts struct {
			Targets []struct{ Name, State string }
		}
		e.decode(readerCred, "/api/v1/targets", &ts)
		for _, t := range ts.Targets {
			if t.Name == container && t.State == "awaiting_approval" {
				var hs struct{ Heals []store.Heal }
				e.decode(readerCred, "/api/v1/heals?target="+container, &hs)
				return hs.Heals[0]
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s never awaited approval: %+v", container, ts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *accessEnv) heal(id string) store.Heal {
	e.t.Helper()
	var h store.Heal
	e.decode(readerCred, "/api/v1/heals/"+id, &h)
	return h
}

// The webhook credential cannot pause or approve (403), the operator can, the reader only reads,
// and the actor is in the records.
func TestRolesAndActors(t *testing.T) {
	e := newAccessEnv(t)
	h := e.awaiting("ServiceMemoryHigh", "c1")
	approve := "/api/v1/heals/" + h.ID + "/approve"
	tests := []struct {
		name, cred, method, path, body string
		status                         int
		contains                       string
	}{
		{"webhook posts notifications", webhookCred, "POST", "/webhook", unmatched("c9"), 202, "accepted"},
		{"webhook cannot pause", webhookCred, "POST", "/api/v1/pause", `{}`, 403, `credential \"alertmanager\" has the webhook role`},
		{"webhook cannot approve", webhookCred, "POST", approve, `{}`, 403, "operator role"},
		{"webhook cannot reload", webhookCred, "POST", "/-/reload", ``, 403, "operator role"},
		{"webhook cannot read", webhookCred, "GET", "/api/v1/targets", ``, 403, "reader or operator role"},
		{"the flag's token is the webhook role", legacyCred, "POST", "/api/v1/pause", `{}`, 403, `credential \"webhook\" has the webhook role`},
		{"the flag's token posts notifications", legacyCred, "POST", "/webhook", unmatched("c8"), 202, "accepted"},
		{"reader reads", readerCred, "GET", "/api/v1/heals/" + h.ID, ``, 200, `"state":"awaiting"`},
		{"the heal says what it awaits", readerCred, "GET", "/api/v1/heals/" + h.ID, ``, 200, `"awaiting_approval":{"heal":"` + h.ID + `","step":"flush-cache"`},
		{"reader cannot reset", readerCred, "POST", "/api/v1/targets/c1/reset", ``, 403, "operator role"},
		{"unknown token", "bearer:nope", "POST", "/api/v1/pause", `{}`, 401, "invalid credentials"},
		{"wrong password", "basic:alice:wrong", "POST", "/api/v1/pause", `{}`, 401, "invalid credentials"},
		{"no credential reads nothing", "", "GET", "/api/v1/targets", ``, 401, "invalid credentials"},
		{"operator pauses", operatorCred, "POST", "/api/v1/pause", `{"target":"c2","duration":"1h","reason":"maintenance"}`, 200, `"paused"`},
		{"operator resumes", operatorCred, "POST", "/api/v1/resume", `{"target":"c2"}`, 200, `"resumed"`},
		{"operator resets", operatorCred, "POST", "/api/v1/targets/c1/reset", ``, 200, `"reset"`},
		{"operator approves", operatorCred, "POST", approve, `{"comment":"looked at the graphs"}`, 200, `"by":"alice"`},
		{"approved twice", operatorCred, "POST", approve, `{}`, 409, "not awaiting approval"},
		{"approve unknown heal", operatorCred, "POST", "/api/v1/heals/999/reject", `{}`, 404, "unknown heal"},
		{"approve bad body", operatorCred, "POST", approve, `{"coment":"x"}`, 400, "unknown field"},
		{"operator reloads", operatorCred, "POST", "/-/reload", ``, 200, "reloaded"},
	}
	for _, tc := range tests {
		code, body := e.as(tc.cred, tc.method, tc.path, tc.body)
		if code != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, code, body, tc.status, tc.contains)
		}
	}
	e.idle()
	got := e.heal(h.ID)
	if got.Result != store.HealHealed || got.Steps[0].Approval == nil || got.Steps[0].Approval.By != "alice" ||
		got.Steps[0].Approval.Comment != "looked at the graphs" {
		t.Fatalf("heal after approval: %+v", got)
	}
	var hist struct{ History []store.Override }
	e.decode(operatorCred, "/api/v1/history", &hist)
	var seen []string
	for _, o := range hist.History {
		seen = append(seen, o.Action+":"+o.Target+":"+o.Actor)
	}
	if strings.Join(seen, ",") != "reset:c1:alice,resume:c2:alice,pause:c2:alice" {
		t.Errorf("override history = %v", seen)
	}
	e.decode(operatorCred, "/api/v1/history?target=c2&limit=1", &hist)
	if len(hist.History) != 1 || hist.History[0].Action != "resume" {
		t.Errorf("c2's latest override = %+v", hist.History)
	}
}

// Reject, approve and timeout through the HTTP API, with the awaiting state in the API and the
// metrics.
func TestApprovalFlowThroughTheAPI(t *testing.T) {
	e := newAccessEnv(t)
	rejected := e.awaiting("ServiceMemoryHigh", "c1")
	if a := rejected.Steps[0].Approval; a == nil || a.State != store.ApprovalAwaiting || !a.Deadline.After(a.Requested) {
		t.Fatalf("awaiting heal: %+v", rejected)
	}
	_, targets := e.as(readerCred, "GET", "/api/v1/targets", "")
	if want := `"awaiting_approval":{"heal":"` + rejected.ID + `","step":"flush-cache","deadline":`; !strings.Contains(targets, want) {
		t.Errorf("targets do not say which heal awaits approval: %s", targets)
	}
	if m := testutil.GetText(t, e.http.URL+"/metrics"); !strings.Contains(m, "remediator_heals_awaiting_approval 1") ||
		!strings.Contains(m, `remediator_target_state{target="c1"} 7`) {
		t.Fatalf("metrics do not show the wait:\n%s", grepLines(m, "awaiting", "target_state"))
	}
	if code, body := e.as(operatorCred, "POST", "/api/v1/heals/"+rejected.ID+"/reject", `{"comment":"risky now"}`); code != 200 {
		t.Fatalf("reject: %d %s", code, body)
	}
	e.idle()
	got := e.heal(rejected.ID)
	if got.Result != store.HealFailed || got.Steps[0].Outcome != store.StepDeclined || got.Steps[0].Approval.By != "alice" ||
		!strings.Contains(got.Reason, "rejected by alice: risky now") {
		t.Fatalf("rejected heal: %+v", got)
	}

	timedOut := e.awaiting("ServiceDown", "c3")
	e.idle()
	got = e.heal(timedOut.ID)
	if got.Result != store.HealHealed || len(got.Steps) != 2 || got.Steps[0].Outcome != store.StepDeclined ||
		got.Steps[0].Reason != "approval_timeout" || got.Steps[0].Approval.State != store.ApprovalTimedOut ||
		got.Steps[1].Outcome != store.StepSucceeded {
		t.Fatalf("timed-out heal: %+v", got)
	}
	if n := e.runner.count(); n != 1 {
		t.Fatalf("%d actions, want 1 (recreate after the timeout; nothing for the rejected heal)", n)
	}
	m := testutil.GetText(t, e.http.URL+"/metrics")
	for _, want := range []string{"remediator_heals_awaiting_approval 0", `remediator_approvals_total{result="rejected"} 1`,
		`remediator_approvals_total{result="timed_out"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "approval"))
		}
	}
}

// A credentials file reload (POST /-/reload) adds a credential; a broken file keeps the
// running ones.
func TestCredentialsReload(t *testing.T) {
	e := newAccessEnv(t)
	if err := os.WriteFile(filepath.Join(e.creds.dir, "bob-token"), []byte("b0b"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.as("bearer:b0b", "POST", "/api/v1/pause", `{}`); code != 401 {
		t.Fatalf("bob before the reload: %d", code)
	}
	old, err := os.ReadFile(e.creds.file)
	if err != nil {
		t.Fatal(err)
	}
	e.creds.write(t, string(old)+"  - name: bob\n    role: operator\n    bearer_token_file: bob-token\n")
	if code, body := e.as(operatorCred, "POST", "/-/reload", ""); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, body := e.as("bearer:b0b", "POST", "/api/v1/pause", `{"target":"c1"}`); code != 200 {
		t.Fatalf("bob after the reload: %d %s", code, body)
	}
	e.creds.write(t, "credentials:\n  - name: eve\n    role: admin\n    bearer_token_file: bob-token\n")
	code, body := e.as(operatorCred, "POST", "/-/reload", "")
	if code != 500 || !strings.Contains(body, `role \"admin\" is not one of webhook, reader, operator`) {
		t.Fatalf("reload of a bad file: %d %s", code, body)
	}
	if code, _ := e.as("bearer:b0b", "POST", "/api/v1/resume", `{"target":"c1"}`); code != 200 {
		t.Fatalf("bob after a failed reload: %d", code)
	}
}

// unmatched is a notification no playbook matches: it leaves nothing waiting.
func unmatched(container string) string {
	return strings.ReplaceAll(notification("firing", container, startsAt), "ServiceMemoryHigh", "Unrelated")
}

func grepLines(text string, words ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
