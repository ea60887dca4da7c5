package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

// People in the loop, through the shipped Alertmanager routes: the remediator silences an alert
// while it heals it, so the person's route (which waits longer than the remediator's) stays
// quiet; when a heal fails or is declined, a person hears of it at once.

// amSilence is one silence of Alertmanager's GET /api/v2/silences.
type amSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	EndsAt    time.Time `json:"endsAt"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

// silence returns Alertmanager's silence of that id.
func (s *stack) silence(t *testing.T, id string) (amSilence, bool) {
	var all []amSilence
	testutil.GetJSON(t, s.amURL+"/api/v2/silences", &all)
	for _, sl := range all {
		if sl.ID == id {
			return sl, true
		}
	}
	return amSilence{}, false
}

// matches reports whether the silence's matchers hold for labels, as Alertmanager reads them
// for the equality matchers the remediator writes.
func (sl amSilence) matches(labels map[string]string) bool {
	for _, m := range sl.Matchers {
		if m.IsRegex || (m.IsEqual != nil && !*m.IsEqual) || labels[m.Name] != m.Value {
			return false
		}
	}
	return len(sl.Matchers) > 0
}

// pages returns the person's notifications (receiver oncall) since a time holding a firing
// alert that matches, in arrival order.
func (s *stack) pages(since time.Time, match map[string]string) []testutil.Notification {
	return s.oncall.FiringSince(since, "oncall", match)
}

// 13. A heal that fails: the fault lives in the container's environment, so its restart cannot
// heal it. While the heal acts, its alert is silenced and the person is not paged; when it fails
// the silence is expired and the person is paged with the original alert within one group
// interval, and RemediationFailed says which heal failed.
func failedHealPages(t *testing.T, s *stack, tl *timeline) {
	c := cStock
	s.startUnhealable(t, tl, c, "stock-service")
	defer s.removeContainer(c)

	// The first heal acts, and while it does its silence holds at Alertmanager.
	var h heal
	var sl amSilence
	if !testutil.Poll(healTimeout, poll, func() bool {
		hs := s.healsSince(t, c, tl.Injected)
		if len(hs) == 0 || len(hs[0].Silences) == 0 {
			return false
		}
		h = hs[0]
		var ok bool
		sl, ok = s.silence(t, h.Silences[0])
		return ok
	}) {
		t.Fatalf("no heal of %s with a silence at Alertmanager; heals %v", c, s.healsSince(t, c, tl.Injected))
	}
	if h.Result == "running" && sl.Status.State != "active" {
		t.Errorf("silence %s of the running heal %s is %s, want active", sl.ID, h.ID, sl.Status.State)
	}
	if sl.CreatedBy != "remediator" || !strings.Contains(sl.Comment, h.ID) {
		t.Errorf("silence %s: createdBy %q, comment %q; want remediator and the heal id %s", sl.ID, sl.CreatedBy, sl.Comment, h.ID)
	}
	if h.Alert.Labels["container"] != c || !sl.matches(h.Alert.Labels) {
		t.Errorf("silence %s does not match the alert of heal %s (%v): %+v", sl.ID, h.ID, h.Alert.Labels, sl.Matchers)
	}

	// It fails (verification times out: the restarted container is partitioned again).
	if !testutil.Poll(healTimeout, poll, func() bool {
		h = s.healByID(t, c, h.ID)
		return h.Result != "running"
	}) {
		t.Fatalf("heal %s of %s still running after %s", h.ID, c, healTimeout)
	}
	tl.FirstAction, tl.Verified = h.firstAction(), h.Ended
	tl.Received = s.targets.firstFiring(c, tl.Injected)
	if h.Result != "failed" {
		t.Fatalf("heal %s of the unhealable %s ended %s, want failed: %s", h.ID, c, h.Result, h)
	}
	// The notifier expires it right after the heal record is written, from its own goroutine.
	if !testutil.Poll(5*time.Second, poll, func() bool {
		sl, _ = s.silence(t, sl.ID)
		return sl.Status.State == "expired"
	}) {
		t.Errorf("silence %s still %s 5s after heal %s failed", sl.ID, sl.Status.State, h.ID)
	}

	// The person: paged with the original alert once the heal failed, never while it acted.
	orig := map[string]string{"alertname": "ServiceDown", "container": c}
	var page testutil.Notification
	if !testutil.Poll(30*time.Second, poll, func() bool {
		ps := s.pages(tl.Injected, orig)
		if len(ps) > 0 {
			page = ps[0]
		}
		return len(ps) > 0
	}) {
		t.Fatalf("the person was never paged with %s's ServiceDown after heal %s failed", c, h.ID)
	}
	tl.Resolved = page.At
	if page.At.Before(h.Ended) {
		t.Errorf("the person was paged with %s's ServiceDown at %s, while heal %s acted (until %s)", c, clock(page.At), h.ID, clock(h.Ended))
	}
	// Alertmanager sends what the silence held back at the group's next flush.
	after := page.At.Sub(h.Ended)
	groupInterval := s.groupInterval(t)
	if after > groupInterval+3*time.Second {
		t.Errorf("the person was paged %s after heal %s failed, want within one group interval (%s) and delivery", after.Round(100*time.Millisecond), h.ID, groupInterval)
	}
	// And told which heal failed, with a link to it.
	_, failed, ok := s.oncall.FiringAlert(map[string]string{"alertname": "RemediationFailed", "target": c})
	if !ok {
		testutil.Poll(20*time.Second, poll, func() bool {
			_, failed, ok = s.oncall.FiringAlert(map[string]string{"alertname": "RemediationFailed", "target": c})
			return ok
		})
	}
	if !ok {
		t.Errorf("RemediationFailed for %s never reached a person", c)
	} else if failed.Labels["original_alertname"] != "ServiceDown" || !strings.HasSuffix(failed.Annotations["heal_url"], "/api/v1/heals/"+h.ID) {
		t.Errorf("RemediationFailed for %s: labels %v, annotations %v; want original_alertname ServiceDown and the heal's link", c, failed.Labels, failed.Annotations)
	}
	tl.Note = fmt.Sprintf("heal %s acted under silence %s and failed; *verified* is here when it failed and *resolved* when the person was paged with the original alert, %.1f s later (group interval %s)",
		h.ID, sl.ID, after.Seconds(), groupInterval)
}

// 14. Four targets of one playbook down at once: more than its blast radius (three), so the
// remediator suspects a shared cause and declines the heal of at least one of them; the person
// hears of it, with the reason, and is paged with that target's own alert (no silence holds it).
func blastRadiusDeclined(t *testing.T, s *stack, tl *timeline) {
	tl.Target, tl.Alert = cShelves[0], "ServiceDown"
	tl.Others = cShelves[1:]
	for _, c := range cShelves {
		s.addService(t, &service{Container: c, Service: "shelf-service", Port: s.addrs.Ports[c], Heal: true})
	}
	defer func() {
		for _, c := range cShelves {
			s.removeContainer(c)
		}
	}()
	s.waitTargetsUp(t, time.Minute)
	for _, c := range cShelves {
		at := s.chaos(t, c, "partition", url.Values{"seconds": {"600"}})
		if tl.Injected.IsZero() {
			tl.Injected = at
		}
	}

	// The notice of the decline, at the person's receiver (and chat), with its reason.
	var declined testutil.NotifiedAlert
	var at time.Time
	if !testutil.Poll(time.Minute, poll, func() bool {
		for _, c := range cShelves {
			var ok bool
			if at, declined, ok = s.oncall.FiringAlert(map[string]string{"alertname": "RemediationDeclined", "target": c, "reason": "blast_radius"}); ok {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no RemediationDeclined with reason blast_radius reached a person for %v; notifications %+v", cShelves, s.oncall.Notifications())
	}
	target := declined.Labels["target"]
	tl.Target, tl.Verified = target, at
	ep := s.alerts.waitFiring(t, "ServiceDown", map[string]string{"container": target}, tl.Injected, fireTimeout)
	tl.Pending, tl.Firing = ep.Pending, ep.Firing
	tl.Others = slices.DeleteFunc(slices.Clone(cShelves), func(c string) bool { return c == target })
	if declined.Labels["original_alertname"] != "ServiceDown" || declined.Labels["playbook"] != "service-down" {
		t.Errorf("RemediationDeclined for %s: labels %v, want original_alertname ServiceDown and playbook service-down", target, declined.Labels)
	}
	if !strings.Contains(declined.Annotations["summary"], "at once") {
		t.Errorf("RemediationDeclined for %s says %q, want the blast radius explained", target, declined.Annotations["summary"])
	}
	var receivers []string
	for _, n := range s.oncall.Notifications() {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == "RemediationDeclined" && a.Labels["target"] == target && a.Status == "firing" && !slices.Contains(receivers, n.Receiver) {
				receivers = append(receivers, n.Receiver)
			}
		}
	}
	if !slices.Contains(receivers, "oncall") || !slices.Contains(receivers, "chat") {
		t.Errorf("RemediationDeclined for %s reached %v, want oncall and chat", target, receivers)
	}
	// Nothing was done to the declined target, and its own alert pages the person.
	if hs := s.healsSince(t, target, tl.Injected); len(hs) > 0 {
		t.Errorf("%s was declined for the blast radius, yet healed: %v", target, hs)
	}
	if !testutil.Poll(30*time.Second, poll, func() bool {
		return len(s.pages(tl.Injected, map[string]string{"alertname": "ServiceDown", "container": target})) > 0
	}) {
		t.Errorf("the person was never paged with the declined %s's ServiceDown", target)
	} else {
		tl.Resolved = s.pages(tl.Injected, map[string]string{"alertname": "ServiceDown", "container": target})[0].At
	}
	// The heals the remediator did start end before the containers go, so that the next
	// scenario, or the dashboards, see a settled loop.
	testutil.Poll(3*time.Minute, poll, func() bool {
		for _, c := range cShelves {
			for _, h := range s.healsSince(t, c, tl.Injected) {
				if h.Result == "running" {
					return false
				}
			}
		}
		return true
	})
	tl.Received = s.targets.firstFiring(target, tl.Injected)
	healed := 0
	for _, c := range cShelves {
		for _, h := range s.healsSince(t, c, tl.Injected) {
			if h.Result == "healed" {
				healed++
			}
		}
	}
	tl.Note = fmt.Sprintf("%s declined (blast radius); %d of the other three healed meanwhile (the service-down playbook's window also counts earlier scenarios' targets); *verified* is here when RemediationDeclined reached the person and *resolved* when the person was paged with the declined target's own alert", target, healed)
}

// groupInterval is the group_interval the test's Alertmanager runs the healable alerts' routes
// with: the shipped root's, scaled like every other.
func (s *stack) groupInterval(t *testing.T) time.Duration {
	var cfg struct {
		Route struct {
			GroupInterval string `yaml:"group_interval"`
		} `yaml:"route"`
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "alertmanager.yml"))
	if err == nil {
		err = yaml.Unmarshal(b, &cfg)
	}
	d, ok := parseDur(cfg.Route.GroupInterval)
	if err != nil || !ok {
		t.Fatalf("the test's alertmanager.yml: group_interval %q: %v", cfg.Route.GroupInterval, err)
	}
	return d
}
