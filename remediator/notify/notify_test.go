package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	commoncfg "github.com/prometheus/common/config"

	tu "github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

const blackhole = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"

func amConfig(u string) *config.Alertmanager {
	return &config.Alertmanager{URL: u, HTTPConfig: commoncfg.DefaultHTTPClientConfig}
}

func newNotifier(t *testing.T, amURL string, o Options) *Notifier {
	t.Helper()
	o.Registerer = prometheus.NewRegistry()
	if o.ExternalURL == "" {
		o.ExternalURL = "http://remediator.test:9096/"
	}
	n := New(o)
	if err := n.Configure(amConfig(amURL)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return n
}

// amAlert is what the test reads of Alertmanager's GET /api/v2/alerts.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State      string   `json:"state"`
		SilencedBy []string `json:"silencedBy"`
	} `json:"status"`
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// eventually polls ok for up to 15s.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 15s: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func alertsAt(t *testing.T, am string) []amAlert {
	var out []amAlert
	getJSON(t, am+"/api/v2/alerts", &out)
	return out
}

func find(alerts []amAlert, alertname string) *amAlert {
	for i := range alerts {
		if alerts[i].Labels["alertname"] == alertname {
			return &alerts[i]
		}
	}
	return nil
}

// TestSilenceMatchesOnlyTheAlert silences an alert whose label values look like matcher syntax
// and regular expressions: they must be matched as plain values, so the silence mutes that
// alert and no other.
func TestSilenceMatchesOnlyTheAlert(t *testing.T) {
	am := tu.StartAlertmanager(t, blackhole)
	n := newNotifier(t, am, Options{})
	hostile := map[string]string{"alertname": "ServiceMemoryHigh", "container": `.*`, "instance": `x", alertname=~".+`, "empty": ""}
	other := map[string]string{"alertname": "ServiceMemoryHigh", "container": "user-service", "instance": "user-service:8080"}
	post := func(ls ...map[string]string) {
		var alerts []map[string]any
		for _, l := range ls {
			alerts = append(alerts, map[string]any{"labels": l, "startsAt": time.Now().Add(-time.Minute)})
		}
		b, _ := json.Marshal(alerts)
		resp, err := http.Post(am+"/api/v2/alerts", "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("post alerts: %s", resp.Status)
		}
	}
	post(hostile, other)

	id := n.Silence(context.Background(), "h-42", "user-service", hostile, time.Now().Add(10*time.Minute))
	if id == "" {
		t.Fatal("no silence created")
	}
	var sil struct {
		CreatedBy string `json:"createdBy"`
		Comment   string `json:"comment"`
		Matchers  []struct {
			Name    string `json:"name"`
			Value   string `json:"value"`
			IsRegex bool   `json:"isRegex"`
			IsEqual *bool  `json:"isEqual"`
		} `json:"matchers"`
	}
	getJSON(t, am+"/api/v2/silence/"+id, &sil)
	if sil.CreatedBy != CreatedBy || !strings.HasPrefix(sil.Comment, "Heal h-42 of user-service ") ||
		!strings.HasSuffix(sil.Comment, "http://remediator.test:9096/api/v1/heals/h-42") {
		t.Errorf("silence createdBy %q comment %q", sil.CreatedBy, sil.Comment)
	}
	if len(sil.Matchers) != 3 {
		t.Fatalf("matchers %+v, want alertname, container, instance (the empty label left out)", sil.Matchers)
	}
	for _, m := range sil.Matchers {
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) || m.Value != hostile[m.Name] {
			t.Errorf("matcher %+v is not an equality matcher on the alert's value %q", m, hostile[m.Name])
		}
	}
	eventually(t, "the silenced alert is suppressed and the other is not", func() bool {
		var hostileState, otherState string
		for _, a := range alertsAt(t, am) {
			switch a.Labels["container"] {
			case `.*`:
				hostileState = a.Status.State
			case "user-service":
				otherState = a.Status.State
			}
		}
		return hostileState == "suppressed" && otherState == "active"
	})
	if got := testutil.ToFloat64(n.m.silences); got != 1 {
		t.Errorf("remediator_alertmanager_silences = %v, want 1", got)
	}

	n.Unsilence(time.Now().Add(10*time.Minute), id)
	eventually(t, "the silence is expired", func() bool {
		var s struct {
			Status struct{ State string } `json:"status"`
		}
		getJSON(t, am+"/api/v2/silence/"+id, &s)
		return s.Status.State == "expired"
	})
	// Expiring again (a retry after a lost answer) is no error.
	c, _ := NewClient(amConfig(am))
	if err := c.ExpireSilence(context.Background(), id); err != nil {
		t.Errorf("expire an expired silence: %v", err)
	}
	if got := testutil.ToFloat64(n.m.failures.WithLabelValues(opExpireSilence)); got != 0 {
		t.Errorf("expire failures %v, want 0", got)
	}
	if got := testutil.ToFloat64(n.m.silences); got != 0 {
		t.Errorf("remediator_alertmanager_silences = %v after the expiry, want 0", got)
	}
}

func TestNoticesHoldAndEnd(t *testing.T) {
	am := tu.StartAlertmanager(t, blackhole)
	n := newNotifier(t, am, Options{Refresh: 500 * time.Millisecond})
	orig := AlertRef{Name: "ServiceMemoryHigh", Severity: "critical", RunbookURL: "https://runbooks.example/memory"}
	n.Raise(Notice{Alertname: AlertDeclined, Reason: "blast_radius", Target: "user-service", Playbook: "memory-leak", Alert: orig, Summary: "declined"})
	var got *amAlert
	eventually(t, "RemediationDeclined at Alertmanager", func() bool {
		got = find(alertsAt(t, am), AlertDeclined)
		return got != nil
	})
	want := map[string]string{"alertname": AlertDeclined, "reason": "blast_radius", "target": "user-service", "playbook": "memory-leak",
		"original_alertname": "ServiceMemoryHigh", "original_severity": "critical", "severity": "critical"}
	for k, v := range want {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
		}
	}
	if got.Annotations["runbook_url"] != orig.RunbookURL || got.Annotations["summary"] != "declined" {
		t.Errorf("annotations %v", got.Annotations)
	}
	// Another reason replaces the first, which resolves.
	n.Raise(Notice{Alertname: AlertDeclined, Reason: "paused", Target: "user-service", Playbook: "memory-leak", Alert: orig, Summary: "paused"})
	eventually(t, "only the paused notice fires", func() bool {
		as := alertsAt(t, am)
		var reasons []string
		for _, a := range as {
			if a.Labels["alertname"] == AlertDeclined {
				reasons = append(reasons, a.Labels["reason"])
			}
		}
		return len(reasons) == 1 && reasons[0] == "paused"
	})
	// Held past its first endsAt by refreshes.
	time.Sleep(2 * time.Second)
	if find(alertsAt(t, am), AlertDeclined) == nil {
		t.Fatal("the notice was not refreshed while it holds")
	}
	if got := testutil.ToFloat64(n.m.alerts.WithLabelValues(AlertDeclined)); got != 1 {
		t.Errorf("remediator_alertmanager_alerts{alertname=RemediationDeclined} = %v, want 1", got)
	}
	n.End("", "user-service", "ServiceMemoryHigh")
	eventually(t, "the notice resolves", func() bool { return find(alertsAt(t, am), AlertDeclined) == nil })
	if got := testutil.ToFloat64(n.m.alerts.WithLabelValues(AlertDeclined)); got != 0 {
		t.Errorf("remediator_alertmanager_alerts{alertname=RemediationDeclined} = %v, want 0", got)
	}
}

// TestUnreachableAlertmanager: the remediator does not wait on an Alertmanager that is away,
// counts the failures, and delivers once it is back.
func TestUnreachableAlertmanager(t *testing.T) {
	port := tu.FreePort(t)
	down := "http://127.0.0.1:" + strconv.Itoa(port)
	n := newNotifier(t, down, Options{SilenceWait: 500 * time.Millisecond})
	start := time.Now()
	if id := n.Silence(context.Background(), "h-1", "t", map[string]string{"alertname": "A"}, time.Now().Add(time.Minute)); id != "" {
		t.Fatalf("silence %q from an Alertmanager that is down", id)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a heal waited %s for an unreachable Alertmanager", took)
	}
	n.Raise(Notice{Alertname: AlertFailed, Target: "t", Playbook: "p", Alert: AlertRef{Name: "A"}, Summary: "failed"})
	eventually(t, "post failures counted", func() bool {
		return testutil.ToFloat64(n.m.failures.WithLabelValues(opPostAlerts)) >= 2 &&
			testutil.ToFloat64(n.m.failures.WithLabelValues(opCreateSilence)) >= 1
	})
	// Alertmanager comes up (on another port: the reload case) and hears of the notice.
	am := tu.StartAlertmanager(t, blackhole)
	if err := n.Configure(amConfig(am)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the notice reaches the Alertmanager that came", func() bool { return find(alertsAt(t, am), AlertFailed) != nil })
}

func TestSweepExpiresSilencesOfEndedHeals(t *testing.T) {
	am := tu.StartAlertmanager(t, blackhole)
	c, err := NewClient(amConfig(am))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(comment string) string {
		id, err := c.CreateSilence(context.Background(), Silence{Labels: map[string]string{"alertname": "A"}, StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), Comment: comment})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ended, unknown := mk("Heal h-ended of t is acting ..."), mk("Heal h-other of t is acting ...")
	n := newNotifier(t, am, Options{})
	n.Sweep(func(id string) bool { return id == "h-ended" })
	state := func(id string) string {
		var s struct {
			Status struct{ State string } `json:"status"`
		}
		getJSON(t, am+"/api/v2/silence/"+url.PathEscape(id), &s)
		return s.Status.State
	}
	eventually(t, "the ended heal's silence is expired", func() bool { return state(ended) == "expired" })
	if s := state(unknown); s != "active" {
		t.Errorf("a silence of a heal this remediator does not know is %s, want it left active", s)
	}
}
