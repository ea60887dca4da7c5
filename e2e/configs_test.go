package e2e

// The test stack runs the repository's own configuration, generated from the shipped files rather
// than kept as copies that could drift. Only addresses and timings change, and every change is
// recorded (Changes) so the timeline doc can print it next to the numbers it explains:
//
// prometheus/prometheus.yml
//   - global scrape_interval and evaluation_interval (and any per-job scrape_interval) shortened to
//     promScrapeInterval / promEvalInterval; scrape_timeout capped at the new interval;
//   - rule_files point at the repository's rules/ directory (same file names);
//   - static targets (prometheus, alertmanager, remediator, ...) become 127.0.0.1:<free port>;
//     targets of components the test does not run (grafana, the socket proxy) are dropped;
//   - docker_sd_configs: host is the local engine socket, refresh_interval shortened, a filter keeps
//     only containers of this test (label selfheal.e2e=1), and one relabel rule is appended that sets
//     __address__ to 127.0.0.1:<prometheus.port label>: the demo containers use host networking, each
//     on its own loopback port, so the container's network IP (empty in host mode) cannot be used;
//   - alerting targets become the test Alertmanager's address.
// alertmanager/alertmanager.yml
//   - group_wait and group_interval divided by amTimeScale on every route that sets them (and
//     the root's defaults), so that their order is kept: the person's route of a healable alert
//     still waits longer than the remediator's, which the silence-while-healing pattern needs;
//   - webhook URLs: the remediator's becomes 127.0.0.1:<port>/webhook, any other (the human
//     receiver's placeholder) points at a recorder in the test, so an escalation is seen arriving;
//   - credentials_file points at the test's token file.
// remediator/playbooks.yml
//   - global.prometheus_url is the test Prometheus;
//   - in http step URLs, a host:port written for the compose network is replaced by 127.0.0.1 and
//     the port of the container named by the alert's container label (a plain text/template choice).

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	promScrapeInterval = 2 * time.Second
	promEvalInterval   = 1 * time.Second
	dockerSDRefresh    = 2 * time.Second
	// amTimeScale divides Alertmanager's group_wait and group_interval: the shipped 5s/10s
	// become 1s/2s, and the person's 20s wait for a healable alert 4s.
	amTimeScale = 5
	e2eLabel    = "selfheal.e2e"
)

// stackAddrs says where each component of the test stack listens (host:port on 127.0.0.1) and
// where the generated files live.
type stackAddrs struct {
	Prometheus   string
	Alertmanager string
	Remediator   string
	Loadgen      string
	Oncall       string // recorder standing in for the human receiver: full URL
	DockerHost   string
	RulesDir     string
	TokenFile    string
	// Ports maps a container name to its loopback port.
	Ports map[string]int
}

// Changes lists, per shipped file, what the generated test copy changed.
type Changes map[string][]string

func (c Changes) add(file, format string, args ...any) {
	c[file] = append(c[file], fmt.Sprintf(format, args...))
}

func promDur(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// parseDur reads a Prometheus duration string ("15s", "1m", "1h30m").
func parseDur(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w") || strings.HasSuffix(s, "y") {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// shorten sets m[key] to d when it is absent or longer, recording the change.
func shorten(m map[string]any, key string, d time.Duration, where string, ch Changes, file string) {
	old, ok := m[key].(string)
	if ok {
		if od, ok := parseDur(old); ok && od <= d {
			return
		}
	}
	m[key] = promDur(d)
	if old == "" {
		old = "(default)"
	}
	ch.add(file, "%s%s: %s -> %s", where, key, old, promDur(d))
}

// amDefaults are Alertmanager's own defaults, which a root route without the key runs with.
var amDefaults = map[string]time.Duration{"group_wait": 30 * time.Second, "group_interval": 5 * time.Minute}

// scale divides m[key] by amTimeScale, recording the change; at the root a missing key is
// Alertmanager's default, scaled the same way. Zero stays zero.
func scale(m map[string]any, key string, def time.Duration, root bool, where string, ch Changes, file string) error {
	old, ok := m[key].(string)
	d := def
	if ok {
		var valid bool
		if d, valid = parseDur(old); !valid {
			return fmt.Errorf("%s: %s%s: %q is no duration the test can scale", file, where, key, old)
		}
	} else if !root {
		return nil
	} else {
		old = "(default " + promDur(def) + ")"
	}
	if d == 0 {
		return nil
	}
	nd := (d / amTimeScale).Round(time.Second)
	if nd < time.Second {
		nd = time.Second
	}
	m[key] = promDur(nd)
	ch.add(file, "%s%s: %s -> %s", where, key, old, promDur(nd))
	return nil
}

// componentAddr maps a compose host name to the test stack's address; "" drops the target.
func (a stackAddrs) componentAddr(host string) (string, bool) {
	switch host {
	case "prometheus", "localhost", "127.0.0.1":
		return a.Prometheus, true
	case "alertmanager":
		return a.Alertmanager, true
	case "remediator":
		return a.Remediator, true
	case "loadgen":
		return a.Loadgen, true
	case "grafana", "socket-proxy", "docker-socket-proxy", "dockerproxy", "postgres", "postgresql":
		return "", true
	}
	return "", false
}

// genPrometheusConfig turns the shipped prometheus.yml into the test's.
func genPrometheusConfig(shipped []byte, a stackAddrs, ch Changes) ([]byte, error) {
	const file = "prometheus/prometheus.yml"
	var cfg map[string]any
	if err := yaml.Unmarshal(shipped, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("%s: empty", file)
	}
	global := asMap(cfg["global"])
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	shorten(global, "scrape_interval", promScrapeInterval, "global.", ch, file)
	shorten(global, "evaluation_interval", promEvalInterval, "global.", ch, file)
	if _, ok := global["scrape_timeout"]; ok {
		shorten(global, "scrape_timeout", promScrapeInterval, "global.", ch, file)
	}

	var rules []any
	for _, r := range asList(cfg["rule_files"]) {
		s, _ := r.(string)
		n := filepath.Join(a.RulesDir, path.Base(s))
		rules = append(rules, n)
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("%s: no rule_files: the test needs the repository's rules", file)
	}
	cfg["rule_files"] = rules
	ch.add(file, "rule_files: the repository's rules/ directory (same file names)")

	am := asMap(cfg["alerting"])
	amn := 0
	for _, x := range asList(am["alertmanagers"]) {
		for _, sc := range asList(asMap(x)["static_configs"]) {
			sc := asMap(sc)
			sc["targets"] = []any{a.Alertmanager}
			amn++
		}
	}
	if amn == 0 {
		return nil, fmt.Errorf("%s: no alerting.alertmanagers static_configs", file)
	}
	ch.add(file, "alerting targets -> 127.0.0.1:<alertmanager port>")

	var jobs []any
	for _, j := range asList(cfg["scrape_configs"]) {
		job := asMap(j)
		name, _ := job["job_name"].(string)
		where := "job " + name + ": "
		if _, ok := job["scrape_interval"]; ok {
			shorten(job, "scrape_interval", promScrapeInterval, where, ch, file)
		}
		if _, ok := job["scrape_timeout"]; ok {
			shorten(job, "scrape_timeout", promScrapeInterval, where, ch, file)
		}
		keep := false
		for _, sc := range asList(job["static_configs"]) {
			sc := asMap(sc)
			var targets []any
			for _, t := range asList(sc["targets"]) {
				ts, _ := t.(string)
				host := ts
				if i := strings.LastIndex(ts, ":"); i >= 0 {
					host = ts[:i]
				}
				addr, known := a.componentAddr(host)
				if !known {
					return nil, fmt.Errorf("%s: job %q: target %q is no component the test runs", file, name, ts)
				}
				if addr == "" {
					ch.add(file, "%starget %s dropped (not part of the test stack)", where, ts)
					continue
				}
				targets = append(targets, addr)
				ch.add(file, "%starget %s -> 127.0.0.1:<port>", where, ts)
			}
			sc["targets"] = targets
			if len(targets) > 0 {
				keep = true
			}
		}
		sds := asList(job["docker_sd_configs"])
		for _, sd := range sds {
			sd := asMap(sd)
			if h, _ := sd["host"].(string); h != a.DockerHost {
				sd["host"] = a.DockerHost
				ch.add(file, "%sdocker_sd_configs.host %s -> the local engine socket", where, h)
			}
			// The proxy's TLS or auth settings do not apply to the local socket.
			for _, k := range []string{"tls_config", "basic_auth", "authorization"} {
				if _, ok := sd[k]; ok {
					delete(sd, k)
					ch.add(file, "%sdocker_sd_configs.%s removed (local socket)", where, k)
				}
			}
			shorten(sd, "refresh_interval", dockerSDRefresh, where+"docker_sd_configs.", ch, file)
			filters := asList(sd["filters"])
			filters = append(filters, map[string]any{"name": "label", "values": []any{e2eLabel + "=1"}})
			sd["filters"] = filters
			ch.add(file, "%sdocker_sd_configs.filters += label %s=1 (only this test's containers)", where, e2eLabel)
			keep = true
		}
		if len(sds) > 0 {
			rl := asList(job["relabel_configs"])
			rl = append(rl, map[string]any{
				"source_labels": []any{"__meta_docker_container_label_prometheus_port"},
				"target_label":  "__address__",
				"replacement":   "127.0.0.1:$1",
			})
			job["relabel_configs"] = rl
			ch.add(file, "%srelabel_configs += __address__ = 127.0.0.1:<prometheus.port label> (host networking)", where)
		}
		for _, k := range []string{"file_sd_configs", "dns_sd_configs", "kubernetes_sd_configs", "consul_sd_configs"} {
			if _, ok := job[k]; ok {
				return nil, fmt.Errorf("%s: job %q uses %s, which the test does not rewrite", file, name, k)
			}
		}
		if !keep {
			ch.add(file, "job %s dropped (no target in the test stack)", name)
			continue
		}
		jobs = append(jobs, job)
	}
	cfg["scrape_configs"] = jobs
	return yaml.Marshal(cfg)
}

// genAlertmanagerConfig turns the shipped alertmanager.yml into the test's.
func genAlertmanagerConfig(shipped []byte, a stackAddrs, ch Changes) ([]byte, error) {
	const file = "alertmanager/alertmanager.yml"
	var cfg map[string]any
	if err := yaml.Unmarshal(shipped, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("%s: empty", file)
	}
	var err error
	var walk func(r map[string]any, where string, root bool)
	walk = func(r map[string]any, where string, root bool) {
		// repeat_interval stays as shipped: the remediator's route already re-sends every minute,
		// which is what lets it retry a still-firing alert after a cooldown.
		for _, k := range []string{"group_wait", "group_interval"} {
			if err == nil {
				err = scale(r, k, amDefaults[k], root, where, ch, file)
			}
		}
		for i, c := range asList(r["routes"]) {
			walk(asMap(c), fmt.Sprintf("%sroutes[%d].", where, i), false)
		}
	}
	route := asMap(cfg["route"])
	if route == nil {
		return nil, fmt.Errorf("%s: no route", file)
	}
	walk(route, "route.", true)
	if err != nil {
		return nil, err
	}

	remediatorHooks := 0
	for _, r := range asList(cfg["receivers"]) {
		r := asMap(r)
		name, _ := r["name"].(string)
		for _, w := range asList(r["webhook_configs"]) {
			w := asMap(w)
			old, _ := w["url"].(string)
			u, err := url.Parse(old)
			if err != nil {
				return nil, fmt.Errorf("%s: receiver %q: url %q: %w", file, name, old, err)
			}
			if strings.HasPrefix(u.Hostname(), "remediator") || strings.HasSuffix(u.Path, "/webhook") && name == "remediator" {
				w["url"] = "http://" + a.Remediator + u.Path
				remediatorHooks++
				ch.add(file, "receiver %s: url %s -> http://127.0.0.1:<remediator port>%s", name, old, u.Path)
			} else {
				w["url"] = a.Oncall + "/" + name
				ch.add(file, "receiver %s: url %s -> a recorder in the test (the human receiver's stand-in)", name, old)
			}
			if hc := asMap(w["http_config"]); hc != nil {
				for _, k := range []string{"authorization", "basic_auth"} {
					if au := asMap(hc[k]); au != nil {
						for _, f := range []string{"credentials_file", "password_file"} {
							if _, ok := au[f]; ok {
								au[f] = a.TokenFile
								ch.add(file, "receiver %s: %s.%s -> the test's token file", name, k, f)
							}
						}
					}
				}
			}
		}
	}
	if remediatorHooks == 0 {
		return nil, fmt.Errorf("%s: no webhook to the remediator found", file)
	}
	return yaml.Marshal(cfg)
}

// composeHostPort matches the host:port part of an http step URL written for the compose network,
// e.g. "{{ .Labels.container }}:8080" or "user-service:8080".
var composeHostPort = regexp.MustCompile(`^(https?://)([^/]+)(/.*)?$`)

// genPlaybooks turns the shipped playbooks.yml into the test's. It edits the YAML tree in place so
// every other key, and the file's order, stay as shipped.
func genPlaybooks(shipped []byte, a stackAddrs, ch Changes) ([]byte, error) {
	const file = "remediator/playbooks.yml"
	var doc yaml.Node
	if err := yaml.Unmarshal(shipped, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	portChoice := portTemplate(a.Ports)
	setProm := false
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "prometheus_url" && v.Kind == yaml.ScalarNode {
					ch.add(file, "global.prometheus_url %s -> http://127.0.0.1:<prometheus port>", v.Value)
					v.Value = "http://" + a.Prometheus
					setProm = true
					continue
				}
				if k.Value == "url" && v.Kind == yaml.ScalarNode && key == "http" {
					m := composeHostPort.FindStringSubmatch(v.Value)
					if m != nil && !strings.HasPrefix(m[2], "127.0.0.1") {
						nv := m[1] + "127.0.0.1:" + portChoice + m[3]
						ch.add(file, "http url %s -> %s", v.Value, "127.0.0.1:<port of the alert's container>"+m[3])
						v.Value = nv
					}
					continue
				}
				walk(v, k.Value)
			}
		}
	}
	walk(&doc, "")
	if !setProm {
		ch.add(file, "global.prometheus_url unset: passed as --prometheus.url")
	}
	return yaml.Marshal(&doc)
}

// portTemplate renders a text/template expression that yields the loopback port of the container
// named by the alert's container label; the default branch keeps a URL invalid rather than wrong.
func portTemplate(ports map[string]int) string {
	names := make([]string, 0, len(ports))
	for n := range ports {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i == 0 {
			b.WriteString("{{ if ")
		} else {
			b.WriteString("{{ else if ")
		}
		fmt.Fprintf(&b, `eq .Labels.container %q }}%d`, n, ports[n])
	}
	if len(names) == 0 {
		return "0"
	}
	b.WriteString("{{ else }}0{{ end }}")
	return b.String()
}
