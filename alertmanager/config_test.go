package alertmanager

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/services/pager"
)

const configFile = "alertmanager.yml"

func amtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testutil.LookPath(t, "amtool")
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func TestAmtoolCheckConfig(t *testing.T) {
	out, err := amtool(t, "check-config", configFile)
	if err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, want := range []string{"3 receivers", "1 inhibit rules"} {
		if !strings.Contains(out, want) {
			t.Errorf("amtool check-config output lacks %q:\n%s", want, out)
		}
	}
}

// routeCase is a label set and the receiver Alertmanager must pick for it.
type routeCase struct {
	name     string
	labels   []string
	receiver string
}

func checkRoutes(t *testing.T, cases []routeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"config", "routes", "test", "--config.file=" + configFile, "--verify.receivers=" + tc.receiver}, tc.labels...)
			out, err := amtool(t, args...)
			if err != nil {
				t.Fatalf("labels %v: want receiver %s: %v\n%s", tc.labels, tc.receiver, err, out)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	checkRoutes(t, []routeCase{
		// Healable alerts reach the remediator and, later, a person: the heal's silence keeps
		// the person's route quiet while it acts.
		{"healable critical", []string{"alertname=ServiceMemoryHigh", "severity=critical", "remediation=auto", "service=user-service", "instance=user-service:8080", "container=user-service"}, "remediator,oncall"},
		{"healable warning", []string{"alertname=ServicePoolSaturated", "severity=warning", "remediation=auto", "service=order-service", "instance=order-service:8080"}, "remediator,oncall"},
		{"no playbook", []string{"alertname=ServiceCircuitOpen", "severity=warning", "service=user-service", "instance=user-service:8080"}, "oncall"},
		{"remediation other than auto", []string{"alertname=ServiceDown", "severity=critical", "remediation=manual"}, "oncall"},
		{"escalation: budget exhausted", []string{"alertname=RemediatorBudgetExhausted", "severity=critical", "team=remediator", "target=order-service"}, "oncall"},
		{"escalation: heals failing", []string{"alertname=RemediatorHealsFailing", "severity=warning", "team=remediator", "playbook=memory-leak"}, "oncall"},
		// A remediator alert never reaches the remediator, whatever labels it carries.
		{"remediator alert mislabelled auto", []string{"alertname=RemediatorDown", "severity=critical", "remediation=auto"}, "oncall"},
		{"unknown alert", []string{"alertname=Watchdog", "severity=none"}, "oncall"},
		// What the remediator tells people: failures, declines and suspensions page and reach
		// chat; a performed heal only chat. Never the remediator, whatever labels they carry.
		{"heal failed", []string{"alertname=RemediationFailed", "severity=critical", "target=user-service", "playbook=memory-leak", "original_alertname=ServiceMemoryHigh"}, "chat,oncall"},
		{"heal declined", []string{"alertname=RemediationDeclined", "severity=warning", "reason=blast_radius", "target=user-service"}, "chat,oncall"},
		{"target suspended", []string{"alertname=RemediationSuspended", "severity=critical", "target=user-service"}, "chat,oncall"},
		{"heal performed", []string{"alertname=RemediationPerformed", "severity=info", "target=user-service"}, "chat"},
		{"notice mislabelled auto", []string{"alertname=RemediationFailed", "remediation=auto", "target=user-service"}, "chat,oncall"},
	})
}

// TestRoutesOfEveryRule routes each alerting rule of rules/ by its static labels, so a rule
// added or relabelled there is routed as its remediation label promises.
func TestRoutesOfEveryRule(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "rules", "*.yml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no rule files in ../rules (%v)", err)
	}
	var cases []routeCase
	for _, p := range paths {
		var rf struct {
			Groups []struct {
				Rules []struct {
					Alert  string            `yaml:"alert"`
					Labels map[string]string `yaml:"labels"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		testutil.ReadYAML(t, p, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				labels := []string{"alertname=" + r.Alert, "service=svc", "instance=svc:8080"}
				keys := make([]string, 0, len(r.Labels))
				for k := range r.Labels {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				for _, k := range keys {
					labels = append(labels, k+"="+r.Labels[k])
				}
				want := "oncall"
				if r.Labels["remediation"] == "auto" && !strings.HasPrefix(r.Alert, "Remediator") {
					want = "remediator,oncall"
				}
				cases = append(cases, routeCase{r.Alert + "/" + r.Labels["severity"], labels, want})
			}
		}
	}
	checkRoutes(t, cases)
}

// testConfig turns the shipped configuration into the live test's. Differences, and only these:
// the remediator's webhook URL and the placeholder URLs of the people's receivers point at recorders on
// 127.0.0.1, and credentials_file at a token file of the test. Routes, grouping, timings and
// inhibition are the shipped ones.
func testConfig(t *testing.T, remediatorURL, oncallURL, chatURL, tokenFile string) string {
	t.Helper()
	var cfg map[string]any
	testutil.ReadYAML(t, configFile, &cfg)
	seen := map[string]bool{}
	for _, r := range cfg["receivers"].([]any) {
		r := r.(map[string]any)
		name := r["name"].(string)
		for _, wc := range r["webhook_configs"].([]any) {
			wc := wc.(map[string]any)
			switch name {
			case "remediator":
				wc["url"] = remediatorURL
				auth := wc["http_config"].(map[string]any)["authorization"].(map[string]any)
				auth["credentials_file"] = tokenFile
			case "oncall":
				wc["url"] = oncallURL
			case "chat":
				wc["url"] = chatURL
			}
			seen[name] = true
		}
	}
	if !seen["remediator"] || !seen["oncall"] || !seen["chat"] {
		t.Fatalf("%s: receivers remediator, oncall and chat with webhook_configs expected, found %v", configFile, seen)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

type postedAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt,omitempty"`
}

func postAlerts(t *testing.T, amURL string, alerts ...postedAlert) {
	t.Helper()
	if code, body := testutil.DoJSON(t, http.MethodPost, amURL+"/api/v2/alerts", alerts, nil); code != http.StatusOK {
		t.Fatalf("post alerts: %d: %s", code, body)
	}
}

// waitInhibits posts the warning and waits until Alertmanager's API reports it suppressed by the
// critical one, so the notification that follows shows the inhibit rule's effect.
func waitInhibits(t *testing.T, amURL string, warning map[string]string, start time.Time) {
	t.Helper()
	postAlerts(t, amURL, postedAlert{Labels: warning, StartsAt: start})
	inhibited := testutil.Poll(15*time.Second, 100*time.Millisecond, func() bool {
		var alerts []struct {
			Status struct {
				State       string   `json:"state"`
				InhibitedBy []string `json:"inhibitedBy"`
			} `json:"status"`
		}
		testutil.GetJSON(t, amURL+"/api/v2/alerts?filter="+url.QueryEscape(`severity="warning"`), &alerts)
		return len(alerts) == 1 && alerts[0].Status.State == "suppressed" && len(alerts[0].Status.InhibitedBy) > 0
	})
	if !inhibited {
		t.Fatalf("the warning %v was never inhibited by its critical alert", warning)
	}
}

// TestAlertmanagerDeliversAsRouted runs the real Alertmanager with the shipped configuration and
// follows one healable incident and one escalation through it.
func TestAlertmanagerDeliversAsRouted(t *testing.T) {
	remediator, oncall := testutil.StartReceiver(t), testutil.StartReceiver(t)
	token := "test-token-" + fmt.Sprint(time.Now().UnixNano())
	tokenFile := filepath.Join(t.TempDir(), "webhook-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chat := testutil.StartReceiver(t)
	am := testutil.StartAlertmanager(t, testConfig(t, remediator.URL+"/webhook", oncall.URL+"/oncall", chat.URL+"/chat", tokenFile))

	target := map[string]string{"service": "user-service", "instance": "user-service:8080", "container": "user-service", "job": "demo-services"}
	memory := func(severity string) map[string]string {
		l := map[string]string{"alertname": "ServiceMemoryHigh", "severity": severity, "remediation": "auto"}
		for k, v := range target {
			l[k] = v
		}
		return l
	}
	escalation := map[string]string{"alertname": "RemediatorBudgetExhausted", "severity": "critical", "team": "remediator", "target": "order-service", "job": "remediator", "instance": "remediator:9096"}
	start := time.Now().Add(-time.Minute)
	// The critical alert goes first: Alertmanager's inhibitor learns of alerts asynchronously, so
	// a warning flushed in the same instant as its critical can slip through on a loaded machine.
	// That race is Alertmanager's, not the configuration's, which is what this test is about.
	postAlerts(t, am,
		postedAlert{Labels: memory("critical"), StartsAt: start},
		postedAlert{Labels: escalation, StartsAt: start},
	)
	waitInhibits(t, am, memory("warning"), start)

	// The healable incident reaches the remediator with the token, and only its critical alert:
	// the warning of the same alert and instance is inhibited.
	n := remediator.WaitFor(t, "firing at the remediator", 30*time.Second, func(n testutil.Notification) bool { return n.Status == "firing" })
	if n.Receiver != "remediator" {
		t.Errorf("receiver %q, want remediator", n.Receiver)
	}
	if want := "Bearer " + token; n.Authorization != want {
		t.Errorf("Authorization %q, want %q (token from credentials_file)", n.Authorization, want)
	}
	if len(n.Alerts) != 1 || n.Alerts[0].Labels["severity"] != "critical" || n.Alerts[0].Labels["alertname"] != "ServiceMemoryHigh" {
		t.Errorf("alerts %+v, want the critical ServiceMemoryHigh only (the warning inhibited)", n.Alerts)
	}

	// The escalation reaches a person, not the remediator, in a notification of its own. (The
	// healable alert reaches oncall too, on its own route: it started a minute ago, so
	// Alertmanager flushes it without waiting; see docs/alerting.md.)
	e := oncall.WaitFor(t, "the escalation at oncall", 30*time.Second, func(n testutil.Notification) bool {
		return n.Status == "firing" && slices.ContainsFunc(n.Alerts, func(a testutil.NotifiedAlert) bool { return a.Labels["alertname"] == "RemediatorBudgetExhausted" })
	})
	if len(e.Alerts) != 1 {
		t.Errorf("oncall got %+v, want RemediatorBudgetExhausted only", e.Alerts)
	}
	if e.Authorization != "" {
		t.Errorf("the webhook token leaked to the oncall receiver: %q", e.Authorization)
	}

	// Healed: the resolved notification tells the remediator the episode is over.
	end := time.Now()
	postAlerts(t, am,
		postedAlert{Labels: memory("warning"), StartsAt: start, EndsAt: end},
		postedAlert{Labels: memory("critical"), StartsAt: start, EndsAt: end},
	)
	remediator.WaitFor(t, "resolved at the remediator", 30*time.Second, func(n testutil.Notification) bool { return n.Status == "resolved" })

	for _, n := range remediator.Notifications() {
		for _, a := range n.Alerts {
			if strings.HasPrefix(a.Labels["alertname"], "Remediator") {
				t.Errorf("the remediator was sent its own alert %v", a.Labels)
			}
		}
	}
}

// TestPagerHearsWhatPeopleAreTold runs the real Alertmanager with the shipped configuration and
// the demo stack's pager behind its people's receivers (as docker-compose.yml wires them): a
// failed heal reaches the pager as both oncall and chat, and the remediator's webhook is not
// bothered with it.
func TestPagerHearsWhatPeopleAreTold(t *testing.T) {
	p, err := pager.New(pager.Config{Receivers: []string{"oncall", "chat"}, Keep: 100, MaxBodyBytes: 1 << 20}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	pg := httptest.NewServer(p.Handler())
	defer pg.Close()
	remediator := testutil.StartReceiver(t)
	tokenFile := filepath.Join(t.TempDir(), "webhook-token")
	if err := os.WriteFile(tokenFile, []byte("test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	am := testutil.StartAlertmanager(t, testConfig(t, remediator.URL+"/webhook", pg.URL+"/oncall", pg.URL+"/chat", tokenFile))
	failed := map[string]string{"alertname": "RemediationFailed", "severity": "critical", "target": "user-service",
		"playbook": "memory-leak", "original_alertname": "ServiceMemoryHigh", "job": "remediator", "instance": "remediator:9096"}
	postAlerts(t, am, postedAlert{Labels: failed, Annotations: map[string]string{"summary": "heal of user-service failed"}, StartsAt: time.Now()})
	heard := func(receiver string) bool {
		var got struct {
			Pages []pager.Page `json:"pages"`
		}
		testutil.GetJSON(t, pg.URL+"/api/v1/pages?receiver="+receiver, &got)
		for _, page := range got.Pages {
			for _, a := range page.Alerts {
				if a.Status == "firing" && a.Labels["alertname"] == "RemediationFailed" && a.Labels["target"] == "user-service" {
					return true
				}
			}
		}
		return false
	}
	if !testutil.Poll(30*time.Second, 100*time.Millisecond, func() bool { return heard("oncall") && heard("chat") }) {
		t.Fatalf("the failed heal reached the pager as oncall %v, as chat %v; want both", heard("oncall"), heard("chat"))
	}
	if n := len(remediator.Notifications()); n != 0 {
		t.Errorf("the remediator was sent %d notifications of its own alert", n)
	}
}
