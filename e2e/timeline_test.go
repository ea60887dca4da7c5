package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

// timeline is what one scenario measured, all from the outside: Prometheus' alert states, the
// remediator's heal history and target states, and the engine.
type timeline struct {
	Scenario string
	Target   string
	Alert    string
	Status   string // passed, FAILED, skipped
	Note     string
	// Others are further targets the scenario heals on purpose; heals of any other target
	// during the scenario are collateral and noted.
	Others      []string
	Injected    time.Time
	Pending     time.Time // alert first seen pending in Prometheus
	Firing      time.Time // alert first seen firing in Prometheus
	Received    time.Time // remediator first showed the target as affected (its API)
	FirstAction time.Time // first step of the heal that did something (heal history)
	Verified    time.Time // heal ended healed (heal history)
	Resolved    time.Time // alert gone from Prometheus
}

// since renders t as seconds after the fault was injected.
func (tl *timeline) since(t time.Time) string {
	if t.IsZero() || tl.Injected.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1f", t.Sub(tl.Injected).Seconds())
}

func (tl *timeline) firingToHealed() string {
	if tl.Firing.IsZero() || tl.Verified.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%.1f", tl.Verified.Sub(tl.Firing).Seconds())
}

// table renders the timelines as a Markdown table; offsets are seconds after the injection.
func table(tls []*timeline) string {
	var b strings.Builder
	b.WriteString("| # | scenario | status | target | alert | pending | firing | received | first action | verified | resolved | firing → healed |\n")
	b.WriteString("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, tl := range tls {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			i+1, tl.Scenario, tl.Status, tl.Target, tl.Alert,
			tl.since(tl.Pending), tl.since(tl.Firing), tl.since(tl.Received), tl.since(tl.FirstAction),
			tl.since(tl.Verified), tl.since(tl.Resolved), tl.firingToHealed())
	}
	var notes []string
	for i, tl := range tls {
		if tl.Note != "" {
			notes = append(notes, fmt.Sprintf("%d. %s: %s", i+1, tl.Scenario, tl.Note))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

// writeDoc writes docs/e2e-timeline.md: machine, versions, the generated configs' differences
// from the shipped ones, and the table.
func writeDoc(root string, s *stack, tls []*timeline, total time.Duration, passed bool) error {
	var b strings.Builder
	b.WriteString("# End-to-end timeline\n\n")
	b.WriteString("Written by the end-to-end test (`make e2e`, or `E2E=1 go test -count=1 -timeout 30m -v ./e2e`) on every run;\n")
	b.WriteString("the numbers below are from the latest run. Each scenario injects a real fault into a demo container\n")
	b.WriteString("and times, from the outside, how the loop reacted: Prometheus' alert states (polled every 0.5 s), the\n")
	b.WriteString("remediator's target states and heal history (its API), and the container's state (the engine).\n\n")
	fmt.Fprintf(&b, "Run: %s, result: %s, total %s (stack start included).\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		map[bool]string{true: "passed", false: "FAILED"}[passed], total.Round(time.Second))
	b.WriteString("## Machine\n\n")
	b.WriteString(testutil.Machine(s.versions))
	b.WriteString("\n## Timeline\n\n")
	b.WriteString("Seconds after the fault was injected. *received*: the remediator's API first shows the target affected;\n")
	b.WriteString("*first action*: the first step of the heal that acted; *verified*: the heal ended healed, which is\n")
	b.WriteString("after the healing step's hold (`verify.stable_for`: the target stayed healthy and the alert neither\n")
	b.WriteString("fired nor was pending); *firing → healed*: from the alert firing in Prometheus to the verified heal.\n\n")
	b.WriteString(table(tls))
	b.WriteString("\n## How the test stack differs from the shipped configuration\n\n")
	b.WriteString("The test generates its configuration from the shipped files at every run; only addresses and timings change:\n\n")
	files := make([]string, 0, len(s.changes))
	for f := range s.changes {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Fprintf(&b, "`%s`:\n\n", f)
		seen := map[string]bool{}
		for _, c := range s.changes[f] {
			if seen[c] {
				continue
			}
			seen[c] = true
			b.WriteString("- " + c + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString("Beyond the configuration files:\n\n")
	b.WriteString("- The demo services run as containers of a FROM scratch image of `bin/demo-service`, with the compose\n")
	b.WriteString("  file's labels, memory and CPU limits, read-only root, no capabilities and restart policy, but on host\n")
	b.WriteString("  networking, each on its own 127.0.0.1 port (LISTEN_ADDR; the prometheus.port label says which), without\n")
	b.WriteString("  the compose healthcheck (its URL names port 8080), and named `e2e-<service>` so they never collide with\n")
	b.WriteString("  a compose stack.\n")
	b.WriteString("- PostgreSQL, Prometheus and Alertmanager run as local processes from the distribution's packages (the\n")
	b.WriteString("  versions above; the compose file pins newer images). The remediator reaches the engine through its\n")
	b.WriteString("  local socket, not through the compose stack's socket proxy.\n")
	b.WriteString("- Before each scenario the test waits until no alert of the previous one is pending or firing and the\n")
	b.WriteString("  rule windows hold no slow or failed request, then resets every target through the remediator's API\n")
	b.WriteString("  (as an operator would), so each scenario starts with a full budget and no cooldown.\n")
	b.WriteString("- Order: 4, 1 and 11 run alone; then 6 (the unhealable service, in its own container) runs alongside\n")
	b.WriteString("  2, 3, 7, 8, 5, 9, 10 and 12, which run one after another (spread so that no five minutes see more\n")
	b.WriteString("  than three targets of one playbook, its blast radius). With one heal at a time (max_concurrent_heals:\n")
	b.WriteString("  1), their first action can wait for one of 6's failing verifications; the notes say when.\n")
	path := filepath.Join(root, "docs", "e2e-timeline.md")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
