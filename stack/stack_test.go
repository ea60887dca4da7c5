package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/grafana"
	"github.com/selfheal/selfheal/internal/testutil"
)

func TestComposeFilesExist(t *testing.T) {
	c := loadCompose(t)
	root := testutil.RepoRoot(t)
	for _, s := range c.Services {
		for _, m := range c.mounts(t, s) {
			if !m.Bind {
				if _, ok := c.Volumes[m.Source]; !ok {
					t.Errorf("service %s mounts volume %q, which the top-level volumes do not declare", s.Name, m.Source)
				}
				continue
			}
			if filepath.IsAbs(m.Source) {
				continue // a host path such as the engine socket
			}
			if !fileExists(filepath.Join(root, m.Source)) {
				t.Errorf("service %s mounts %s at %s, but the repository has no %s", s.Name, m.Source, m.Target, m.Source)
			}
		}
		if ctx, dockerfile, ok := s.build(); ok {
			for _, p := range []string{ctx, dockerfile} {
				if !fileExists(filepath.Join(root, p)) {
					t.Errorf("service %s builds from %s, which does not exist", s.Name, p)
				}
			}
		}
	}
	for name, sec := range c.Secrets {
		b, err := os.ReadFile(filepath.Join(root, sec.File))
		if err != nil {
			t.Errorf("secret %s: %v", name, err)
			continue
		}
		if strings.TrimSpace(string(b)) == "" {
			t.Errorf("secret %s: %s is empty", name, sec.File)
		}
	}
}

// Every image is pinned to a version: a stack that works today must work the same next month.
func TestImagesPinned(t *testing.T) {
	c := loadCompose(t)
	pinned := regexp.MustCompile(`^[a-z0-9./_-]+:[vV]?[0-9][0-9A-Za-z._-]*(@sha256:[0-9a-f]{64})?$`)
	built := map[string]bool{}
	for _, s := range c.Services {
		if _, _, ok := s.build(); ok {
			built[s.Image] = true
		}
	}
	for _, s := range c.Services {
		if built[s.Image] {
			continue // built here, by this service or another
		}
		if !pinned.MatchString(s.Image) {
			t.Errorf("service %s: image %q is not pinned to a version", s.Name, s.Image)
		}
	}
	froms := 0
	for _, df := range []string{"services/Dockerfile", "remediator/Dockerfile"} {
		f, err := os.Open(filepath.Join(testutil.RepoRoot(t), df))
		if err != nil {
			t.Fatal(err)
		}
		stages := map[string]bool{}
		args := map[string]string{} // ARG defaults, which a FROM may name
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 2 && strings.EqualFold(fields[0], "ARG") {
				if k, v, ok := strings.Cut(fields[1], "="); ok {
					args[k] = v
				}
			}
			if len(fields) < 2 || !strings.EqualFold(fields[0], "FROM") {
				continue
			}
			froms++
			img := os.Expand(fields[1], func(k string) string { return args[k] })
			if len(fields) >= 4 && strings.EqualFold(fields[2], "AS") {
				stages[fields[3]] = true
			}
			if img != "scratch" && !stages[img] && !pinned.MatchString(img) {
				t.Errorf("%s: base image %q is not pinned to a version", df, img)
			}
		}
		f.Close()
		if last := lastFrom(t, df); last != "scratch" && !strings.Contains(last, "distroless") {
			t.Errorf("%s: runtime image %q is not minimal (scratch or distroless)", df, last)
		}
		if !regexp.MustCompile(`(?m)^USER\s+[1-9][0-9]*`).MatchString(readFile(t, df)) {
			t.Errorf("%s: the runtime stage does not switch to a non-root numeric USER", df)
		}
	}
	if froms < 4 {
		t.Errorf("Dockerfiles have %d FROM lines; want a build and a runtime stage each", froms)
	}
}

func lastFrom(t *testing.T, df string) string {
	var last string
	for _, line := range strings.Split(readFile(t, df), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.EqualFold(f[0], "FROM") {
			last = f[1]
		}
	}
	return last
}

// readFile returns the repository's file rel.
func readFile(t testing.TB, rel string) string {
	t.Helper()
	return testutil.ReadFile(t, filepath.Join(testutil.RepoRoot(t), rel))
}

// The Dockerfiles build packages that exist, with a main.
func TestDockerfilesBuildMains(t *testing.T) {
	buildRe := regexp.MustCompile(`go build[^\n]*?(\./[A-Za-z0-9_/.-]+)\s*$`)
	for _, df := range []string{"services/Dockerfile", "remediator/Dockerfile"} {
		text := strings.ReplaceAll(readFile(t, df), "\\\n", " ")
		found := false
		for _, line := range strings.Split(text, "\n") {
			m := buildRe.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil {
				continue
			}
			found = true
			main := filepath.Join(testutil.RepoRoot(t), m[1], "main.go")
			if !strings.Contains(readFileAbs(t, main), "package main") {
				t.Errorf("%s builds %s, which has no main package", df, m[1])
			}
		}
		if !found {
			t.Errorf("%s: no `go build ... ./path` line found", df)
		}
	}
	ignore := readFile(t, ".dockerignore")
	for _, needed := range []string{"go.mod", "go.sum", "services", "remediator", "internal"} {
		for _, line := range strings.Split(ignore, "\n") {
			if strings.TrimSpace(line) == needed {
				t.Errorf(".dockerignore excludes %s, which the builds need", needed)
			}
		}
	}
}

func readFileAbs(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("%v", err)
	}
	return string(b)
}

// The demo services carry what discovery, rules and the remediator rely on.
func TestDemoServices(t *testing.T) {
	c := loadCompose(t)
	logical := map[string][]string{}
	for _, s := range c.Services {
		l := s.labels()
		if l["remediator.enable"] != "true" {
			continue
		}
		env := s.env()
		logical[l["selfheal.service"]] = append(logical[l["selfheal.service"]], s.Name)
		if s.ContainerName != s.Name {
			t.Errorf("%s: container_name %q; want the service name, so alert labels stay stable", s.Name, s.ContainerName)
		}
		if l["prometheus.scrape"] != "true" {
			t.Errorf("%s: label prometheus.scrape=true missing", s.Name)
		}
		if l["selfheal.service"] == "" || l["selfheal.service"] != env["SERVICE_NAME"] {
			t.Errorf("%s: label selfheal.service=%q and SERVICE_NAME=%q must agree", s.Name, l["selfheal.service"], env["SERVICE_NAME"])
		}
		listen := env["LISTEN_ADDR"]
		if listen == "" {
			listen = ":8080" // the demo service's default
		}
		if !strings.HasSuffix(listen, ":"+l["prometheus.port"]) {
			t.Errorf("%s: prometheus.port=%q but the service listens on %q", s.Name, l["prometheus.port"], listen)
		}
		if s.MemLimit == "" || s.CPUs.Value == "" {
			t.Errorf("%s: mem_limit and cpus must be set: the memory and CPU alerts are relative to them", s.Name)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: no healthcheck", s.Name)
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: no restart policy", s.Name)
		}
		// Dependencies name services of the stack on ports they listen on.
		for _, dep := range strings.Split(env["DEPENDENCIES"], ",") {
			if dep = strings.TrimSpace(dep); dep == "" {
				continue
			}
			if _, eps, ok := strings.Cut(dep, "="); ok {
				dep = eps
			}
			for _, ep := range strings.Split(dep, "|") {
				c.checkHostPort(t, s, ep, s.Name+" DEPENDENCIES")
			}
		}
		if u := env["DATABASE_URL"]; u != "" {
			c.checkURL(t, s, u, s.Name+" DATABASE_URL")
		}
	}
	for _, want := range []string{"user-service", "order-service", "payment-service"} {
		if len(logical[want]) == 0 {
			t.Errorf("no container runs %s", want)
		}
	}
	if n := len(logical["payment-service"]); n < 2 {
		t.Errorf("payment-service has %d instance(s); the rerouting scenario needs 2", n)
	}
}

// The remediator reaches the engine only through the proxy, the proxy allows what the default
// playbooks need (list, inspect, start, stop, restart) and refuses what would make the remediator
// root on the host (create, exec, delete, images, ...).
func TestSocketProxy(t *testing.T) {
	c := loadCompose(t)
	var proxy *service
	for _, s := range c.Services {
		for _, m := range c.mounts(t, s) {
			if m.Target == "/var/run/docker.sock" {
				if proxy != nil {
					t.Errorf("both %s and %s mount the engine socket; only the proxy may", proxy.Name, s.Name)
				}
				proxy = s
			}
		}
	}
	if proxy == nil {
		t.Fatal("no service mounts /var/run/docker.sock")
	}
	rem := c.Services["remediator"]
	if rem == nil {
		t.Fatal("no remediator service")
	}
	host := rem.env()["DOCKER_HOST"]
	c.checkHostPort(t, rem, strings.TrimPrefix(host, "tcp://"), "remediator DOCKER_HOST")
	if !strings.HasPrefix(host, "tcp://") || c.byHost(strings.Split(strings.TrimPrefix(host, "tcp://"), ":")[0]) != proxy {
		t.Errorf("remediator DOCKER_HOST=%q; want tcp://%s:<port>", host, proxy.Name)
	}
	for _, s := range []*service{rem, proxy} {
		if s.labels()["remediator.protected"] != "true" || s.labels()["remediator.enable"] == "true" {
			t.Errorf("%s: want label remediator.protected=true and no remediator.enable", s.Name)
		}
	}
	// Only the proxy's clients share its network.
	for _, n := range proxy.networks() {
		if !c.Networks[n].Internal {
			t.Errorf("the proxy's network %s is not internal", n)
		}
		for _, s := range c.Services {
			if s != proxy && slices.Contains(s.networks(), n) && s.labels()["socket-proxy.allow.get"] == "" {
				t.Errorf("%s shares the proxy's network %s without an allowlist of its own", s.Name, n)
			}
		}
	}

	type req struct{ method, path string }
	allowed := func(s *service, r req) bool {
		for k, v := range s.labels() {
			method, _, _ := strings.Cut(strings.TrimPrefix(k, "socket-proxy.allow."), ".")
			if !strings.HasPrefix(k, "socket-proxy.allow.") || !strings.EqualFold(method, r.method) {
				continue
			}
			re, err := regexp.Compile("^" + v + "$") // the proxy anchors the patterns the same way
			if err != nil {
				t.Fatalf("%s: label %s: %v", s.Name, k, err)
			}
			if re.MatchString(r.path) {
				return true
			}
		}
		return false
	}
	id := strings.Repeat("ab12", 16)
	forbidden := []req{
		{"POST", "/v1.41/containers/create"},
		{"POST", "/v1.41/containers/" + id + "/exec"},
		{"POST", "/v1.41/exec/" + id + "/start"},
		{"POST", "/v1.41/containers/" + id + "/kill"},
		{"POST", "/v1.41/containers/" + id + "/update"},
		{"POST", "/v1.41/containers/" + id + "/rename"},
		{"DELETE", "/v1.41/containers/" + id},
		{"PUT", "/v1.41/containers/" + id + "/archive"},
		{"GET", "/v1.41/containers/" + id + "/archive"},
		{"GET", "/v1.41/containers/" + id + "/export"},
		{"POST", "/v1.41/images/create"},
		{"POST", "/v1.41/build"},
		{"GET", "/v1.41/secrets"},
		{"POST", "/v1.41/volumes/create"},
		{"POST", "/v1.41/networks/create"},
		{"POST", "/v1.41/containers/" + id + "/restart/../../create"},
	}
	cases := []struct {
		client  string
		allow   []req
		forbids []req
	}{
		{"remediator", []req{
			{"HEAD", "/_ping"}, {"GET", "/_ping"}, {"GET", "/v1.41/version"},
			{"GET", "/v1.41/containers/json"}, {"GET", "/v1.41/containers/" + id + "/json"},
			{"GET", "/v1.41/containers/payment-service-2/json"}, {"GET", "/v1.41/containers/" + id + "/logs"},
			{"POST", "/v1.41/containers/" + id + "/restart"}, {"POST", "/v1.41/containers/" + id + "/start"},
			{"POST", "/v1.41/containers/" + id + "/stop"},
		}, forbidden},
		{"prometheus", []req{
			{"GET", "/v1.41/containers/json"}, {"GET", "/v1.41/networks"}, {"HEAD", "/_ping"},
		}, append([]req{{"POST", "/v1.41/containers/" + id + "/restart"}, {"GET", "/v1.41/containers/" + id + "/json"}, {"GET", "/v1.41/containers/" + id + "/logs"}}, forbidden...)},
	}
	for _, tc := range cases {
		s := c.Services[tc.client]
		if s == nil {
			t.Errorf("no %s service", tc.client)
			continue
		}
		for _, r := range tc.allow {
			if !allowed(s, r) {
				t.Errorf("%s: proxy would refuse %s %s, which it needs", tc.client, r.method, r.path)
			}
		}
		for _, r := range tc.forbids {
			if allowed(s, r) {
				t.Errorf("%s: proxy would allow %s %s", tc.client, r.method, r.path)
			}
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	c := loadCompose(t)
	prom := c.Services["prometheus"]
	if prom == nil {
		t.Fatal("no prometheus service")
	}
	cfgPath, ok := prom.flag("config.file")
	if !ok {
		cfgPath = "/etc/prometheus/prometheus.yml"
	}
	rel := c.hostPath(t, prom, cfgPath)
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DockerSD []struct {
				Host string `yaml:"host"`
			} `yaml:"docker_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, rel, &cfg)

	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, rf := range cfg.RuleFiles {
		pattern := filepath.Join(testutil.RepoRoot(t), c.hostPath(t, prom, rf))
		if m, _ := filepath.Glob(pattern); len(m) == 0 {
			t.Errorf("rule_files %q matches no file of the repository (as mounted)", rf)
		}
	}
	ams := 0
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			for _, tg := range sc.Targets {
				ams++
				if s := c.checkHostPort(t, prom, tg, "alerting target"); s != nil && s.Name != "alertmanager" {
					t.Errorf("alerting target %s is service %s, not alertmanager", tg, s.Name)
				}
			}
		}
	}
	if ams == 0 {
		t.Error("prometheus.yml sends alerts nowhere")
	}
	jobs := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = true
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if strings.HasPrefix(tg, "localhost:") || strings.HasPrefix(tg, "127.0.0.1:") {
					c.checkHostPort(t, nil, "prometheus"+tg[strings.LastIndex(tg, ":"):], "job "+sc.JobName+" (self)")
					continue
				}
				c.checkHostPort(t, prom, tg, "job "+sc.JobName)
			}
		}
		for _, sd := range sc.DockerSD {
			c.checkURL(t, prom, sd.Host, "job "+sc.JobName+" docker_sd host")
		}
	}
	for _, j := range []string{"demo-services", "remediator"} {
		if !jobs[j] {
			t.Errorf("prometheus.yml has no job %q (rules and dashboards select it)", j)
		}
	}
	// Relabeling reads container labels: each must be set on some container.
	used := map[string]bool{}
	for _, s := range c.Services {
		for k := range s.labels() {
			used[regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(k, "_")] = true
		}
	}
	for _, m := range regexp.MustCompile(`__meta_docker_container_label_([a-zA-Z0-9_]+)`).FindAllStringSubmatch(readFile(t, rel), -1) {
		if !used[m[1]] && !strings.HasPrefix(m[1], "com_docker_compose_") {
			t.Errorf("prometheus.yml relabels on container label %q, which no compose service sets", m[1])
		}
	}
}

// Alertmanager reaches the remediator on the port it listens on, with the token it expects.
func TestAlertmanagerWebhook(t *testing.T) {
	c := loadCompose(t)
	am, rem := c.Services["alertmanager"], c.Services["remediator"]
	if am == nil || rem == nil {
		t.Fatal("alertmanager and remediator services are required")
	}
	cfgPath, ok := am.flag("config.file")
	if !ok {
		cfgPath = "/etc/alertmanager/alertmanager.yml"
	}
	var cfg struct {
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL        string `yaml:"url"`
				HTTPConfig struct {
					Authorization struct {
						CredentialsFile string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	readYAML(t, c.hostPath(t, am, cfgPath), &cfg)

	tokenFile, ok := rem.flag("webhook.token-file")
	if !ok {
		t.Fatal("the remediator runs without --webhook.token-file: its webhook would accept anyone")
	}
	remToken := c.hostPath(t, rem, tokenFile)
	found := false
	for _, r := range cfg.Receivers {
		for _, wh := range r.WebhookConfigs {
			host := wh.URL
			if i := strings.Index(host, "://"); i >= 0 {
				host = host[i+3:]
			}
			host, _, _ = strings.Cut(host, ":")
			if c.byHost(host) != rem {
				continue
			}
			found = true
			c.checkURL(t, am, wh.URL, "receiver "+r.Name)
			if !strings.HasSuffix(wh.URL, "/webhook") {
				t.Errorf("receiver %s: %s; the remediator serves POST /webhook", r.Name, wh.URL)
			}
			cf := wh.HTTPConfig.Authorization.CredentialsFile
			if cf == "" {
				t.Errorf("receiver %s sends no bearer token", r.Name)
				continue
			}
			if got := c.hostPath(t, am, cf); got != remToken {
				t.Errorf("Alertmanager sends the token in %s, the remediator checks %s", got, remToken)
			}
		}
	}
	if !found {
		t.Error("no Alertmanager receiver sends to the remediator")
	}
	// The listen port is the published one too.
	listen, _ := rem.flag("web.listen-address")
	if listen == "" {
		listen = ":9096"
	}
	for p := range rem.publishedContainerPorts(t) {
		if !strings.HasSuffix(listen, ":"+strconv.Itoa(p)) {
			t.Errorf("remediator publishes container port %d but listens on %s", p, listen)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	c := loadCompose(t)
	g := c.Services["grafana"]
	if g == nil {
		t.Fatal("no grafana service")
	}
	env := g.env()
	if env["GF_AUTH_ANONYMOUS_ENABLED"] != "true" || env["GF_AUTH_ANONYMOUS_ORG_ROLE"] != "Viewer" {
		t.Error("anonymous access must be on, as Viewer, so the demo opens without a login")
	}
	if f := env["GF_SECURITY_ADMIN_PASSWORD__FILE"]; f == "" {
		t.Error("Grafana's admin password must come from a secret file")
	} else {
		c.hostPath(t, g, f)
	}
	home := env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home == "" {
		t.Fatal("no home dashboard")
	}
	var homeDash struct{ Title string }
	if err := json.Unmarshal([]byte(readFile(t, c.hostPath(t, g, home))), &homeDash); err != nil {
		t.Fatalf("home dashboard: %v", err)
	}
	if homeDash.Title != "Self-healing overview" {
		t.Errorf("home dashboard is %q; want the Self-healing overview", homeDash.Title)
	}

	provDir := c.hostPath(t, g, "/etc/grafana/provisioning")
	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provDir, "datasources", "prometheus.yml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].UID != "prometheus" || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource with uid prometheus, got %+v", ds.Datasources)
	}
	if s := c.checkURL(t, g, ds.Datasources[0].URL, "Grafana datasource"); s != nil && s.Name != "prometheus" {
		t.Errorf("the datasource points at %s", s.Name)
	}
	var am struct {
		Datasources []struct {
			Type     string `yaml:"type"`
			URL      string `yaml:"url"`
			JSONData struct {
				Implementation string `yaml:"implementation"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(provDir, "datasources", "alertmanager.yml"), &am)
	if len(am.Datasources) != 1 || am.Datasources[0].Type != "alertmanager" || am.Datasources[0].JSONData.Implementation != "prometheus" {
		t.Fatalf("want one alertmanager datasource of the prometheus implementation, got %+v", am.Datasources)
	}
	if s := c.checkURL(t, g, am.Datasources[0].URL, "Grafana Alertmanager datasource"); s != nil && s.Name != "alertmanager" {
		t.Errorf("the Alertmanager datasource points at %s", s.Name)
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(provDir, "dashboards", "selfheal.yml"), &prov)
	for _, p := range prov.Providers {
		if got := c.hostPath(t, g, p.Options.Path); got != filepath.Join("grafana", "dashboards") {
			t.Errorf("dashboard provider reads %s, which is %s in the repository; want grafana/dashboards", p.Options.Path, got)
		}
	}

	dashboards, err := grafana.Load(filepath.Join(testutil.RepoRoot(t), "grafana", "dashboards"))
	if err != nil {
		t.Fatal(err)
	}
	provisioned := map[string]string{ds.Datasources[0].Type: ds.Datasources[0].UID}
	titles := map[string]bool{}
	uids := map[string]bool{}
	for _, d := range dashboards {
		titles[d.Title] = true
		if d.UID == "" || uids[d.UID] {
			t.Errorf("%s: uid %q is empty or taken", d.File, d.UID)
		}
		uids[d.UID] = true
		var walk func([]grafana.Panel)
		walk = func(ps []grafana.Panel) {
			for _, p := range ps {
				// The dashboards name their datasource through a variable; resolved as Grafana
				// does, it must be the provisioned Prometheus.
				if uid, err := d.DatasourceUID(p.Datasource, provisioned); p.Type != "row" && (err != nil || uid != "prometheus") {
					t.Errorf("%s: panel %q does not use the prometheus datasource (%q, %v)", d.File, p.Title, uid, err)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil {
						continue
					}
					if uid, err := d.DatasourceUID(tg.Datasource, provisioned); err != nil || uid != "prometheus" {
						t.Errorf("%s: panel %q target %s uses datasource %q (%v)", d.File, p.Title, tg.RefID, uid, err)
					}
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	for _, want := range []string{"Self-healing overview", "Remediator"} {
		if !titles[want] {
			t.Errorf("no dashboard titled %q", want)
		}
	}
}

// Every query parses with Prometheus' own parser and reads only metrics the stack exports.
func TestDashboardQueries(t *testing.T) {
	queries, err := grafana.Queries(filepath.Join(testutil.RepoRoot(t), "grafana", "dashboards"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 30 {
		t.Errorf("only %d queries in the dashboards", len(queries))
	}
	exported := scanExportedMetrics(t)
	kinds := map[grafana.Kind]int{}
	for _, q := range queries {
		kinds[q.Kind]++
		expr, err := promParser.ParseExpr(q.Expr)
		if err != nil {
			t.Errorf("%s: %s %q %s: %v\n\t%s", q.Dashboard, q.Kind, q.Title, q.RefID, err, q.Expr)
			continue
		}
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %s %q reads no metric: %s", q.Dashboard, q.Kind, q.Title, q.Expr)
		}
		for _, n := range names {
			if !exported.has(n) {
				t.Errorf("%s: %s %q reads %s, which no component exports", q.Dashboard, q.Kind, q.Title, n)
			}
		}
	}
	if kinds[grafana.KindAnnotation] == 0 {
		t.Error("no annotation queries: heals must show on every panel")
	}
}

func TestRuleMetricsExported(t *testing.T) {
	exported := scanExportedMetrics(t)
	for _, r := range loadRules(t) {
		expr, err := promParser.ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("rules/%s %s%s: %v", r.File, r.Alert, r.Record, err)
			continue
		}
		for _, n := range metricNames(expr) {
			if !exported.has(n) {
				t.Errorf("rules/%s %s%s reads %s, which no component exports", r.File, r.Alert, r.Record, n)
			}
		}
	}
}

// The thresholds drawn on the overview's panels are the ones the alerts use.
func TestThresholdsMatchRules(t *testing.T) {
	ruleThresholds := map[string][]float64{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		expr, err := promParser.ParseExpr(r.Expr)
		if err != nil {
			continue // TestRuleMetricsExported reports it
		}
		ruleThresholds[r.Alert] = append(ruleThresholds[r.Alert], comparisonThresholds(expr)...)
	}
	dashboards, err := grafana.Load(filepath.Join(testutil.RepoRoot(t), "grafana", "dashboards"))
	if err != nil {
		t.Fatal(err)
	}
	panels := map[string]grafana.Panel{}
	for _, d := range dashboards {
		if d.Title != "Self-healing overview" {
			continue
		}
		var walk func([]grafana.Panel)
		walk = func(ps []grafana.Panel) {
			for _, p := range ps {
				panels[p.Title] = p
				walk(p.Panels)
			}
		}
		walk(d.Panels)
	}
	for _, tc := range []struct{ panel, alert string }{
		{"Memory used / limit", "ServiceMemoryHigh"},
		{"CPU used / limit", "ServiceCPUHigh"},
		{"5xx ratio of /", "ServiceErrorRateHigh"},
		{"p99 latency of /", "ServiceLatencyHigh"},
		{"Pool connections in use / max", "ServicePoolSaturated"},
	} {
		p, ok := panels[tc.panel]
		if !ok {
			t.Errorf("overview has no panel %q", tc.panel)
			continue
		}
		want := slices.Sorted(slices.Values(ruleThresholds[tc.alert]))
		got := slices.Sorted(slices.Values(p.Thresholds()))
		if len(want) == 0 {
			t.Errorf("rules define no thresholds for %s", tc.alert)
		}
		if !slices.Equal(got, want) {
			t.Errorf("panel %q draws thresholds %v; %s fires at %v", tc.panel, got, tc.alert, want)
		}
	}
}

// The compose healthcheck of the demo services runs the binary's own healthcheck command (the
// image has no shell or curl): it must exist and tell healthy from unhealthy.
func TestDemoServiceHealthcheckCommand(t *testing.T) {
	bin := filepath.Join(testutil.RepoRoot(t), "bin", "demo-service")
	if !fileExists(bin) {
		testutil.Require(t, false, "bin/demo-service is not built (make build)")
	}
	c := loadCompose(t)
	var test []string
	for _, s := range c.Services {
		if s.labels()["remediator.enable"] == "true" && s.Healthcheck != nil {
			test = s.Healthcheck.Test
			break
		}
	}
	if len(test) < 3 || test[0] != "CMD" || filepath.Base(test[1]) != "demo-service" {
		t.Fatalf("demo service healthcheck %v; want [CMD /demo-service ...]", test)
	}
	for _, tc := range []struct {
		status int
		ok     bool
	}{{http.StatusOK, true}, {http.StatusServiceUnavailable, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
		var args []string
		for _, a := range test[2:] {
			args = append(args, regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+`).ReplaceAllString(a, srv.URL))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		cancel()
		srv.Close()
		if (err == nil) != tc.ok {
			t.Errorf("demo-service %v against a %d: err=%v, want healthy=%v\n%s", args, tc.status, err, tc.ok, out)
		}
	}
}

// docker-compose itself accepts the file.
func TestComposeConfig(t *testing.T) {
	var cmd []string
	if p, err := exec.LookPath("docker-compose"); err == nil {
		cmd = []string{p}
	} else if p, err := exec.LookPath("docker"); err == nil && exec.Command(p, "compose", "version").Run() == nil {
		cmd = []string{p, "compose"}
	}
	testutil.Require(t, cmd != nil, "neither docker-compose nor docker compose is installed")
	for _, files := range [][]string{
		{"docker-compose.yml"},
		{"docker-compose.yml", "docker-compose.recreate.yml"}, // the opt-in override for recreate
	} {
		args := append([]string{}, cmd[1:]...)
		for _, f := range files {
			args = append(args, "-f", f)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c := exec.CommandContext(ctx, cmd[0], append(args, "config", "-q")...)
		c.Dir = testutil.RepoRoot(t)
		out, err := c.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s %s config -q: %v\n%s", strings.Join(cmd, " "), strings.Join(files, " "), err, out)
		}
	}
}
