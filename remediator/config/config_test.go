package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// Every invalid-*.yml in testdata is one rule of validation; each must give exactly these
// messages, with their line numbers, and nothing else.
var invalidFiles = []struct {
	file string
	want []string
}{
	{"invalid-adaptive-ratio.yml", []string{
		`invalid-adaptive-ratio.yml:6: playbook "memory-high": adaptive.min_success_ratio must be between 0 and 1, got -0.1 (hint: e.g. 0.2)`,
	}},
	{"invalid-adaptive-decay.yml", []string{
		`invalid-adaptive-decay.yml:3: defaults: adaptive.half_life must be greater than 0 (hint: e.g. 24h)`,
		`invalid-adaptive-decay.yml:9: playbook "memory-high": adaptive.explore_every must not be negative, got -1 (hint: e.g. 10; 0 never tries a skipped step)`,
	}},
	{"invalid-blast-ratio.yml", []string{
		`invalid-blast-ratio.yml:5: playbook "memory-high": blast_radius.max_ratio must be between 0 and 1, got 1.5 (hint: 0 turns the limit off, 0.5 means half of the playbook's targets)`,
	}},
	{"invalid-bool.yml", []string{
		`invalid-bool.yml:2: global.dry_run must be true or false, got "sometimes"`,
	}},
	{"invalid-budget-attempts.yml", []string{
		`invalid-budget-attempts.yml:5: playbook "memory-high": budget.attempts must be at least 1, got 0 (hint: e.g. 3)`,
	}},
	{"invalid-command-empty.yml", []string{
		`invalid-command-empty.yml:6: playbook "memory-high": step 1: command.argv is empty (hint: e.g. command: {argv: ["/usr/local/bin/flush", "{{ .Labels.container }}"]})`,
	}},
	{"invalid-command-env.yml", []string{
		`invalid-command-env.yml:7: playbook "memory-high": step 1: command.env: "ALERT_LABEL_CONTAINER" is reserved for the alert's labels and annotations (hint: choose another name)`,
	}},
	{"invalid-command-relative.yml", []string{
		`invalid-command-relative.yml:6: playbook "memory-high": step 1: command.argv[0] "bin/flush" is a relative path (hint: use an absolute path such as /usr/local/bin/flush, or a plain name looked up in PATH)`,
	}},
	{"invalid-command-templated-program.yml", []string{
		`invalid-command-templated-program.yml:6: playbook "memory-high": step 1: command.argv[0] "{{ .Labels.program }}" must not be templated: an alert must not choose the program (hint: write the program out; templates belong in the arguments)`,
	}},
	{"invalid-cooldown-factor.yml", []string{
		`invalid-cooldown-factor.yml:4: playbook "memory-high": cooldown.factor must be at least 1, got 0.5 (hint: 1 keeps the cooldown constant, 2 doubles it after each consecutive heal)`,
	}},
	{"invalid-cooldown-max.yml", []string{
		`invalid-cooldown-max.yml:5: playbook "memory-high": cooldown.max (15m) is shorter than cooldown.initial (20m) (hint: raise cooldown.max or lower cooldown.initial)`,
	}},
	{"invalid-defaults.yml", []string{
		`invalid-defaults.yml:3: defaults: budget.attempts must be at least 1, got 0 (hint: e.g. 3)`,
	}},
	{"invalid-docker-action.yml", []string{
		`invalid-docker-action.yml:5: playbook "memory-high": step 1: docker.action "reboot" is not supported (hint: use one of restart, stop, start, kill, recreate)`,
	}},
	{"invalid-docker-container.yml", []string{
		`invalid-docker-container.yml:7: playbook "memory-high": step 1: docker.container "../etc/passwd" is not a valid container name (hint: container names are letters, digits, '_', '.' and '-')`,
	}},
	{"invalid-docker-signal-not-kill.yml", []string{
		`invalid-docker-signal-not-kill.yml:7: playbook "memory-high": step 1: docker.signal is only used by action kill, not "restart" (hint: remove signal, or use action: kill)`,
	}},
	{"invalid-docker-signal.yml", []string{
		`invalid-docker-signal.yml:7: playbook "memory-high": step 1: docker.signal "SIGBOGUS" is not a signal (hint: use one of SIGHUP, SIGINT, SIGQUIT, SIGTRAP, SIGABRT, SIGKILL, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCONT, SIGSTOP, SIGTSTP, SIGWINCH, SIGPWR, SIGSYS, or its number)`,
	}},
	{"invalid-docker-stop-timeout.yml", []string{
		`invalid-docker-stop-timeout.yml:7: playbook "memory-high": step 1: docker.stop_timeout (30s) leaves no time within the step's timeout (30s) (hint: raise the step's timeout or lower stop_timeout)`,
	}},
	{"invalid-duplicate-key.yml", []string{
		`invalid-duplicate-key.yml:6: key "name" in a playbook is given twice (first on line 2) (hint: remove one of them)`,
	}},
	{"invalid-duplicate-matchers.yml", []string{
		`invalid-duplicate-matchers.yml:7: playbook "memory-again" has the same matchers as playbook "memory-high", so it can never be chosen (hint: playbooks are tried in order and the first match wins; merge the two or make the matchers differ)`,
	}},
	{"invalid-duration.yml", []string{
		`invalid-duration.yml:3: defaults.cooldown.initial: invalid duration "5 minutes" (hint: use a whole number with a unit: 500ms, 30s, 5m, 1h, 7d)`,
	}},
	{"invalid-empty.yml", []string{
		`invalid-empty.yml:1: the file is empty; it needs at least one playbook (hint: start from remediator/playbooks.yml)`,
	}},
	{"invalid-global-limits.yml", []string{
		`invalid-global-limits.yml:2: global: max_concurrent_heals must be at least 1, got 0 (hint: 1 heals one target at a time)`,
		`invalid-global-limits.yml:3: global: heals_per_minute must be greater than 0, got 0 (hint: e.g. 6)`,
		`invalid-global-limits.yml:4: global: history_max_entries must be at least 1, got -1 (hint: e.g. 1000)`,
	}},
	{"invalid-http-expect-status.yml", []string{
		`invalid-http-expect-status.yml:7: playbook "memory-high": step 1: http.expect_status 2000 is not an HTTP status code (hint: e.g. expect_status: [200, 204])`,
	}},
	{"invalid-http-header.yml", []string{
		`invalid-http-header.yml:7: playbook "memory-high": step 1: http.headers: "X Bad" is not a valid header name (hint: header names are letters, digits and - only)`,
	}},
	{"invalid-http-method.yml", []string{
		`invalid-http-method.yml:6: playbook "memory-high": step 1: http.method "FETCH" is not an HTTP method (hint: use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS)`,
	}},
	{"invalid-http-url-empty.yml", []string{
		`invalid-http-url-empty.yml:5: playbook "memory-high": step 1: http.url is empty (hint: e.g. url: 'http://{{ .Labels.container }}:8080/recover/flush-cache')`,
	}},
	{"invalid-http-url-scheme.yml", []string{
		`invalid-http-url-scheme.yml:6: playbook "memory-high": step 1: http.url "{{ .Labels.scheme }}://{{ .Labels.container }}:8080/recover/flush-cache" must start with http:// or https:// (hint: write the scheme out, e.g. http://{{ .Labels.container }}:8080/...)`,
	}},
	{"invalid-http-url-static.yml", []string{
		`invalid-http-url-static.yml:6: playbook "memory-high": step 1: http.url: rendered url "http:///recover/flush-cache" has no host`,
	}},
	{"invalid-many.yml", []string{
		`invalid-many.yml:3: unknown key "max_concurent_heals" in global (hint: did you mean "max_concurrent_heals"? valid keys: prometheus_url, prometheus, dry_run, max_concurrent_heals, heals_per_minute, history_max_age, history_max_entries, alertmanager)`,
		`invalid-many.yml:8: playbook "memory-high": step 1: docker.action "reboot" is not supported (hint: use one of restart, stop, start, kill, recreate)`,
		`invalid-many.yml:9: playbook "memory-high": step 2: http.url "ftp://{{ .Labels.container }}/flush" must start with http:// or https:// (hint: write the scheme out, e.g. http://{{ .Labels.container }}:8080/...)`,
		`invalid-many.yml:11: playbook "cpu-high": invalid matcher "alertname==\"ServiceCPUHigh\"": matcher value contains unescaped double quote: ="ServiceCPUHigh" (hint: use Alertmanager's syntax, e.g. alertname="ServiceMemoryHigh" or severity=~"warning|critical")`,
		`invalid-many.yml:12: playbook "cpu-high": budget.attempts must be at least 1, got 0 (hint: e.g. 3)`,
		`invalid-many.yml:13: playbook "cpu-high" has no steps (hint: add steps:, e.g. - docker: {action: restart})`,
	}},
	{"invalid-matcher.yml", []string{
		"invalid-matcher.yml:5: playbook \"memory-high\": invalid matcher \"severity=~\\\"(warning\\\"\": error parsing regexp: missing closing ): `^(?:(warning)$` (hint: use Alertmanager's syntax, e.g. alertname=\"ServiceMemoryHigh\" or severity=~\"warning|critical\")",
	}},
	{"invalid-multi-document.yml", []string{
		`invalid-multi-document.yml:6: YAML syntax error: a second YAML document (---) follows; put all playbooks in one document`,
	}},
	{"invalid-no-matchers.yml", []string{
		`invalid-no-matchers.yml:2: playbook "memory-high" has no matchers; it would match every alert (hint: add match: ['alertname="ServiceMemoryHigh"'])`,
	}},
	{"invalid-no-playbooks.yml", []string{
		"invalid-no-playbooks.yml:3: no playbooks defined (hint: add a `playbooks:` list; see remediator/playbooks.yml)",
	}},
	{"invalid-no-steps.yml", []string{
		`invalid-no-steps.yml:2: playbook "memory-high" has no steps (hint: add steps:, e.g. - docker: {action: restart})`,
	}},
	{"invalid-number.yml", []string{
		`invalid-number.yml:4: playbook "memory-high": budget.attempts must be a whole number, got "three"`,
	}},
	{"invalid-playbook-duplicate-name.yml", []string{
		`invalid-playbook-duplicate-name.yml:6: playbook name "memory-high" is already used on line 2 (hint: give each playbook its own name)`,
	}},
	{"invalid-playbook-name.yml", []string{
		`invalid-playbook-name.yml:2: playbook name "memory high" is not a valid name (hint: use letters, digits, '_', '.' and '-' only)`,
	}},
	{"invalid-playbook-no-name.yml", []string{
		`invalid-playbook-no-name.yml:2: playbook 1 has no name (hint: add name: <short-name>, e.g. name: memory-high)`,
	}},
	{"invalid-precondition-promql.yml", []string{
		`invalid-precondition-promql.yml:7: playbook "memory-high": precondition 1: query is not valid PromQL: 1:19: parse error: unexpected "(" in grouping opts, expected "," or ")" (hint: test the expression in Prometheus' expression browser first)`,
	}},
	{"invalid-precondition-value-outside-quotes.yml", []string{
		`invalid-precondition-value-outside-quotes.yml:7: playbook "memory-high": precondition 1: query puts label "threshold" outside a quoted string, where it could change the query (hint: alert values go inside double or single quotes, as in instance="{{ .Labels.instance }}"; use each in exact or regex matchers, not both)`,
		`invalid-precondition-value-outside-quotes.yml:11: playbook "memory-high": step 1: verify.query uses label "job" both in a regex matcher and as a plain string (hint: alert values go inside double or single quotes, as in instance="{{ .Labels.instance }}"; use each in exact or regex matchers, not both)`,
	}},
	{"invalid-precondition-empty.yml", []string{
		`invalid-precondition-empty.yml:7: playbook "memory-high": precondition 1 has no query (hint: e.g. query: 'up{job="demo-services"} == 1')`,
	}},
	{"invalid-precondition-no-prometheus.yml", []string{
		`invalid-precondition-no-prometheus.yml:5: playbook "memory-high": preconditions need a Prometheus to ask, but global.prometheus_url is not set (hint: set global.prometheus_url (or --prometheus.url))`,
	}},
	{"invalid-prometheus-url.yml", []string{
		`invalid-prometheus-url.yml:2: global: prometheus_url: "prometheus:9090" must be an http:// or https:// URL with a host (hint: e.g. http://prometheus:9090)`,
	}},
	{"invalid-step-duplicate-name.yml", []string{
		`invalid-step-duplicate-name.yml:7: playbook "memory-high": step "restart": step name "restart" is already used on line 5 (hint: give each step of a playbook its own name)`,
	}},
	{"invalid-step-no-action.yml", []string{
		`invalid-step-no-action.yml:5: playbook "memory-high": step "restart": step has no action (hint: add exactly one of http, docker, kubernetes, command, swarm, wait)`,
	}},
	{"invalid-step-timeout.yml", []string{
		`invalid-step-timeout.yml:4: playbook "memory-high": step_timeout must be greater than 0 (hint: e.g. 30s)`,
	}},
	{"invalid-step-two-actions.yml", []string{
		`invalid-step-two-actions.yml:7: playbook "memory-high": step "flush-and-restart": step has 2 actions (http, docker); a step does exactly one thing (hint: split it into one step per action)`,
	}},
	{"invalid-template-field.yml", []string{
		`invalid-template-field.yml:6: playbook "memory-high": step 1: http.url: template refers to .Label.container, which a template cannot see (hint: a template sees .Labels.<name>, .Annotations.<name>, .Target and .Playbook)`,
	}},
	{"invalid-template-syntax.yml", []string{
		`invalid-template-syntax.yml:4: playbook "memory-high": target: invalid template: 1: unexpected "}" in operand (hint: templates use Go template syntax, e.g. {{ .Labels.container }})`,
	}},
	{"invalid-time-window-clock.yml", []string{
		`invalid-time-window-clock.yml:6: playbook "memory-high": time window 1: time "25:00" is out of range 00:00-24:00 (hint: use 24h HH:MM such as 08:00 and 18:30)`,
	}},
	{"invalid-time-window-location.yml", []string{
		`invalid-time-window-location.yml:7: playbook "memory-high": time window 1: unknown location "Mars/Olympus_Mons" (hint: use an IANA zone name such as Europe/Berlin or UTC)`,
	}},
	{"invalid-time-window-weekday.yml", []string{
		`invalid-time-window-weekday.yml:5: playbook "memory-high": time window 1: unknown weekday "funday" (hint: use monday..sunday (or mon..sun) and ranges such as monday:friday)`,
	}},
	{"invalid-unknown-key.yml", []string{
		`invalid-unknown-key.yml:6: unknown key "retries" in a step (hint: valid keys: name, http, docker, command, swarm, kubernetes, wait, verify, timeout, approval)`,
	}},
	{"invalid-unknown-top-key.yml", []string{
		`invalid-unknown-top-key.yml:1: unknown key "playbook" in the top level (hint: did you mean "playbooks"? valid keys: global, defaults, playbooks)`,
		"invalid-unknown-top-key.yml:1: no playbooks defined (hint: add a `playbooks:` list; see remediator/playbooks.yml)",
	}},
	{"invalid-verify-healthy-query.yml", []string{
		`invalid-verify-healthy-query.yml:2: defaults: verify.healthy_query needs a Prometheus to ask, but global.prometheus_url is not set (hint: set global.prometheus_url (or --prometheus.url), or drop the query)`,
		`invalid-verify-healthy-query.yml:7: playbook "memory-high": verify.healthy_query is not valid PromQL: 1:13: parse error: unexpected "=" in label matching, expected string (hint: test the expression in Prometheus' expression browser first)`,
		`invalid-verify-healthy-query.yml:7: playbook "memory-high": verify.healthy_query needs a Prometheus to ask, but global.prometheus_url is not set (hint: set global.prometheus_url (or --prometheus.url), or drop the query)`,
	}},
	{"invalid-verify-interval.yml", []string{
		`invalid-verify-interval.yml:8: playbook "memory-high": step 1: verify.interval (30s) is longer than verify.timeout (10s) (hint: lower verify.interval)`,
	}},
	{"invalid-verify-query-no-prometheus.yml", []string{
		`invalid-verify-query-no-prometheus.yml:7: playbook "memory-high": step 1: verify.query needs a Prometheus to ask, but global.prometheus_url is not set (hint: set global.prometheus_url (or --prometheus.url), or drop the query to verify by the alert resolving)`,
	}},
	{"invalid-verify-query-promql.yml", []string{
		`invalid-verify-query-promql.yml:9: playbook "memory-high": step 1: verify.query is not valid PromQL: 1:22: parse error: unexpected "=" in label matching, expected "," or "}" (hint: test the expression in Prometheus' expression browser first)`,
	}},
	{"invalid-verify-skip-query.yml", []string{
		`invalid-verify-skip-query.yml:7: playbook "memory-high": verify.skip and verify.query exclude each other (hint: remove one of them)`,
	}},
	{"invalid-wait-timeout.yml", []string{
		`invalid-wait-timeout.yml:6: playbook "memory-high": step 1: timeout (30s) is not longer than the wait (1m) (hint: raise timeout above the wait, or leave it out)`,
	}},
	{"invalid-approval.yml", []string{
		`invalid-approval.yml:6: playbook "restart": step 1: approval.required must be true or false, got "yes-please"`,
	}},
	{"invalid-wait.yml", []string{
		`invalid-wait.yml:5: playbook "memory-high": step 1: wait must be a duration greater than 0 (hint: e.g. wait: 30s)`,
	}},
	{"invalid-wrong-kind.yml", []string{
		"invalid-wrong-kind.yml:5: playbook \"memory-high\": steps must be a list, got a mapping (hint: write it as a YAML list, one `- item` per line)",
	}},
	{"invalid-yaml-syntax.yml", []string{
		`invalid-yaml-syntax.yml:5: YAML syntax error: mapping values are not allowed in this context`,
	}},
}

func TestParseInvalid(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range invalidFiles {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data, tc.file)
			if err == nil {
				t.Fatalf("Parse accepted %s: %+v", tc.file, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with errors")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("messages differ\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// A new invalid file without a table entry would be a rule nobody asserts.
	files, _ := filepath.Glob("testdata/invalid-*.yml")
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no entry in invalidFiles", f)
		}
	}
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}

func dur(s string) model.Duration {
	d, err := model.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestParseGoodMergesDefaults(t *testing.T) {
	cfg := mustLoad(t, "testdata/good.yml")
	if cfg.File != "testdata/good.yml" {
		t.Errorf("File = %q", cfg.File)
	}
	g := cfg.Global
	if g.PrometheusURL != "http://prometheus:9090" || g.MaxConcurrentHeals != 2 || g.HealsPerMinute != 10 ||
		g.HistoryMaxAge != dur("3d") || g.HistoryMaxEntries != 500 {
		t.Errorf("global = %+v", g)
	}
	mem, hung := cfg.Playbook("memory-high"), cfg.Playbook("hung-process")
	if mem == nil || hung == nil || len(cfg.Playbooks) != 2 {
		t.Fatalf("playbooks = %+v", cfg.Playbooks)
	}
	// Field by field: the playbook sets budget.attempts, the window comes from defaults.
	if mem.Budget != (Budget{Attempts: 2, Window: dur("2h")}) {
		t.Errorf("memory-high budget = %+v", mem.Budget)
	}
	// `adaptive: true` keeps the defaults' thresholds.
	if mem.Adaptive != (Adaptive{Enabled: true, MinSamples: 4, MinSuccessRatio: 0.25, HalfLife: dur("24h"), ExploreEvery: 10}) {
		t.Errorf("memory-high adaptive = %+v", mem.Adaptive)
	}
	if mem.Cooldown != (Cooldown{Initial: dur("30s"), Factor: 1.5, Max: dur("10m"), ResetAfter: dur("5m")}) {
		t.Errorf("cooldown = %+v", mem.Cooldown)
	}
	if mem.BlastRadius != (BlastRadius{MaxTargets: 3, MaxRatio: 0.6, Window: dur("10m")}) {
		t.Errorf("blast radius = %+v", mem.BlastRadius)
	}
	if mem.Target.Text != "{{ .Labels.container }}" || hung.Target.Text != "{{ .Labels.instance }}" {
		t.Errorf("targets = %q, %q", mem.Target.Text, hung.Target.Text)
	}
	if mem.Line != 21 || mem.Steps[0].Line != 28 {
		t.Errorf("lines = %d, %d", mem.Line, mem.Steps[0].Line)
	}
	if !hung.DryRun || mem.DryRun {
		t.Errorf("dry_run = %v, %v", mem.DryRun, hung.DryRun)
	}

	flush, restart, settle, recreate := mem.Steps[0], mem.Steps[1], mem.Steps[2], mem.Steps[3]
	// Approval: a step's own, with its timeout; a playbook's, with the default timeout.
	if flush.Approval.Required || !recreate.Approval.Required || recreate.Approval.Wait() != 5*time.Minute ||
		mem.Approval.Required || !hung.Approval.Required || hung.Approval.Wait() != DefaultApprovalTimeout {
		t.Errorf("approval: flush %+v, recreate %+v, memory-high %+v, hung-process %+v", flush.Approval, recreate.Approval, mem.Approval, hung.Approval)
	}
	// Step verify: timeout from the step, interval from defaults.
	if flush.Verify.Timeout != dur("30s") || flush.Verify.Interval != dur("10s") || flush.Timeout != dur("5s") {
		t.Errorf("flush verify = %+v timeout %s", flush.Verify, flush.Timeout)
	}
	if flush.Action() != "http" || flush.HTTP.Method != "POST" || flush.HTTP.Headers["X-Requested-By"] != "selfheal" ||
		flush.HTTP.Body != `{"reason": "memory"}` || len(flush.HTTP.ExpectStatus) != 2 {
		t.Errorf("flush = %+v", flush.HTTP)
	}
	// The hold: inherited from defaults, and a step's explicit 0 is kept, not replaced.
	if flush.Verify.StableFor != 0 || restart.Verify.StableFor != dur("20s") || restart.Verify.RelapseWindow != dur("10m") {
		t.Errorf("stable_for = %s, %s; relapse_window = %s", flush.Verify.StableFor, restart.Verify.StableFor, restart.Verify.RelapseWindow)
	}
	if restart.Name != "2-docker" || restart.Action() != "docker" || restart.Docker.StopTimeout != dur("5s") ||
		restart.Timeout != dur("20s") || restart.Verify.Timeout != dur("90s") {
		t.Errorf("restart = %+v docker %+v", restart, restart.Docker)
	}
	// A wait step's timeout covers the wait itself.
	if settle.Action() != "wait" || *settle.Wait != dur("10s") || settle.Timeout != dur("30s") || !settle.Verify.Skip {
		t.Errorf("settle = %+v", settle)
	}
	if recreate.Docker.Action != "recreate" || recreate.Docker.Container.Text != "{{ .Target }}" || recreate.Timeout != dur("2m") {
		t.Errorf("recreate = %+v", recreate.Docker)
	}

	// The playbook's verify query reaches its steps.
	kill, script := hung.Steps[0], hung.Steps[1]
	if kill.Verify.Query.Text != `up{instance="{{ .Labels.instance }}"} == 1` || kill.Docker.Signal != "SIGQUIT" {
		t.Errorf("kill = %+v verify %+v", kill.Docker, kill.Verify)
	}
	if script.Action() != "command" || len(script.Command.Argv) != 3 || script.Command.Env["NOTIFY_CHANNEL"] != "ops" {
		t.Errorf("script = %+v", script.Command)
	}
	if len(hung.Preconditions) != 1 || hung.Preconditions[0].Description != "another replica is up" {
		t.Errorf("preconditions = %+v", hung.Preconditions)
	}

	// Matching uses Alertmanager's matchers, first playbook wins.
	for _, tc := range []struct {
		labels model.LabelSet
		want   string
	}{
		{model.LabelSet{"alertname": "ServiceMemoryHigh", "severity": "critical"}, "memory-high"},
		{model.LabelSet{"alertname": "ServiceMemoryHigh", "severity": "info"}, ""},
		{model.LabelSet{"alertname": "ServiceDown"}, "hung-process"},
		{model.LabelSet{"alertname": "Other"}, ""},
	} {
		got := ""
		if p := cfg.Match(tc.labels); p != nil {
			got = p.Name
		}
		if got != tc.want {
			t.Errorf("Match(%v) = %q, want %q", tc.labels, got, tc.want)
		}
	}

	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 25, 9, 0, 0, 0, berlin), true},    // Wednesday morning
		{time.Date(2026, 11, 25, 19, 0, 0, 0, berlin), false},  // Wednesday evening
		{time.Date(2026, 11, 25, 7, 30, 0, 0, time.UTC), true}, // 08:30 in Berlin
		{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true}, // Saturday, all day (UTC)
	} {
		if got := hung.InTimeWindow(tc.at); got != tc.want {
			t.Errorf("InTimeWindow(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if !mem.InTimeWindow(time.Now()) {
		t.Error("a playbook without windows must always be allowed")
	}
}

func TestBuiltinDefaults(t *testing.T) {
	cfg, err := Parse([]byte("playbooks:\n  - name: p\n    match: ['alertname=\"A\"']\n    steps:\n      - docker: {action: restart}\n"), "min.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global != DefaultGlobal() {
		t.Errorf("global = %+v, want %+v", cfg.Global, DefaultGlobal())
	}
	p := cfg.Playbooks[0]
	d := DefaultDefaults()
	if p.Cooldown != (Cooldown{Initial: dur("1m"), Factor: 2, Max: dur("15m"), ResetAfter: dur("10m")}) || p.Cooldown != d.Cooldown {
		t.Errorf("cooldown = %+v", p.Cooldown)
	}
	if p.Budget != (Budget{Attempts: 3, Window: dur("1h")}) || p.BlastRadius != (BlastRadius{MaxRatio: 0.5, Window: dur("5m")}) {
		t.Errorf("budget %+v blast %+v", p.Budget, p.BlastRadius)
	}
	if p.Adaptive != (Adaptive{MinSamples: 5, MinSuccessRatio: 0.2, HalfLife: dur("24h"), ExploreEvery: 10}) || p.StepTimeout != dur("30s") {
		t.Errorf("adaptive %+v step timeout %s", p.Adaptive, p.StepTimeout)
	}
	s := p.Steps[0]
	if s.Verify.Timeout != dur("2m") || s.Verify.Interval != dur("5s") || s.Timeout != dur("30s") || s.Name != "1-docker" {
		t.Errorf("step = %+v", s)
	}
	if p.Target.Text != DefaultTarget || cfg.Global.MaxConcurrentHeals != 1 || cfg.Global.HealsPerMinute != 6 ||
		cfg.Global.HistoryMaxAge != dur("7d") || cfg.Global.HistoryMaxEntries != 1000 {
		t.Errorf("target %q global %+v", p.Target.Text, cfg.Global)
	}
}

func TestPrometheusURLOption(t *testing.T) {
	data, err := os.ReadFile("testdata/invalid-verify-query-no-prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseWithOptions(data, "x.yml", Options{PrometheusURL: "http://127.0.0.1:9090"})
	if err != nil {
		t.Fatalf("with --prometheus.url the query has a Prometheus: %v", err)
	}
	if cfg.Global.PrometheusURL != "http://127.0.0.1:9090" {
		t.Errorf("prometheus url = %q", cfg.Global.PrometheusURL)
	}
	if _, err := ParseWithOptions(data, "x.yml", Options{PrometheusURL: "nope"}); err == nil ||
		err.Error() != `x.yml:1: --prometheus.url: "nope" must be an http:// or https:// URL with a host` {
		t.Errorf("bad flag: %v", err)
	}
}

// The shipped playbooks must load and cover the contract's alerts the way the demo expects.
func TestShippedPlaybooks(t *testing.T) {
	path := filepath.Join("..", "playbooks.yml")
	summary, err := Check(path)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	cfg := mustLoad(t, path)
	if want := path + ": 7 playbooks, 11 steps, OK"; summary != want {
		t.Errorf("summary = %q, want %q", summary, want)
	}
	if cfg.Global.PrometheusURL != "http://prometheus:9090" {
		t.Errorf("prometheus_url = %q", cfg.Global.PrometheusURL)
	}
	steps := func(alert, severity string) string {
		p := cfg.Match(model.LabelSet{"alertname": model.LabelValue(alert), "severity": model.LabelValue(severity)})
		if p == nil {
			return "none"
		}
		var s []string
		for _, st := range p.Steps {
			a := st.Action()
			if st.Docker != nil {
				a += ":" + st.Docker.Action
			}
			if st.HTTP != nil {
				a += ":" + st.HTTP.URL.Text[strings.LastIndex(st.HTTP.URL.Text, "/")+1:]
			}
			s = append(s, a)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct{ alert, severity, want string }{
		{"ServiceMemoryHigh", "warning", "http:flush-cache,docker:restart,docker:recreate"},
		{"ServiceMemoryHigh", "critical", "http:flush-cache,docker:restart,docker:recreate"},
		{"ServiceCPUHigh", "critical", "docker:restart"},
		{"ServiceErrorRateHigh", "critical", "docker:restart"},
		{"ServiceLatencyHigh", "warning", "docker:restart"},
		{"ServicePoolSaturated", "critical", "http:reset-pool,docker:restart"},
		{"ServicePoolWaiters", "critical", "http:reset-pool,docker:restart"},
		{"ServiceNotReady", "warning", "http:reset-pool,docker:restart"},
		{"ServiceDown", "critical", "docker:restart"},
		{"ServiceCircuitOpen", "warning", "none"},
		{"RemediatorBudgetExhausted", "critical", "none"},
	} {
		if got := steps(tc.alert, tc.severity); got != tc.want {
			t.Errorf("%s/%s: steps %s, want %s", tc.alert, tc.severity, got, tc.want)
		}
	}
}

// Unknown keys are reported together with the problems validation finds, in one round.
func TestAllProblemsInOneRound(t *testing.T) {
	_, err := Load("testdata/invalid-many.yml")
	var es Errors
	if !errors.As(err, &es) || len(es) != 6 {
		t.Fatalf("want 6 problems, got %v", err)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("problems not sorted by line: %v", es)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
	if _, err := Check("testdata/does-not-exist.yml"); err == nil {
		t.Error("Check accepted a missing file")
	}
}

func TestTimeWindowOvernightAndWrappingRange(t *testing.T) {
	w := TimeWindow{Weekdays: []string{"friday:monday"}, Start: "22:00", End: "06:00"}
	if key, err := w.compile(); err != nil {
		t.Fatal(key, err)
	}
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) } // 23rd is a Monday
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{
		{at(27, 23), true},  // Friday night
		{at(28, 3), true},   // early Saturday: Friday's window
		{at(23, 23), true},  // Monday night
		{at(24, 3), true},   // early Tuesday: still Monday's window
		{at(24, 23), false}, // Tuesday night
		{at(26, 3), false},  // early Thursday
		{at(27, 12), false}, // Friday noon
	} {
		if got := w.Contains(tc.t); got != tc.want {
			t.Errorf("%s (%s): %v, want %v", tc.t, tc.t.Weekday(), got, tc.want)
		}
	}
	// Built by hand without Parse: still answers, never races.
	hand := TimeWindow{Start: "00:00", End: "24:00"}
	if !hand.Contains(time.Now()) {
		t.Error("an all-day window must contain now")
	}
}
