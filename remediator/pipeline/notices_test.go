package pipeline

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/notify"
	"github.com/selfheal/selfheal/remediator/store"
)

// newNoticeHarness is newHarness with a notifier that tells the Alertmanager at am.
func newNoticeHarness(t *testing.T, dir, yaml, am string, prom *fakeProm, runner *fakeRunner) *harness {
	t.Helper()
	cfg := mustConfig(t, yaml)
	cfg.Global.Alertmanager = &config.Alertmanager{URL: am, HTTPConfig: commoncfg.DefaultHTTPClientConfig}
	n := notify.New(notify.Options{ExternalURL: "http://remediator.test", Refresh: time.Second})
	return startHarness(t, dir, cfg, prom, runner, n)
}

type amSilence struct {
	ID        string `json:"id"`
	CreatedBy string `json:"createdBy"`
	Comment   string `json:"comment"`
	EndsAt    time.Time
	Status    struct{ State string } `json:"status"`
}

func silencesAt(t *testing.T, am string) []amSilence {
	t.Helper()
	var out []amSilence
	amGet(t, am+"/api/v2/silences", &out)
	return out
}

type amAlertJSON struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		SilencedBy []string `json:"silencedBy"`
	} `json:"status"`
}

// postToAM fires an alert at Alertmanager, as Prometheus would.
func postToAM(t *testing.T, am string, labels map[string]string) {
	t.Helper()
	body, _ := json.Marshal([]map[string]any{{"labels": labels, "startsAt": time.Now().Format(time.RFC3339)}})
	resp, err := http.Post(am+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s/api/v2/alerts: %s", am, resp.Status)
	}
}

func alertsAtAM(t *testing.T, am string) []amAlertJSON {
	t.Helper()
	var out []amAlertJSON
	amGet(t, am+"/api/v2/alerts", &out)
	return out
}

func amGet(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func withAlertname(as []amAlertJSON, name string) []amAlertJSON {
	var out []amAlertJSON
	for _, a := range as {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// TestSilenceWhileHealing: a heal silences its alert while it acts, lists the silence in its
// record and expires it when it ends; a failed heal raises RemediationFailed.
func TestSilenceWhileHealing(t *testing.T) {
	am := testutil.StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	runner := newFakeRunner()
	runner.block = make(chan struct{})
	runner.fail["flush-cache"], runner.fail["restart"] = true, true
	yaml := playbooks(t, fastVerify, edit{"defaults:\n", "defaults:\n  silence: true\n"})
	h := newNoticeHarness(t, t.TempDir(), yaml, am, firingProm("ServiceMemoryHigh"), runner)

	a := alert("ServiceMemoryHigh", "user-service", "firing")
	a.Annotations = map[string]string{"runbook_url": "https://runbooks.example/memory"}
	h.deliver(a)
	var sil amSilence
	waitFor(t, func() bool {
		for _, s := range silencesAt(t, am) {
			if s.Status.State == "active" {
				sil = s
				return true
			}
		}
		return false
	})
	// The heal records the silence once Alertmanager answered with its id: just after.
	var hs []store.Heal
	if !testutil.Poll(5*time.Second, 10*time.Millisecond, func() bool {
		hs = h.heals()
		return len(hs) == 1 && slices.Equal(hs[0].Silences, []string{sil.ID})
	}) {
		t.Fatalf("heal record %+v does not list the silence %s", hs, sil.ID)
	}
	if sil.CreatedBy != notify.CreatedBy || sil.Comment == "" {
		t.Errorf("silence %+v", sil)
	}
	// Alertmanager mutes both levels of the alert under the heal's silence: the critical one it
	// acts on and the warning of the same target; not another target's.
	postToAM(t, am, map[string]string{"alertname": "ServiceMemoryHigh", "container": "user-service", "severity": "warning", "service": "user-service", "instance": "user-service:8080", "job": "demo"})
	postToAM(t, am, map[string]string{"alertname": "ServiceMemoryHigh", "container": "order-service", "severity": "critical", "service": "order-service", "instance": "order-service:8080", "job": "demo"})
	waitFor(t, func() bool { return len(withAlertname(alertsAtAM(t, am), "ServiceMemoryHigh")) == 2 })
	for _, a := range withAlertname(alertsAtAM(t, am), "ServiceMemoryHigh") {
		silenced := slices.Contains(a.Status.SilencedBy, sil.ID)
		if want := a.Labels["container"] == "user-service"; silenced != want {
			t.Errorf("%s/%s silenced by the heal's silence: %v, want %v", a.Labels["container"], a.Labels["severity"], silenced, want)
		}
	}
	// Bounded by the heal's longest run: two steps of 2s, two verifications of 300ms, slack.
	if limit := hs[0].Started.Add(4*time.Second + 600*time.Millisecond + silenceSlack + time.Second); sil.EndsAt.After(limit) || sil.EndsAt.Before(time.Now()) {
		t.Errorf("silence ends at %s, want after now and before %s", sil.EndsAt, limit)
	}
	close(runner.block)
	h.idle()
	waitFor(t, func() bool {
		for _, s := range silencesAt(t, am) {
			if s.ID == sil.ID {
				return s.Status.State == "expired"
			}
		}
		return false
	})
	if hs := h.heals(); len(hs) != 1 || hs[0].Result != store.HealFailed {
		t.Fatalf("heals %+v, want one failed", hs)
	}
	var failed []amAlertJSON
	waitFor(t, func() bool {
		failed = withAlertname(alertsAtAM(t, am), notify.AlertFailed)
		return len(failed) == 1
	})
	l := failed[0].Labels
	if l["target"] != "user-service" || l["playbook"] != "memory-high" || l["original_alertname"] != "ServiceMemoryHigh" || l["severity"] != "critical" {
		t.Errorf("RemediationFailed labels %v", l)
	}
	if an := failed[0].Annotations; an["runbook_url"] != "https://runbooks.example/memory" || an["heal_url"] != "http://remediator.test/api/v1/heals/"+hs[0].ID {
		t.Errorf("RemediationFailed annotations %v", an)
	}

	// The alert resolves: the failure notice ends.
	h.deliver(alert("ServiceMemoryHigh", "user-service", "resolved"))
	waitFor(t, func() bool { return len(withAlertname(alertsAtAM(t, am), notify.AlertFailed)) == 0 })
}

// TestDeclinedBlastRadius: an alert the blast radius holds back is declined with its reason.
func TestDeclinedBlastRadius(t *testing.T) {
	am := testutil.StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	yaml := playbooks(t, edit{"blast_radius: {max_targets: 0,", "blast_radius: {max_targets: 1,"})
	h := newNoticeHarness(t, t.TempDir(), yaml, am, quietProm(), newFakeRunner())
	h.deliver(alert("ServiceMemoryHigh", "a", "firing"), alert("ServiceMemoryHigh", "b", "firing"))
	h.idle()
	var declined []amAlertJSON
	waitFor(t, func() bool {
		declined = withAlertname(alertsAtAM(t, am), notify.AlertDeclined)
		return len(declined) > 0
	})
	if l := declined[0].Labels; l["reason"] != ReasonBlastRadius || l["original_alertname"] != "ServiceMemoryHigh" {
		t.Errorf("RemediationDeclined labels %v", l)
	}
}

// TestSweepAfterRestart: a heal cut short by a stop leaves its silence; the restart expires it.
func TestSweepAfterRestart(t *testing.T) {
	am := testutil.StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	dir := t.TempDir()
	runner := newFakeRunner()
	runner.block = make(chan struct{})
	yaml := playbooks(t, edit{"defaults:\n", "defaults:\n  silence: true\n"})
	h := newNoticeHarness(t, dir, yaml, am, firingProm("ServiceMemoryHigh"), runner)
	h.deliver(alert("ServiceMemoryHigh", "user-service", "firing"))
	var id string
	waitFor(t, func() bool {
		for _, s := range silencesAt(t, am) {
			if s.Status.State == "active" {
				id = s.ID
			}
		}
		return id != ""
	})
	h.stop() // the heal is cut short: its silence stays
	for _, s := range silencesAt(t, am) {
		if s.ID == id && s.Status.State != "active" {
			t.Fatalf("silence %s is %s after the stop, want active until the restart sweeps it", id, s.Status.State)
		}
	}
	newNoticeHarness(t, dir, yaml, am, firingProm("ServiceMemoryHigh"), newFakeRunner())
	waitFor(t, func() bool {
		for _, s := range silencesAt(t, am) {
			if s.ID == id {
				return s.Status.State == "expired"
			}
		}
		return false
	})
}

// TestDeclinedInvalidTarget: an alert whose target cannot be named is declined with
// invalid_target, and the notice ends when the alert resolves though it names no target.
func TestDeclinedInvalidTarget(t *testing.T) {
	am := testutil.StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	h := newNoticeHarness(t, t.TempDir(), playbooks(t), am, quietProm(), newFakeRunner())
	h.deliver(alert("ServiceMemoryHigh", "../etc", "firing"))
	h.idle()
	var declined []amAlertJSON
	waitFor(t, func() bool {
		declined = withAlertname(alertsAtAM(t, am), notify.AlertDeclined)
		return len(declined) == 1
	})
	if l := declined[0].Labels; l["reason"] != ReasonInvalidTarget || l["playbook"] != "memory-high" || l["target"] != "" {
		t.Errorf("RemediationDeclined labels %v", l)
	}
	if len(h.runner.Calls()) != 0 {
		t.Errorf("acted on an alert without a valid target: %v", h.runner.Calls())
	}
	h.deliver(alert("ServiceMemoryHigh", "../etc", "resolved"))
	waitFor(t, func() bool { return len(withAlertname(alertsAtAM(t, am), notify.AlertDeclined)) == 0 })
}

// TestAwaitingApprovalReachesPeople: a heal that waits for approval raises
// RemediationAwaitingApproval at Alertmanager with the approve and reject endpoints; the answer
// ends it.
func TestAwaitingApprovalReachesPeople(t *testing.T) {
	am := testutil.StartAlertmanager(t, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
	h := newNoticeHarness(t, t.TempDir(), playbooks(t, fastVerify, approvalOn("1h")), am, quietProm(), newFakeRunner())
	h.deliver(alert("ServiceMemoryHigh", "c1", "firing"))
	id := h.awaiting()
	var waiting []amAlertJSON
	waitFor(t, func() bool {
		waiting = withAlertname(alertsAtAM(t, am), notify.AlertAwaitingApproval)
		return len(waiting) > 0
	})
	l, a := waiting[0].Labels, waiting[0].Annotations
	if l["target"] != "c1" || l["original_alertname"] != "ServiceMemoryHigh" {
		t.Errorf("RemediationAwaitingApproval labels %v", l)
	}
	if want := "http://remediator.test/api/v1/heals/" + id + "/approve"; a["approve_url"] != want || a["reject_url"] != strings.TrimSuffix(want, "approve")+"reject" {
		t.Errorf("RemediationAwaitingApproval annotations %v, want approve_url %s", a, want)
	}
	if err := h.p.Approve(id, "alice", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(withAlertname(alertsAtAM(t, am), notify.AlertAwaitingApproval)) == 0 })
}
