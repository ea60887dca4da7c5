package compose

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// timeline is what one scenario measured from the outside: Prometheus' alert state, the
// remediator's heal history and target state, and the pager behind the oncall receiver.
type timeline struct {
	Scenario  string
	Target    string
	Alert     string
	Status    string // passed or FAILED
	Note      string
	Injected  time.Time
	Firing    time.Time // the alert first seen firing in Prometheus
	HealStart time.Time // the first heal of the target after the injection started
	Done      time.Time // the heal ended healed, or the target was suspended
	Escalated time.Time // the pager received the escalation as oncall
}

// since renders t as seconds after the injection.
func (tl *timeline) since(t time.Time) string {
	if t.IsZero() || tl.Injected.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1f", t.Sub(tl.Injected).Seconds())
}

func table(tls []*timeline) string {
	var b strings.Builder
	b.WriteString("| scenario | status | target | alert | firing | heal starts | healed / suspended | escalated |\n")
	b.WriteString("|---|---|---|---|---:|---:|---:|---:|\n")
	for _, tl := range tls {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", tl.Scenario, tl.Status, tl.Target, tl.Alert,
			tl.since(tl.Firing), tl.since(tl.HealStart), tl.since(tl.Done), tl.since(tl.Escalated))
	}
	b.WriteString("\nNotes:\n\n")
	for _, tl := range tls {
		if tl.Note != "" {
			fmt.Fprintf(&b, "- %s: %s\n", tl.Scenario, tl.Note)
		}
	}
	return b.String()
}

// writeDoc writes docs/compose-timeline.md from a run of the whole test.
func writeDoc(s *stack, tls []*timeline, total time.Duration, passed bool) error {
	var b strings.Builder
	b.WriteString("# Compose stack timeline\n\n")
	b.WriteString("Written by the compose test (`make compose-e2e`) on every run; the numbers below are from the latest\n")
	b.WriteString("run. It starts the shipped `docker-compose.yml` unchanged, with its intervals (5 s scrapes and\n")
	b.WriteString("evaluations, Alertmanager's 5 s group wait), injects the README's faults with the README's commands and\n")
	b.WriteString("times, from the outside, how the loop reacted: Prometheus' alerts, the remediator's heal history and\n")
	b.WriteString("target states, and the shipped pager behind Alertmanager's `oncall` receiver.\n\n")
	fmt.Fprintf(&b, "Run: %s, result: %s, total %s (image builds and stack start included).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), map[bool]string{true: "passed", false: "FAILED"}[passed], total.Round(time.Second))
	b.WriteString("## Machine\n\n")
	b.WriteString(testutil.Machine(s.versions))
	b.WriteString("\n## Timeline\n\n")
	b.WriteString("Seconds after the injection. *firing*: the alert first seen firing in Prometheus (polled every second);\n")
	b.WriteString("*heal starts*: the first heal of the target; *healed / suspended*: the heal ended healed, or the target\n")
	b.WriteString("was suspended with its budget spent; *escalated*: RemediatorBudgetExhausted reached the pager as `oncall`.\n\n")
	b.WriteString(table(tls))
	b.WriteString("\n## How the test stack differs from the shipped one\n\n")
	b.WriteString("- Images are built here, nothing is pulled, and all carry test-only names (`selfheal-test/...`), set by a\n")
	b.WriteString("  generated override file (`docker compose -f docker-compose.yml -f <generated>`): Prometheus 3 and\n")
	b.WriteString("  Alertmanager 0.35 built from their modules (Alertmanager's web UI replaced by a placeholder page),\n")
	b.WriteString("  PostgreSQL from Debian's package, the demo services and the remediator from the shipped Dockerfiles\n")
	b.WriteString("  with a Go image of the same Go version.\n")
	b.WriteString("- The socket proxy is a stand-in (`e2e/compose/socketproxy`): it enforces the same per-client\n")
	b.WriteString("  `socket-proxy.allow.*` label allowlists as wollomatic/socket-proxy, whose image cannot be built here.\n")
	b.WriteString("- Grafana is not started (its image cannot be had here); nothing depends on it.\n")
	b.WriteString("- Three chains run at once: pool exhaustion then CPU exhaustion on order-service; the unflushable\n")
	b.WriteString("  leak on payment-service; the partition of payment-service-2, then the unhealable user-service (whose\n")
	b.WriteString("  500s would stop the traffic the partition's rerouting is checked on). With one heal at a time\n")
	b.WriteString("  (max_concurrent_heals: 1) a heal can wait for another chain's; the times include that wait.\n")
	path := filepath.Join(s.root, "docs", "compose-timeline.md")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
