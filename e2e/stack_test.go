package e2e

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

// Container resources as in the compose file: the memory and CPU alerts are relative to them.
const (
	containerMemory = "256m"
	containerCPUs   = "1.0"
	loadgenMemory   = "128m"
	loadgenCPUs     = "0.5"
	loadRate        = "10"
)

// service is one demo container of the test stack.
type service struct {
	Container string // container name, as the alerts' container label shows it
	Service   string // logical name (selfheal.service label)
	Port      int
	Env       map[string]string
	Cmd       []string
	Heal      bool // carries remediator.enable=true
	// noWait skips waiting for readiness (a service partitioned from its start never answers).
	noWait bool
}

func (s service) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path) }

// stack is the whole system under test, on loopback.
type stack struct {
	root, dir string
	demoBin   string
	remBin    string
	image     string
	token     string
	addrs     stackAddrs
	changes   Changes
	// playbooks is the playbook file the remediator runs, as it reads it.
	playbooks *config.Config

	prom     promv1.API
	promURL  string
	amURL    string
	remURL   string
	services map[string]*service // by container name
	oncall   *testutil.Receiver
	remProc  *testutil.Process
	alerts   *alertWatch
	targets  *targetWatch
	versions map[string]string

	mu   sync.Mutex
	busy map[string]bool // containers owned by a background scenario
}

func (s *stack) setBusy(c string, b bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy == nil {
		s.busy = map[string]bool{}
	}
	s.busy[c] = b
}

func (s *stack) isBusy(c string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[c]
}

// serviceNames returns the running demo containers' names.
func (s *stack) serviceNames() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for n := range s.services {
		out[n] = true
	}
	return out
}

// svc returns a demo container by name.
func (s *stack) svc(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[name]
}

// Container names. The "e2e-" prefix keeps them apart from a compose stack on the same engine.
const (
	cUser       = "e2e-user-service"
	cOrder      = "e2e-order-service"
	cPayment1   = "e2e-payment-service-1"
	cPayment2   = "e2e-payment-service-2"
	cLoadgen    = "e2e-loadgen"
	cUnhealable = "e2e-inventory-service"
	cGap        = "e2e-catalog-service"
	cStock      = "e2e-stock-service"
)

// cShelves are scenario 14's four instances of one service, more than a playbook's blast radius.
var cShelves = []string{"e2e-shelf-service-1", "e2e-shelf-service-2", "e2e-shelf-service-3", "e2e-shelf-service-4"}

// startStack builds and starts everything, and stops it all when t ends, even on failure.
func startStack(t *testing.T) *stack {
	t.Helper()
	var err error
	s := &stack{
		root:     testutil.RepoRoot(t),
		dir:      t.TempDir(),
		changes:  Changes{},
		services: map[string]*service{},
		versions: map[string]string{},
	}
	ok, why := testutil.DockerReachable()
	need(t, ok, "the Docker engine: "+why)
	lookTool(t, "go")
	// The compose stack runs Prometheus 3: where PROMETHEUS3 names one (.ci/run builds it), the
	// loop is proven on it; Debian's 2.x still runs the rules in the prometheus and rules tests.
	promBin := os.Getenv("PROMETHEUS3")
	if promBin == "" {
		need(t, !testutil.InCI(), "PROMETHEUS3 in CI, naming the Prometheus 3 server .ci/run builds")
		promBin = lookTool(t, "prometheus")
	}
	amBin := lookTool(t, "prometheus-alertmanager")
	s.versions["go"] = runtime.Version()
	s.versions["docker engine"], _ = testutil.Run("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
	s.versions["prometheus"] = binaryVersion(promBin)
	s.versions["alertmanager"] = firstLine(testutil.Run(amBin, "--version"))

	removeLeftovers(t)
	begin := time.Now()
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(begin).Seconds(), what) }

	// Binaries, as the Makefile builds them.
	s.demoBin = filepath.Join(s.root, "bin", "demo-service")
	s.remBin = filepath.Join(s.root, "bin", "remediator")
	for pkg, out := range map[string]string{"./services/cmd/demo-service": s.demoBin, "./remediator/cmd/remediator": s.remBin} {
		if err := testutil.BuildStatic(s.root, pkg, out); err != nil {
			t.Fatalf("build: %v", err)
		}
	}
	step("binaries built")
	s.image = fmt.Sprintf("selfheal-e2e/demo-service:%d", time.Now().UnixNano())
	if err := testutil.BuildScratchImage(s.demoBin, s.image, "LABEL "+e2eLabel+"=1", "USER 65534:65534"); err != nil {
		t.Fatalf("image: %v", err)
	}
	t.Cleanup(func() { _ = testutil.RemoveImage(s.image) })

	step("image built")
	own := append([]string{cUser, cOrder, cPayment1, cPayment2, cUnhealable, cGap, cStock}, cShelves...)
	ports := testutil.FreePorts(t, 4+len(own))
	s.addrs = stackAddrs{
		Prometheus:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Alertmanager: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Remediator:   fmt.Sprintf("127.0.0.1:%d", ports[2]),
		Loadgen:      fmt.Sprintf("127.0.0.1:%d", ports[3]),
		DockerHost:   "unix:///var/run/docker.sock",
		RulesDir:     filepath.Join(s.root, "rules"),
		TokenFile:    filepath.Join(s.dir, "webhook-token"),
		Ports:        map[string]int{},
	}
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		s.addrs.DockerHost = h
	}
	s.promURL = "http://" + s.addrs.Prometheus
	s.amURL = "http://" + s.addrs.Alertmanager
	s.remURL = "http://" + s.addrs.Remediator
	for i, name := range own {
		s.addrs.Ports[name] = ports[4+i]
	}
	s.oncall = testutil.StartReceiver(t)
	s.addrs.Oncall = s.oncall.URL

	s.token = "e2e-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(s.addrs.TokenFile, []byte(s.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Configuration generated from the shipped files.
	promCfg := s.generate(t, "prometheus/prometheus.yml", "prometheus.yml", genPrometheusConfig)
	amCfg := s.generate(t, "alertmanager/alertmanager.yml", "alertmanager.yml", genAlertmanagerConfig)
	playbooks := s.generate(t, "remediator/playbooks.yml", "playbooks.yml", genPlaybooks)
	if s.playbooks, err = config.Load(playbooks); err != nil {
		t.Fatalf("the generated playbooks do not load: %v", err)
	}

	// The shared helper skips outside CI when PostgreSQL is missing; with E2E set that must fail.
	lookTool(t, "initdb")
	dbURL := testutil.StartPostgres(t)

	am := testutil.StartProcess(t, "alertmanager", nil, amBin,
		"--config.file="+amCfg,
		"--web.listen-address="+s.addrs.Alertmanager,
		"--storage.path="+filepath.Join(s.dir, "am-data"),
		"--cluster.listen-address=", // no gossip port on all interfaces
	)
	prom := testutil.StartProcess(t, "prometheus", nil, promBin,
		"--config.file="+promCfg,
		"--web.listen-address="+s.addrs.Prometheus,
		"--storage.tsdb.path="+filepath.Join(s.dir, "prom-data"),
		"--log.level=warn",
	)
	s.remProc = testutil.StartProcess(t, "remediator", nil, s.remBin,
		"--config.file="+playbooks,
		"--web.listen-address="+s.addrs.Remediator,
		"--storage.path="+filepath.Join(s.dir, "remediator-data"),
		"--webhook.token-file="+s.addrs.TokenFile,
		"--prometheus.url="+s.promURL,
		// As the compose file: silences while healing, and alerts to people (issue 16's loop).
		"--alertmanager.url="+s.amURL,
		"--web.external-url="+s.remURL,
		"--log.level=debug",
	)
	am.WaitReady(t, s.amURL+"/-/ready", 30*time.Second)
	prom.WaitReady(t, s.promURL+"/-/ready", 30*time.Second)
	s.remProc.WaitReady(t, s.remURL+"/-/ready", 30*time.Second)
	step("postgres, prometheus, alertmanager, remediator ready")
	client, err := promapi.NewClient(promapi.Config{Address: s.promURL})
	if err != nil {
		t.Fatal(err)
	}
	s.prom = promv1.NewAPI(client)

	// The demo services, wired as in the compose file.
	p := s.addrs.Ports
	s.addService(t, &service{Container: cPayment1, Service: "payment-service", Port: p[cPayment1], Heal: true})
	s.addService(t, &service{Container: cPayment2, Service: "payment-service", Port: p[cPayment2], Heal: true})
	s.addService(t, &service{Container: cOrder, Service: "order-service", Port: p[cOrder], Heal: true,
		Env: map[string]string{
			"DEPENDENCIES": fmt.Sprintf("payment-service=127.0.0.1:%d|127.0.0.1:%d", p[cPayment1], p[cPayment2]),
			"DATABASE_URL": dbURL,
		}})
	s.addService(t, &service{Container: cUser, Service: "user-service", Port: p[cUser], Heal: true,
		Env: map[string]string{"DEPENDENCIES": fmt.Sprintf("order-service=127.0.0.1:%d", p[cOrder])}})
	lgPort, _ := strconv.Atoi(s.addrs.Loadgen[strings.LastIndex(s.addrs.Loadgen, ":")+1:])
	s.addService(t, &service{Container: cLoadgen, Service: "loadgen", Port: lgPort,
		Cmd: []string{"loadgen"},
		Env: map[string]string{
			"LOADGEN_TARGETS":     s.services[cUser].url("/"),
			"LOADGEN_RATE":        loadRate,
			"LOADGEN_LISTEN_ADDR": s.addrs.Loadgen,
		}})

	step("demo containers ready")
	s.alerts = watchAlerts(t, s.prom)
	s.waitTargetsUp(t, 60*time.Second)
	step("every target scraped")
	return s
}

// generate writes the test copy of a shipped file and returns its path.
func (s *stack) generate(t *testing.T, shipped, name string, gen func([]byte, stackAddrs, Changes) ([]byte, error)) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(s.root, shipped))
	if err != nil {
		t.Fatalf("e2e runs the shipped configuration: %v", err)
	}
	out, err := gen(src, s.addrs, s.changes)
	if err != nil {
		t.Fatalf("generate test config: %v", err)
	}
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// addService starts one demo container with the compose file's labels and limits, on host
// networking at its own loopback port, and waits until it serves.
func (s *stack) addService(t *testing.T, svc *service) {
	t.Helper()
	env := map[string]string{
		"SERVICE_NAME": svc.Service,
		"LISTEN_ADDR":  fmt.Sprintf("127.0.0.1:%d", svc.Port),
	}
	if len(svc.Cmd) > 0 { // the load generator
		env = map[string]string{}
	}
	for k, v := range svc.Env {
		env[k] = v
	}
	labels := map[string]string{
		e2eLabel:            "1",
		"selfheal.service":  svc.Service,
		"prometheus.scrape": "true",
		"prometheus.port":   strconv.Itoa(svc.Port),
	}
	if svc.Heal {
		labels["remediator.enable"] = "true"
	}
	mem, cpus := containerMemory, containerCPUs
	if len(svc.Cmd) > 0 {
		mem, cpus = loadgenMemory, loadgenCPUs
	}
	testutil.RunContainer(t, testutil.ContainerSpec{
		Name:   svc.Container,
		Image:  s.image,
		Labels: labels,
		Env:    env,
		// As in the compose file, except the network: host networking keeps all on loopback.
		Args: []string{"--network", "host", "--memory", mem, "--memory-swap", mem, "--cpus", cpus,
			"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
			"--restart", "unless-stopped"},
		Cmd: svc.Cmd,
	})
	s.mu.Lock()
	s.services[svc.Container] = svc
	s.mu.Unlock()
	if svc.noWait {
		return
	}
	path := "/readyz"
	if len(svc.Cmd) > 0 {
		path = "/metrics"
	}
	if err := testutil.WaitHTTP(svc.url(path), 30*time.Second); err != nil {
		logs, _ := testutil.Run("docker", "logs", "--tail", "30", svc.Container)
		t.Fatalf("%s: %v\n%s", svc.Container, err, logs)
	}
}

// removeContainer removes a scenario's own container before the test ends.
func (s *stack) removeContainer(name string) {
	testutil.RemoveContainers(name)
	s.mu.Lock()
	delete(s.services, name)
	s.mu.Unlock()
}

// waitTargetsUp waits until Prometheus scrapes every container and component.
func (s *stack) waitTargetsUp(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var down []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := s.prom.Targets(ctx)
		cancel()
		down = nil
		seen := map[string]bool{}
		if err == nil {
			for _, tg := range res.Active {
				seen[string(tg.Labels["container"])] = seen[string(tg.Labels["container"])] || tg.Health == promv1.HealthGood
				if tg.Health != promv1.HealthGood {
					down = append(down, fmt.Sprintf("%s %s (%s)", tg.Labels["job"], tg.ScrapeURL, tg.LastError))
				}
			}
			for name := range s.serviceNames() {
				if !seen[name] {
					down = append(down, name+" not scraped yet")
				}
			}
		} else {
			down = []string{err.Error()}
		}
		if len(down) == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("targets not up after %s: %s", timeout, strings.Join(down, "; "))
}

// removeLeftovers removes containers an interrupted earlier run of this test left behind; only
// this test labels containers selfheal.e2e=1.
func removeLeftovers(t *testing.T) {
	out, err := testutil.Run("docker", "ps", "-aq", "--filter", "label="+e2eLabel+"=1")
	if err != nil || out == "" {
		return
	}
	t.Logf("removing containers left by an earlier e2e run: %s", strings.Join(strings.Fields(out), " "))
	testutil.RemoveContainers(strings.Fields(out)...)
}

// binaryVersion is the first line of `bin --version`, or, for a build without version
// information (go install leaves it empty), the module version Go recorded in the binary.
func binaryVersion(bin string) string {
	v := firstLine(testutil.Run(bin, "--version"))
	if !strings.Contains(v, "version  ") {
		return v
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return v
	}
	return fmt.Sprintf("%s, module %s %s (built with go install, %s)", filepath.Base(bin), info.Main.Path, info.Main.Version, info.GoVersion)
}

func firstLine(s string, err error) string {
	if err != nil && s == "" {
		return "unknown (" + err.Error() + ")"
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// remPost calls the remediator's write API with the bearer token, as an operator's tool would.
func (s *stack) remPost(t *testing.T, path string, body any) (int, string) {
	t.Helper()
	if body == nil {
		body = map[string]string{}
	}
	return testutil.DoJSON(t, http.MethodPost, s.remURL+path, body, testutil.Bearer(s.token))
}
