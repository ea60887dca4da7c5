package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

// The stack's published addresses, as the README's curl commands use them.
const (
	promURL = "http://127.0.0.1:9090"
	remURL  = "http://127.0.0.1:9096"
	// The shipped pager, behind Alertmanager's oncall and chat receivers.
	pagerURL = "http://127.0.0.1:9097"
)

// TestComposeStack starts the shipped stack, checks it is whole, heals README scenarios through
// it (two chains at once: each scenario waits only for the one that would disturb it), recreates
// the remediator with docker-compose.recreate.yml and takes everything down.
func TestComposeStack(t *testing.T) {
	if os.Getenv("COMPOSE_E2E") == "" {
		t.Skip("compose test: set COMPOSE_E2E=1 (make compose-e2e) to start the shipped docker-compose.yml on the local engine; it needs the images .ci/compose-images builds")
	}
	start := time.Now()
	s := startStack(t)
	healthy := s.waitHealthy(t, 5*time.Minute)
	t.Logf("every service healthy %s after compose up returned", healthy.Round(time.Second))
	s.checkDiscovery(t)
	s.checkRules(t)
	s.recordVersions(t)

	token := readToken(t, s.root)
	var (
		mu  sync.Mutex
		tls []*timeline
		wg  sync.WaitGroup
	)
	chain := func(steps ...func(*testing.T, *stack, *timeline)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, step := range steps {
				tl := &timeline{}
				mu.Lock()
				tls = append(tls, tl)
				mu.Unlock()
				step(t, s, tl)
				if tl.Status != "passed" {
					return // the rest of the chain would start from a disturbed stack
				}
			}
		}()
	}
	// The unhealable user-service answers every request with 500, so no traffic reaches the
	// payment instances while it runs: it starts only once the partition has been rerouted.
	chain(poolExhaustion, cpuExhaustion)
	chain(unflushableLeak)
	chain(partition, func(t *testing.T, s *stack, tl *timeline) { unhealable(t, s, tl, token) })
	wg.Wait()

	s.recreateWithOverride(t)
	passed := !t.Failed()
	t.Logf("timeline (seconds after injection), total %s:\n%s", time.Since(start).Round(time.Second), table(tls))
	if err := writeDoc(s, tls, time.Since(start), passed); err != nil {
		errorf(t, "%v", err)
	}
}

// checkDiscovery: Prometheus finds every demo container through the socket proxy (docker_sd
// asks the proxy, with Prometheus' allowlist) and scrapes it.
func (s *stack) checkDiscovery(t *testing.T) {
	t.Helper()
	want := []string{"loadgen", "order-service", "payment-service", "payment-service-2", "user-service"}
	var got []string
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var r struct {
			Data struct {
				ActiveTargets []struct {
					Labels     map[string]string `json:"labels"`
					ScrapePool string            `json:"scrapePool"`
					Health     string            `json:"health"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		if err := getJSON(promURL+"/api/v1/targets?state=active", &r); err != nil {
			fatalf(t, "%v", err)
		}
		got = nil
		for _, tg := range r.Data.ActiveTargets {
			if tg.ScrapePool == "demo-services" && tg.Health == "up" {
				got = append(got, tg.Labels["container"])
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			t.Logf("Prometheus discovered and scrapes %v through the socket proxy", got)
			return
		}
		time.Sleep(2 * time.Second)
	}
	fatalf(t, "Prometheus' docker discovery (through the socket proxy) scrapes %v, want %v", got, want)
}

// checkRules: every rule of rules/*.yml is loaded and evaluates without error.
func (s *stack) checkRules(t *testing.T) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.root, "rules", "*.yml"))
	want := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fatalf(t, "%v", err)
		}
		var rf struct {
			Groups []struct {
				Rules []yaml.Node `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &rf); err != nil {
			fatalf(t, "%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			want += len(g.Rules)
		}
	}
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := getJSON(promURL+"/api/v1/rules", &r); err != nil {
			fatalf(t, "%v", err)
		}
		got, bad := 0, []string{}
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				got++
				if rule.Health != "ok" {
					bad = append(bad, rule.Name+" ("+rule.Health+": "+rule.LastError+")")
				}
			}
		}
		if got == want && len(bad) == 0 {
			t.Logf("Prometheus loaded all %d rules of rules/*.yml, every one healthy", got)
			return
		}
		if time.Now().After(deadline) {
			fatalf(t, "Prometheus loaded %d rules, rules/*.yml has %d; unhealthy: %v", got, want, bad)
		}
		time.Sleep(2 * time.Second)
	}
}

// recreateWithOverride applies docker-compose.recreate.yml as the README says: the remediator is
// recreated with the wider allowlist and comes back healthy; nothing else is touched.
func (s *stack) recreateWithOverride(t *testing.T) {
	t.Helper()
	// `compose up` checks every service's depends_on conditions again: a container that the
	// remediator is restarting at that moment fails them. Recreate a quiet, healthy stack.
	if !noHealRunning(t, 3*time.Minute) {
		fatalf(t, "a heal was still running 3m after the scenarios ended")
	}
	s.waitHealthy(t, 2*time.Minute)
	before := s.containers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files := []string{s.files[0], filepath.Join(s.root, "docker-compose.recreate.yml"), s.files[1]}
	if out, err := s.composeWith(ctx, files, nil, "up", "-d"); err != nil {
		fatalf(t, "compose up with docker-compose.recreate.yml: %v\n%s", err, out)
	}
	after := s.containers(t)
	for svc, id := range before {
		if svc == "remediator" {
			if after[svc] == id {
				errorf(t, "docker-compose.recreate.yml did not recreate the remediator")
			}
		} else if after[svc] != id {
			errorf(t, "docker-compose.recreate.yml recreated %s too", svc)
		}
	}
	labels := testutil.InspectField(t, after["remediator"], `{{index .Config.Labels "socket-proxy.allow.post"}}`)
	if !strings.Contains(labels, "containers/create") {
		errorf(t, "recreated remediator's socket-proxy.allow.post = %q, want it to allow containers/create", labels)
	}
	s.waitHealthy(t, 2*time.Minute)
	// The recreated remediator still reaches the engine through the proxy: its readiness
	// includes the engine, and its targets are listed from it.
	if err := testutil.WaitHTTP(remURL+"/-/ready", time.Minute); err != nil {
		errorf(t, "%v", err)
	}
	t.Log("recreate: the remediator was recreated with docker-compose.recreate.yml's allowlist and is healthy; no other container changed")
}

func (s *stack) recordVersions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if v, err := testutil.DockerCLI(ctx, "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"); err == nil {
		s.versions["docker engine"] = v
	}
	if v, err := s.compose(ctx, "version", "--short"); err == nil {
		s.versions["docker compose"] = strings.TrimSpace(v)
	}
	var b struct {
		Data map[string]string `json:"data"`
	}
	if getJSON(promURL+"/api/v1/status/buildinfo", &b) == nil {
		s.versions["prometheus"] = b.Data["version"]
	}
	var am struct {
		VersionInfo map[string]string `json:"versionInfo"`
	}
	if getJSON("http://127.0.0.1:9093/api/v2/status", &am) == nil {
		s.versions["alertmanager"] = am.VersionInfo["version"]
	}
	for _, svc := range []string{"prometheus", "alertmanager"} {
		if s.versions[svc] == "" { // built from the module without version stamping
			s.versions[svc] = prebuiltImages[svc] + " (test-only image, built from its module)"
		}
	}
	s.versions["postgres"] = "Debian's postgresql 15 (test-only image; the compose file pins postgres:17.7-alpine)"
	s.versions["socket proxy"] = "the test's stand-in (e2e/compose/socketproxy; the compose file pins wollomatic/socket-proxy:1.12.2)"
	t.Logf("versions: %v", s.versions)
}

func readToken(t *testing.T, root string) string {
	b, err := os.ReadFile(filepath.Join(root, "secrets", "webhook-token"))
	if err != nil {
		fatalf(t, "%v", err)
	}
	return strings.TrimSpace(string(b))
}

// fail marks the scenario failed and the test with it.
func fail(t *testing.T, tl *timeline, format string, args ...any) {
	t.Helper()
	tl.Status = "FAILED"
	tl.Note = fmt.Sprintf(format, args...)
	errorf(t, "%s: %s", tl.Scenario, tl.Note)
}

// failures keeps every failure message, so the test can repeat them after the long compose
// logs it prints on failure: a CI summary that shows only the last lines then shows the cause.
var failures struct {
	sync.Mutex
	list []string
}

func errorf(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	failures.Lock()
	failures.list = append(failures.list, msg)
	failures.Unlock()
	t.Error(msg)
}

func fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	errorf(t, format, args...)
	t.FailNow()
}

// failureSummary is the failures so far, one per line.
func failureSummary() string {
	failures.Lock()
	defer failures.Unlock()
	return "  - " + strings.Join(failures.list, "\n  - ")
}
