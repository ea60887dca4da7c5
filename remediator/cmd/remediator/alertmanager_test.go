package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// alertmanagerConfig derives the test config from the shipped alertmanager/alertmanager.yml.
// The differences, and nothing else: the remediator's address, the token file's path, and
// shorter group_wait/group_interval so the test runs in seconds.
func alertmanagerConfig(t *testing.T, remediatorURL, tokenFile string) string {
	t.Helper()
	return deriveAlertmanagerConfig(t,
		replacement{`http://remediator:9096/webhook`, remediatorURL + "/webhook"},
		replacement{`credentials_file: \S+`, "credentials_file: " + tokenFile},
		replacement{`group_wait: \S+`, "group_wait: 1s"},
		replacement{`group_interval: \S+`, "group_interval: 1s"},
	)
}

// replacement is a change a test makes to the shipped alertmanager.yml: every match of re
// becomes with.
type replacement struct{ re, with string }

// deriveAlertmanagerConfig is the shipped alertmanager.yml with the replacements made; one
// that no longer matches fails the test, so the derivation cannot silently drift.
func deriveAlertmanagerConfig(t *testing.T, reps ...replacement) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "alertmanager", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for _, r := range reps {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(cfg) {
			t.Fatalf("alertmanager.yml no longer contains %q; update this test's derivation", r.re)
		}
		cfg = re.ReplaceAllLiteralString(cfg, r.with)
	}
	return cfg
}

type amAlert struct {
	Labels   map[string]string `json:"labels"`
	StartsAt time.Time         `json:"startsAt"`
	EndsAt   time.Time         `json:"endsAt,omitzero"`
}

func postAlert(t *testing.T, am string, a amAlert) {
	t.Helper()
	body, _ := json.Marshal([]amAlert{a})
	if code, res := testutil.Do(t, http.MethodPost, am+"/api/v2/alerts", string(body), nil); code != 200 {
		t.Fatalf("alertmanager: %d %s", code, res)
	}
}

func TestWithRealAlertmanager(t *testing.T) {
	bins := buildBinaries(t)
	testutil.LookPath(t, "prometheus-alertmanager", "alertmanager") // skip early, before starting anything
	dir := t.TempDir()
	token := testutil.WriteFile(t, dir, "token", "am-t0ken")
	rem := testutil.StartRemediator(t, bins+"/remediator", dir, testutil.Testdata(t, "playbooks.yml"), "--webhook.token-file="+token, "--log.level=debug")
	am := testutil.StartAlertmanager(t, alertmanagerConfig(t, rem.URL, token))
	demo := testutil.StartServer(t, "demo-service", bins+"/demo-service", "/readyz", "serve", "--service.name=user-service")
	instance := strings.TrimPrefix(demo.URL, "http://")

	labels := func(alertname, container string) map[string]string {
		return map[string]string{"alertname": alertname, "remediation": "auto", "service": "user-service",
			"instance": instance, "container": container, "severity": "critical"}
	}
	// waitStep waits until the target's newest heal runs the given step (written before it acts).
	waitStep := func(target, step string) {
		testutil.Eventually(t, 20*time.Second, target+" running "+step, func() bool {
			hs := heals(t, rem.URL, "?target="+target)
			if len(hs) == 0 {
				return false
			}
			for _, s := range hs[0].Steps {
				if s.Name == step && s.Outcome == "running" {
					return true
				}
			}
			return false
		})
	}

	// waitHealed waits until the target's one heal is verified healed, and returns it.
	waitHealed := func(t *testing.T, target, what string) healJSON {
		t.Helper()
		testutil.Eventually(t, 20*time.Second, what, func() bool {
			hs := heals(t, rem.URL, "?target="+target)
			return len(hs) == 1 && hs[0].Result == "healed"
		})
		return heals(t, rem.URL, "?target="+target)[0]
	}

	t.Run("flush heals and is verified by the resolved notification", func(t *testing.T) {
		testutil.Do(t, http.MethodPost, demo.URL+"/chaos/memory-leak?rate_mb=4&kind=flushable", "", nil)
		testutil.Eventually(t, 10*time.Second, "the leak to grow", func() bool {
			return !strings.Contains(testutil.GetText(t, demo.URL+"/metrics"), `demo_memory_leaked_bytes{kind="flushable"} 0`)
		})
		a := amAlert{Labels: labels("ServiceMemoryHigh", "demo-a"), StartsAt: time.Now().Add(-time.Minute)}
		postAlert(t, am, a)
		waitStep("demo-a", "flush-cache")
		// The real recovery endpoint freed the leak; the alert resolves as Prometheus would say.
		testutil.Eventually(t, 10*time.Second, "the flush to free the leak", func() bool {
			return strings.Contains(testutil.GetText(t, demo.URL+"/metrics"), `demo_memory_leaked_bytes{kind="flushable"} 0`)
		})
		a.EndsAt = time.Now()
		postAlert(t, am, a)
		h := waitHealed(t, "demo-a", "the heal to be verified")
		if h.stepSummary() != "flush-cache=succeeded" || h.Playbook != "memory-high" || h.Alert.Name != "ServiceMemoryHigh" || h.Alert.Fingerprint == "" {
			t.Fatalf("heal %+v", h)
		}
	})

	t.Run("a step that does not heal escalates", func(t *testing.T) {
		testutil.Do(t, http.MethodPost, demo.URL+"/chaos/memory-leak?rate_mb=2&kind=unflushable", "", nil)
		a := amAlert{Labels: labels("ServiceMemoryHigh", "demo-b"), StartsAt: time.Now().Add(-time.Minute)}
		a.Labels["instance"] = instance // same service, its own target
		a.Labels["service"] = "user-service-b"
		postAlert(t, am, a)
		waitStep("demo-b", "clear-faults")
		testutil.Eventually(t, 10*time.Second, "the faults to be cleared", func() bool {
			return strings.Contains(testutil.GetText(t, demo.URL+"/chaos"), `"faults":[]`)
		})
		a.EndsAt = time.Now()
		postAlert(t, am, a)
		h := waitHealed(t, "demo-b", "the escalated heal to be verified")
		if h.stepSummary() != "flush-cache=failed,clear-faults=succeeded" || h.Steps[0].Reason != "verification failed" {
			t.Fatalf("heal %+v", h)
		}
	})

	t.Run("a spent budget suspends the target and nothing more runs", func(t *testing.T) {
		a := amAlert{Labels: labels("ServiceCPUHigh", "demo-c"), StartsAt: time.Now().Add(-time.Minute)}
		postAlert(t, am, a)
		suspended := `remediator_target_suspended{target="demo-c"} 1`
		testutil.Eventually(t, 30*time.Second, "the target to be suspended", func() bool {
			return strings.Contains(testutil.GetText(t, rem.URL+"/metrics"), suspended)
		})
		// A new episode of the same alert arrives while suspended.
		b := amAlert{Labels: labels("ServiceCPUHigh", "demo-c"), StartsAt: time.Now()}
		b.Labels["severity"] = "warning"
		postAlert(t, am, b)
		time.Sleep(4 * time.Second)
		hs := heals(t, rem.URL, "?target=demo-c")
		if len(hs) != 2 {
			t.Fatalf("%d heals, want exactly the budget of 2", len(hs))
		}
		for _, h := range hs {
			if h.Result != "failed" {
				t.Fatalf("heal %+v", h)
			}
		}
		m := testutil.GetText(t, rem.URL+"/metrics")
		if !strings.Contains(m, suspended) || !strings.Contains(m, fmt.Sprintf(`remediator_target_state{target="demo-c"} %d`, 5)) {
			t.Fatal("suspension not in metrics")
		}
		if !regexp.MustCompile(`remediator_heals_suppressed_total\{reason="budget"\} [1-9]`).MatchString(m) {
			t.Fatal("budget suppression not counted")
		}
	})
}
