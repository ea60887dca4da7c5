package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
)

// parseMatcher is Alertmanager's own parser in its default mode: the UTF-8 parser, falling back
// to the classic one for inputs only it accepts, so any matcher Alertmanager takes, we take.
var parseMatcher = compat.FallbackMatcherParser(promslog.NewNopLogger())

type validator struct {
	e   *errs
	pos map[string]int
	cfg *Config
}

// line returns where the first of keys under prefix is given in the file.
func (v *validator) line(prefix string, keys ...string) (int, bool) {
	for _, k := range keys {
		if l, ok := v.pos[joinPath(prefix, k)]; ok {
			return l, true
		}
	}
	return 0, false
}

// scope is a part of the file that holds settings: the defaults block, a playbook or a step.
// A value that is wrong only because the scope inherited it is reported where it was written,
// once, not in every scope that inherited it.
type scope struct {
	v        *validator
	prefix   string
	who      string
	fallback int // line to use when a key was not written here; 0: do not report
}

func (s scope) report(keys []string, hint, format string, args ...any) {
	line, ok := s.v.line(s.prefix, keys...)
	if !ok {
		if s.fallback == 0 {
			return
		}
		line = s.fallback
	}
	s.v.e.add(line, hint, s.who+": "+format, args...)
}

func validate(cfg *Config, pos map[string]int, e *errs, o Options) {
	v := &validator{e: e, pos: pos, cfg: cfg}
	v.global(o)
	defLine := 1
	if l, ok := pos["defaults"]; ok {
		defLine = l
	}
	d := &cfg.Defaults
	ds := scope{v: v, prefix: "defaults", who: "defaults", fallback: defLine}
	v.policy(ds, d.Target, d.Cooldown, d.Budget, d.BlastRadius, d.Adaptive, d.StepTimeout)
	v.verify(ds.sub("verify"), d.Verify)

	if len(cfg.Playbooks) == 0 {
		l, ok := pos["playbooks"]
		if !ok {
			l = 1
		}
		e.add(l, "add a `playbooks:` list; see remediator/playbooks.yml", "no playbooks defined")
	}
	names := map[string]int{}
	matchers := map[string]string{}
	for i, pb := range cfg.Playbooks {
		v.playbook(i, pb, names, matchers)
	}
}

func (s scope) sub(key string) scope {
	s.prefix = joinPath(s.prefix, key)
	return s
}

func (v *validator) global(o Options) {
	g := v.cfg.Global
	gs := scope{v: v, prefix: "global", who: "global", fallback: 1}
	if g.PrometheusURL != "" {
		if err := checkPrometheusURL(g.PrometheusURL); err != nil {
			if o.PrometheusURL != "" {
				v.e.add(1, "", "--prometheus.url: %v", err)
			} else {
				gs.report([]string{"prometheus_url", "prometheus.url"}, "e.g. http://prometheus:9090", "prometheus_url: %v", err)
			}
		}
	}
	v.alertmanager(o)
	if g.MaxConcurrentHeals < 1 {
		gs.report([]string{"max_concurrent_heals"}, "1 heals one target at a time", "max_concurrent_heals must be at least 1, got %d", g.MaxConcurrentHeals)
	}
	if g.HealsPerMinute <= 0 {
		gs.report([]string{"heals_per_minute"}, "e.g. 6", "heals_per_minute must be greater than 0, got %g", g.HealsPerMinute)
	}
	if g.HistoryMaxAge <= 0 {
		gs.report([]string{"history_max_age"}, "e.g. 7d", "history_max_age must be greater than 0")
	}
	if g.HistoryMaxEntries < 1 {
		gs.report([]string{"history_max_entries"}, "e.g. 1000", "history_max_entries must be at least 1, got %d", g.HistoryMaxEntries)
	}
}

func checkPrometheusURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a valid URL", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an http:// or https:// URL with a host", s)
	}
	return nil
}

func (v *validator) policy(s scope, target Template, cd Cooldown, b Budget, br BlastRadius, a Adaptive, stepTimeout model.Duration) {
	if strings.TrimSpace(target.Text) == "" {
		s.report([]string{"target"}, "e.g. target: '{{ .Labels.container }}'", "target is empty")
	}
	if cd.Initial <= 0 {
		s.report([]string{"cooldown.initial"}, "e.g. 1m", "cooldown.initial must be greater than 0")
	}
	if cd.Factor < 1 {
		s.report([]string{"cooldown.factor"}, "1 keeps the cooldown constant, 2 doubles it after each consecutive heal", "cooldown.factor must be at least 1, got %g", cd.Factor)
	}
	if cd.Max < cd.Initial {
		s.report([]string{"cooldown.max", "cooldown.initial"}, "raise cooldown.max or lower cooldown.initial", "cooldown.max (%s) is shorter than cooldown.initial (%s)", cd.Max, cd.Initial)
	}
	if cd.ResetAfter <= 0 {
		s.report([]string{"cooldown.reset_after"}, "e.g. 10m", "cooldown.reset_after must be greater than 0")
	}
	if b.Attempts < 1 {
		s.report([]string{"budget.attempts"}, "e.g. 3", "budget.attempts must be at least 1, got %d", b.Attempts)
	}
	if b.Window <= 0 {
		s.report([]string{"budget.window"}, "e.g. 1h", "budget.window must be greater than 0")
	}
	if br.MaxTargets < 0 {
		s.report([]string{"blast_radius.max_targets"}, "0 turns the limit off", "blast_radius.max_targets must not be negative, got %d", br.MaxTargets)
	}
	if br.MaxRatio < 0 || br.MaxRatio > 1 {
		s.report([]string{"blast_radius.max_ratio"}, "0 turns the limit off, 0.5 means half of the playbook's targets", "blast_radius.max_ratio must be between 0 and 1, got %g", br.MaxRatio)
	}
	if br.Window <= 0 {
		s.report([]string{"blast_radius.window"}, "e.g. 5m", "blast_radius.window must be greater than 0")
	}
	if a.MinSamples < 1 {
		s.report([]string{"adaptive.min_samples"}, "e.g. 5", "adaptive.min_samples must be at least 1, got %d", a.MinSamples)
	}
	if a.MinSuccessRatio < 0 || a.MinSuccessRatio > 1 {
		s.report([]string{"adaptive.min_success_ratio"}, "e.g. 0.2", "adaptive.min_success_ratio must be between 0 and 1, got %g", a.MinSuccessRatio)
	}
	if a.HalfLife <= 0 {
		s.report([]string{"adaptive.half_life"}, "e.g. 24h", "adaptive.half_life must be greater than 0")
	}
	if a.ExploreEvery < 0 {
		s.report([]string{"adaptive.explore_every"}, "e.g. 10; 0 never tries a skipped step", "adaptive.explore_every must not be negative, got %d", a.ExploreEvery)
	}
	if stepTimeout <= 0 {
		s.report([]string{"step_timeout"}, "e.g. 30s", "step_timeout must be greater than 0")
	}
}

func (v *validator) verify(s scope, vf Verify) {
	if vf.Timeout <= 0 {
		s.report([]string{"timeout"}, "e.g. 2m", "verify.timeout must be greater than 0")
	}
	if vf.Interval <= 0 {
		s.report([]string{"interval"}, "e.g. 5s", "verify.interval must be greater than 0")
	} else if vf.Timeout > 0 && vf.Interval > vf.Timeout {
		s.report([]string{"interval", "timeout"}, "lower verify.interval", "verify.interval (%s) is longer than verify.timeout (%s)", vf.Interval, vf.Timeout)
	}
	if vf.Skip && !vf.Query.IsZero() {
		s.report([]string{"skip", "query"}, "remove one of them", "verify.skip and verify.query exclude each other")
	}
	if err := checkPromQL(vf.Query); err != nil {
		s.report([]string{"query"}, promQLHint(err), "verify.query %v", err)
	}
	if !vf.Query.IsZero() && v.cfg.Global.PrometheusURL == "" {
		s.report([]string{"query"}, "set global.prometheus_url (or --prometheus.url), or drop the query to verify by the alert resolving", "verify.query needs a Prometheus to ask, but global.prometheus_url is not set")
	}
	if err := checkPromQL(vf.HealthyQuery); err != nil {
		s.report([]string{"healthy_query"}, "test the expression in Prometheus' expression browser first", "verify.healthy_query %v", err)
	}
	if !vf.HealthyQuery.IsZero() && v.cfg.Global.PrometheusURL == "" {
		s.report([]string{"healthy_query"}, "set global.prometheus_url (or --prometheus.url), or drop the query", "verify.healthy_query needs a Prometheus to ask, but global.prometheus_url is not set")
	}
}

func (v *validator) playbook(i int, pb *Playbook, names map[string]int, matchers map[string]string) {
	prefix := fmt.Sprintf("playbooks[%d]", i)
	line := pb.Line
	who := fmt.Sprintf("playbook %d", i+1)
	switch {
	case pb.Name == "":
		v.e.add(line, "add name: <short-name>, e.g. name: memory-high", "playbook %d has no name", i+1)
	case !NamePattern.MatchString(pb.Name):
		l, _ := v.line(prefix, "name")
		v.e.add(l, "use letters, digits, '_', '.' and '-' only", "playbook name %q is not a valid name", pb.Name)
		who = fmt.Sprintf("playbook %q", pb.Name)
	default:
		who = fmt.Sprintf("playbook %q", pb.Name)
		if first, dup := names[pb.Name]; dup {
			l, _ := v.line(prefix, "name")
			v.e.add(l, "give each playbook its own name", "playbook name %q is already used on line %d", pb.Name, first)
		} else {
			l, _ := v.line(prefix, "name")
			names[pb.Name] = l
		}
	}
	s := scope{v: v, prefix: prefix, who: who}
	v.policy(s, pb.Target, pb.Cooldown, pb.Budget, pb.BlastRadius, pb.Adaptive, pb.StepTimeout)
	v.verify(s.sub("verify"), pb.Verify)

	// Matchers, with Alertmanager's parser.
	if len(pb.Match) == 0 {
		l, ok := v.line(prefix, "match")
		if !ok {
			l = line
		}
		v.e.add(l, `add match: ['alertname="ServiceMemoryHigh"']`, "%s has no matchers; it would match every alert", who)
	}
	pb.Matchers = nil
	for j, m := range pb.Match {
		l, _ := v.line(prefix, fmt.Sprintf("match[%d]", j))
		pm, err := parseMatcher(m, "playbook "+pb.Name)
		if err != nil {
			v.e.add(l, `use Alertmanager's syntax, e.g. alertname="ServiceMemoryHigh" or severity=~"warning|critical"`, "%s: invalid matcher %q: %v", who, m, err)
			continue
		}
		pb.Matchers = append(pb.Matchers, pm)
	}
	if len(pb.Matchers) > 0 && len(pb.Matchers) == len(pb.Match) {
		key := matcherKey(pb)
		if other, dup := matchers[key]; dup {
			l, ok := v.line(prefix, "match")
			if !ok {
				l = line
			}
			v.e.add(l, "playbooks are tried in order and the first match wins; merge the two or make the matchers differ", "%s has the same matchers as %s, so it can never be chosen", who, other)
		} else {
			matchers[key] = who
		}
	}

	for j := range pb.Preconditions {
		pc := &pb.Preconditions[j]
		pp := fmt.Sprintf("%s.preconditions[%d]", prefix, j)
		l, _ := v.line(pp, "query")
		if l == 0 {
			l = v.pos[pp]
		}
		if strings.TrimSpace(pc.Query.Text) == "" {
			v.e.add(l, `e.g. query: 'up{job="demo-services"} == 1'`, "%s: precondition %d has no query", who, j+1)
		} else if err := checkPromQL(pc.Query); err != nil {
			v.e.add(l, promQLHint(err), "%s: precondition %d: query %v", who, j+1, err)
		} else if v.cfg.Global.PrometheusURL == "" {
			v.e.add(l, "set global.prometheus_url (or --prometheus.url)", "%s: preconditions need a Prometheus to ask, but global.prometheus_url is not set", who)
		}
	}
	for j := range pb.TimeWindows {
		tw := &pb.TimeWindows[j]
		tp := fmt.Sprintf("%s.time_windows[%d]", prefix, j)
		if key, err := tw.compile(); err != nil {
			l, ok := v.line(tp, key)
			if !ok {
				l = v.pos[tp]
			}
			v.e.add(l, timeWindowHint(key), "%s: time window %d: %v", who, j+1, err)
		}
	}

	if len(pb.Steps) == 0 {
		l, ok := v.line(prefix, "steps")
		if !ok {
			l = line
		}
		v.e.add(l, "add steps:, e.g. - docker: {action: restart}", "%s has no steps", who)
	}
	stepNames := map[string]int{}
	for j, st := range pb.Steps {
		v.step(prefix, who, j, st, stepNames)
	}
}

func timeWindowHint(key string) string {
	switch key {
	case "weekdays":
		return "use monday..sunday (or mon..sun) and ranges such as monday:friday"
	case "location":
		return "use an IANA zone name such as Europe/Berlin or UTC"
	}
	return "use 24h HH:MM such as 08:00 and 18:30"
}

func matcherKey(pb *Playbook) string {
	ss := make([]string, len(pb.Matchers))
	for i, m := range pb.Matchers {
		ss[i] = m.String()
	}
	sort.Strings(ss)
	return strings.Join(ss, ",")
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
var headerName = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")

func (v *validator) step(pbPrefix, pbWho string, j int, st *Step, names map[string]int) {
	prefix := fmt.Sprintf("%s.steps[%d]", pbPrefix, j)
	who := fmt.Sprintf("%s: step %d", pbWho, j+1)
	if st.named {
		who = fmt.Sprintf("%s: step %q", pbWho, st.Name)
	}
	at := func(keys ...string) int {
		if l, ok := v.line(prefix, keys...); ok {
			return l
		}
		return st.Line
	}
	add := func(line int, hint, format string, args ...any) {
		v.e.add(line, hint, who+": "+format, args...)
	}

	var kinds []string
	for _, k := range StepKinds() {
		if _, ok := v.pos[prefix+"."+k]; ok {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		add(st.Line, "add exactly one of "+strings.Join(StepKinds(), ", "), "step has no action")
	case 1:
	default:
		add(at(kinds[1]), "split it into one step per action", "step has %d actions (%s); a step does exactly one thing", len(kinds), strings.Join(kinds, ", "))
	}

	if st.Name != "" {
		if !NamePattern.MatchString(st.Name) {
			add(at("name"), "use letters, digits, '_', '.' and '-' only", "step name %q is not a valid name", st.Name)
		} else if first, dup := names[st.Name]; dup {
			add(at("name"), "give each step of a playbook its own name", "step name %q is already used on line %d", st.Name, first)
		} else {
			names[st.Name] = at("name")
		}
	}

	_, explicitTimeout := v.pos[prefix+".timeout"]
	if explicitTimeout {
		if st.Timeout <= 0 {
			add(at("timeout"), "e.g. 30s", "timeout must be greater than 0")
		}
	}
	v.verify(scope{v: v, prefix: prefix + ".verify", who: who}, st.Verify)

	if len(kinds) != 1 {
		return
	}
	switch kinds[0] {
	case "http":
		v.httpStep(st, add, at)
	case "docker":
		v.dockerStep(st, add, at)
	case "kubernetes":
		v.kubernetesStep(st, add, at)
	case "command":
		v.commandStep(st, add, at)
	case "swarm":
		v.swarmStep(st, add, at)
	case "wait":
		if st.Wait == nil || *st.Wait <= 0 {
			add(at("wait"), "e.g. wait: 30s", "wait must be a duration greater than 0")
			return
		}
		if explicitTimeout && st.Timeout > 0 && st.Timeout <= *st.Wait {
			add(at("timeout"), "raise timeout above the wait, or leave it out", "timeout (%s) is not longer than the wait (%s)", st.Timeout, *st.Wait)
		}
	}
}

type addFunc func(line int, hint, format string, args ...any)

func (v *validator) httpStep(st *Step, add addFunc, at func(...string) int) {
	h := st.HTTP
	if h == nil {
		add(at("http"), "e.g. http: {url: 'http://{{ .Labels.container }}:8080/recover/flush-cache'}", "http action needs a url")
		return
	}
	if !httpMethods[h.Method] {
		add(at("http.method"), "use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS", "http.method %q is not an HTTP method", h.Method)
	}
	switch {
	case strings.TrimSpace(h.URL.Text) == "":
		add(at("http.url", "http"), "e.g. url: 'http://{{ .Labels.container }}:8080/recover/flush-cache'", "http.url is empty")
	case !strings.HasPrefix(h.URL.Text, "http://") && !strings.HasPrefix(h.URL.Text, "https://"):
		add(at("http.url"), "write the scheme out, e.g. http://{{ .Labels.container }}:8080/...", "http.url %q must start with http:// or https://", h.URL.Text)
	case !strings.Contains(h.URL.Text, "{{"):
		if err := checkURL(h.URL.Text); err != nil {
			add(at("http.url"), "", "http.url: %v", err)
		}
	}
	for _, c := range h.ExpectStatus {
		if c < 100 || c > 599 {
			add(at("http.expect_status"), "e.g. expect_status: [200, 204]", "http.expect_status %d is not an HTTP status code", c)
		}
	}
	keys := make([]string, 0, len(h.Headers))
	for k := range h.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !headerName.MatchString(k) {
			add(at("http.headers."+k, "http.headers"), "header names are letters, digits and - only", "http.headers: %q is not a valid header name", k)
		}
		if strings.ContainsAny(h.Headers[k], "\r\n\x00") {
			add(at("http.headers."+k, "http.headers"), "write the value on one line", "http.headers: value of %q contains a line break", k)
		}
	}
}

func (v *validator) dockerStep(st *Step, add addFunc, at func(...string) int) {
	d := st.Docker
	if d == nil {
		add(at("docker"), "e.g. docker: {action: restart}", "docker action needs an action")
		return
	}
	valid := false
	for _, a := range DockerActions {
		valid = valid || a == d.Action
	}
	if !valid {
		add(at("docker.action", "docker"), "use one of "+strings.Join(DockerActions, ", "), "docker.action %q is not supported", d.Action)
	}
	if d.Signal != "" {
		if d.Action != "kill" {
			add(at("docker.signal"), "remove signal, or use action: kill", "docker.signal is only used by action kill, not %q", d.Action)
		} else if _, ok := Signals[d.Signal]; !ok {
			add(at("docker.signal"), "use one of "+strings.Join(SignalNames(), ", ")+", or its number", "docker.signal %q is not a signal", d.Signal)
		}
	}
	if d.StopTimeout > 0 && d.Action != "restart" && d.Action != "stop" && d.Action != "recreate" {
		add(at("docker.stop_timeout"), "remove stop_timeout", "docker.stop_timeout is not used by action %q", d.Action)
	} else if d.StopTimeout > 0 && st.Timeout > 0 && d.StopTimeout >= st.Timeout {
		add(at("docker.stop_timeout", "timeout"), "raise the step's timeout or lower stop_timeout", "docker.stop_timeout (%s) leaves no time within the step's timeout (%s)", d.StopTimeout, st.Timeout)
	}
	if t := d.Container.Text; t != "" && !strings.Contains(t, "{{") && ValidContainerName(strings.TrimPrefix(t, "/")) != nil {
		add(at("docker.container"), "container names are letters, digits, '_', '.' and '-'", "docker.container %q is not a valid container name", t)
	}
}

func (v *validator) commandStep(st *Step, add addFunc, at func(...string) int) {
	c := st.Command
	if c == nil || len(c.Argv) == 0 {
		add(at("command.argv", "command"), `e.g. command: {argv: ["/usr/local/bin/flush", "{{ .Labels.container }}"]}`, "command.argv is empty")
		return
	}
	prog := c.Argv[0].Text
	l := at("command.argv[0]", "command.argv")
	switch {
	case strings.TrimSpace(prog) == "":
		add(l, "name the program, e.g. /usr/local/bin/flush", "command.argv[0] is empty")
	case strings.Contains(prog, "{{"):
		add(l, "write the program out; templates belong in the arguments", "command.argv[0] %q must not be templated: an alert must not choose the program", prog)
	case strings.Contains(prog, "/") && !path.IsAbs(prog):
		add(l, "use an absolute path such as /usr/local/bin/flush, or a plain name looked up in PATH", "command.argv[0] %q is a relative path", prog)
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envName.MatchString(k) {
			add(at("command.env."+k, "command.env"), "use letters, digits and _ only", "command.env: %q is not a valid variable name", k)
		} else if strings.HasPrefix(k, "ALERT_") {
			add(at("command.env."+k, "command.env"), "choose another name", "command.env: %q is reserved for the alert's labels and annotations", k)
		}
	}
}
