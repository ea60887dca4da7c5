package docker

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

// Images built once for the package from the statically linked demo service: plain, with a
// HEALTHCHECK that passes, and with one that never can. Scratch has no shell, so the checks
// run the binary itself: --help exits 0, an unknown flag does not.
var demoImageSet testutil.DemoImages

func TestMain(m *testing.M) {
	code := m.Run()
	_ = demoImageSet.Remove()
	os.Exit(code)
}

// demoImages needs the engine, then builds the images on first use.
func demoImages(t *testing.T) (images struct{ plain, healthy, unhealthable string }) {
	t.Helper()
	testutil.RequireDocker(t)
	tags := demoImageSet.Build(t, "docker",
		testutil.DemoImage{Suffix: ""},
		testutil.DemoImage{Suffix: "-healthy", Dockerfile: []string{`HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/demo-service", "--help"]`}},
		testutil.DemoImage{Suffix: "-unhealthable", Dockerfile: []string{`HEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD ["/demo-service", "--bad-flag"]`}},
	)
	images.plain, images.healthy, images.unhealthable = tags[0], tags[1], tags[2]
	return images
}

func containerName(t *testing.T) string { return testutil.UniqueName(t, "selfheal-dt") }

// demoContainer runs the demo service from image as runDemo does, under a name of the test's own.
func demoContainer(t *testing.T, image string, labels map[string]string, extra ...string) (name string, c testutil.Container, port int) {
	t.Helper()
	name = containerName(t)
	c, port = runDemo(t, image, name, labels, extra...)
	return name, c, port
}

// runDemo starts the demo service in a container publishing 8080 on 127.0.0.1 and waits until
// it serves.
func runDemo(t *testing.T, image, name string, labels map[string]string, extra ...string) (testutil.Container, int) {
	t.Helper()
	c := testutil.RunContainer(t, testutil.ContainerSpec{
		Name:    name,
		Image:   image,
		Labels:  labels,
		Env:     map[string]string{"SERVICE_NAME": "user-service", "SELFHEAL_MARK": "kept"},
		Publish: []int{8080},
		Args:    extra,
	})
	t.Cleanup(func() { testutil.RemoveContainers(name + "-old-" + c.ID[:12]) })
	port := testutil.HostPort(t, name, 8080)
	if err := testutil.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return c, port
}

var optIn = map[string]string{"remediator.enable": "true"}

func newActuator(t *testing.T, opts Options) *Actuator {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	opts.Logger = testutil.Logger()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func request(da config.DockerAction, labels map[string]string) action.Request {
	return action.Request{
		Playbook: &config.Playbook{Name: "test"},
		Step:     &config.Step{Name: da.Action, Docker: &da},
		Alert:    template.Alert{Status: "firing", Labels: template.KV(labels)},
		Target:   labels["container"],
	}
}

func processStart(t *testing.T, port int) float64 {
	t.Helper()
	return testutil.ScrapeSample(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), "process_start_time_seconds", nil)
}

func TestRestartStartsANewProcess(t *testing.T) {
	t.Parallel()
	name, c, port := demoContainer(t, demoImages(t).healthy, optIn)
	startedBefore := testutil.InspectField(t, name, "{{.State.StartedAt}}")
	procBefore := processStart(t, port)

	a := newActuator(t, Options{})
	detail, err := a.Run(context.Background(), request(config.DockerAction{Action: "restart", StopTimeout: model.Duration(2 * time.Second)}, map[string]string{"container": name}))
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if !strings.Contains(detail, "healthy") || !strings.Contains(detail, c.ID[:12]) {
		t.Errorf("detail %q should name the container and say it is healthy", detail)
	}
	if after := testutil.InspectField(t, name, "{{.State.StartedAt}}"); after == startedBefore {
		t.Errorf("StartedAt unchanged (%s) after restart", after)
	}
	if h := testutil.InspectField(t, name, "{{.State.Health.Status}}"); h != "healthy" {
		t.Errorf("health after restart = %s, want healthy (the action must wait for it)", h)
	}
	port = testutil.HostPort(t, name, 8080) // a dynamically published port may move on restart
	if err := testutil.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if procAfter := processStart(t, port); procAfter <= procBefore {
		t.Errorf("process_start_time_seconds %v -> %v: the process was not restarted", procBefore, procAfter)
	}
}

func TestStopStartKill(t *testing.T) {
	t.Parallel()
	name, _, _ := demoContainer(t, demoImages(t).plain, optIn)
	a := newActuator(t, Options{})
	labels := map[string]string{"container": name}
	steps := []struct {
		da        config.DockerAction
		wantState string
		wantErr   string
	}{
		{da: config.DockerAction{Action: "stop", StopTimeout: model.Duration(2 * time.Second)}, wantState: "exited"},
		{da: config.DockerAction{Action: "kill"}, wantErr: "is not running"},
		{da: config.DockerAction{Action: "start"}, wantState: "running"},
		{da: config.DockerAction{Action: "start"}, wantState: "running"},
		{da: config.DockerAction{Action: "kill", Signal: "SIGNOPE"}, wantErr: "unsupported signal"},
		{da: config.DockerAction{Action: "kill", Signal: "9"}, wantState: "exited"},
		{da: config.DockerAction{Action: "explode"}, wantErr: "unknown docker action"},
	}
	for i, s := range steps {
		detail, err := a.Run(context.Background(), request(s.da, labels))
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("step %d %s: err = %v, want %q", i, s.da.Action, err, s.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.da.Action, err)
		}
		if got := testutil.InspectField(t, name, "{{.State.Status}}"); got != s.wantState {
			t.Fatalf("step %d %s (%s): state %s, want %s", i, s.da.Action, detail, got, s.wantState)
		}
	}
}

func TestRecreateKeepsConfiguration(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"remediator.enable": "true", "selfheal.service": "user-service"}
	name, old, port := demoContainer(t, demoImages(t).healthy, labels, "--memory", "64m", "--restart", "on-failure:3")

	a := newActuator(t, Options{})
	detail, err := a.Run(context.Background(), request(config.DockerAction{Action: "recreate", StopTimeout: model.Duration(2 * time.Second)}, map[string]string{"container": name}))
	if err != nil {
		t.Fatalf("recreate: %v", err)
	}
	t.Log(detail)
	newID := testutil.InspectField(t, name, "{{.Id}}")
	t.Cleanup(func() { testutil.RemoveContainers(newID) })
	if newID == old.ID {
		t.Fatal("recreate kept the old container id")
	}
	checks := map[string]string{
		`{{index .Config.Labels "selfheal.service"}}`:     "user-service",
		`{{index .Config.Labels "remediator.enable"}}`:    "true",
		`{{index .Config.Labels "selfheal.test"}}`:        "1",
		`{{.HostConfig.Memory}}`:                          "67108864",
		`{{.HostConfig.RestartPolicy.Name}}`:              "on-failure",
		`{{.HostConfig.RestartPolicy.MaximumRetryCount}}`: "3",
		`{{.State.Health.Status}}`:                        "healthy",
	}
	for format, want := range checks {
		if got := testutil.InspectField(t, name, format); got != want {
			t.Errorf("%s = %q after recreate, want %q", format, got, want)
		}
	}
	if env := testutil.InspectField(t, name, "{{json .Config.Env}}"); !strings.Contains(env, `"SELFHEAL_MARK=kept"`) || !strings.Contains(env, `"SERVICE_NAME=user-service"`) {
		t.Errorf("env after recreate = %s", env)
	}
	if got := testutil.HostPort(t, name, 8080); got != port {
		t.Errorf("published port %d after recreate, want %d as before", got, port)
	}
	if err := testutil.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), 10*time.Second); err != nil {
		t.Fatalf("not serving after recreate: %v", err)
	}
	if _, err := testutil.DockerCLI(context.Background(), "inspect", old.ID); err == nil {
		t.Error("the old container still exists after a successful recreate")
	}
}

func TestRecreateRollsBackWhenNewNeverHealthy(t *testing.T) {
	t.Parallel()
	name, old, _ := demoContainer(t, demoImages(t).unhealthable, optIn)

	a := newActuator(t, Options{})
	_, err := a.Run(context.Background(), request(config.DockerAction{Action: "recreate", StopTimeout: model.Duration(2 * time.Second)}, map[string]string{"container": name}))
	if err == nil {
		t.Fatal("recreate of a container that can never be healthy succeeded")
	}
	for _, want := range []string{"unhealthy", "rolled back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if id := testutil.InspectField(t, name, "{{.Id}}"); id != old.ID {
		t.Fatalf("after rollback %s is %s, want the old container %s", name, id, old.ID)
	}
	if st := testutil.InspectField(t, name, "{{.State.Status}}"); st != "running" {
		t.Fatalf("old container is %s after rollback, want running", st)
	}
	port := testutil.HostPort(t, name, 8080)
	if err := testutil.WaitHTTP(fmt.Sprintf("http://127.0.0.1:%d/metrics", port), 10*time.Second); err != nil {
		t.Fatalf("old container does not serve after rollback: %v", err)
	}
	out, err := testutil.DockerCLI(context.Background(), "ps", "-a", "--filter", "name="+name, "--format", "{{.ID}} {{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(out, "\n"); len(lines) != 1 {
		t.Errorf("containers named like %s after rollback: %q, want only the old one", name, out)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	plain := demoImages(t).plain
	base := containerName(t)
	unlabelled, _ := runDemo(t, plain, base+"-nolabel", nil)
	runDemo(t, plain, base+"-false", map[string]string{"remediator.enable": "false"})
	runDemo(t, plain, base+"-proxy", map[string]string{"remediator.enable": "true", "remediator.protected": "socket-proxy"})
	self, _ := runDemo(t, plain, base+"-self", optIn)

	a := newActuator(t, Options{})
	me := newActuator(t, Options{SelfContainerID: self.ID})
	cases := []struct {
		name    string
		a       *Actuator
		labels  map[string]string
		tmpl    string
		wantErr string
	}{
		{"no opt-in label", a, map[string]string{"container": base + "-nolabel"}, "", "label remediator.enable=true is missing"},
		{"no opt-in label by id", a, map[string]string{"container_id": unlabelled.ID}, "", "has not opted in"},
		{"opt-in false", a, map[string]string{"container": base + "-false"}, "", `remediator.enable="false"`},
		{"protected", a, map[string]string{"container": base + "-proxy"}, "", "protection label remediator.protected"},
		{"own container", me, map[string]string{"container": base + "-self"}, "", "remediator's own container"},
		{"own container by short id", me, map[string]string{"container": self.ID[:12]}, "", "remediator's own container"},
		{"unknown", a, map[string]string{"container": base + "-missing"}, "", "no container named"},
		{"path in label", a, map[string]string{"container": "../../info"}, "", "invalid container name"},
		{"query in label", a, map[string]string{"container": "x?force=1"}, "", "invalid container name"},
		{"short id prefix", a, map[string]string{"container": unlabelled.ID[:3]}, "", ""},
		{"bad container_id", a, map[string]string{"container_id": "zz"}, "", "not a container id"},
		{"no target labels", a, map[string]string{"alertname": "X"}, "", "names no container"},
		{"template missing label", a, map[string]string{"alertname": "X"}, "{{ .Labels.pod }}", "container template"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			da := config.DockerAction{Action: "restart"}
			if c.tmpl != "" {
				tm, err := config.NewTemplate(c.tmpl)
				if err != nil {
					t.Fatal(err)
				}
				da.Container = tm
			}
			_, err := c.a.Run(context.Background(), request(da, c.labels))
			if err == nil {
				t.Fatal("acted, want a refusal")
			}
			if !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %q, want it to say %q", err, c.wantErr)
			}
		})
	}
	for _, n := range []string{"-nolabel", "-false", "-proxy", "-self"} {
		if rc := testutil.InspectField(t, base+n, "{{.RestartCount}} {{.State.Status}}"); rc != "0 running" {
			t.Errorf("%s: %s after refusals, want untouched", base+n, rc)
		}
	}
}

func TestComposeServiceReplicas(t *testing.T) {
	t.Parallel()
	plain := demoImages(t).plain
	base := containerName(t)
	project := strings.ReplaceAll(base, "-", "")
	compose := func(n int) map[string]string {
		return map[string]string{
			"remediator.enable":                   "true",
			"com.docker.compose.project":          project,
			"com.docker.compose.service":          "payment-service",
			"com.docker.compose.container-number": strconv.Itoa(n),
		}
	}
	r1, _ := runDemo(t, plain, base+"-1", compose(1))
	r2, _ := runDemo(t, plain, base+"-2", compose(2))
	a := newActuator(t, Options{})
	cases := []struct {
		name    string
		labels  map[string]string
		wantID  string
		wantErr string
	}{
		{"ambiguous", map[string]string{"service": "payment-service", "compose_project": project}, "", "ambiguous: 2 replicas"},
		{"instance picks", map[string]string{"service": "payment-service", "project": project, "instance": base + "-2:8080"}, r2.ID, ""},
		{"instance by compose_service", map[string]string{"compose_service": "payment-service", "compose_project": project, "instance": base + "-1:8080"}, r1.ID, ""},
		{"unknown instance", map[string]string{"service": "payment-service", "compose_project": project, "instance": "elsewhere:8080"}, "", "no replica for instance"},
		{"unknown service", map[string]string{"service": "nope", "compose_project": project}, "", "has no containers"},
		{"invalid service", map[string]string{"service": "a b"}, "", "not a valid compose service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			detail, err := a.Run(context.Background(), request(config.DockerAction{Action: "start"}, c.labels))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(detail, c.wantID[:12]) {
				t.Fatalf("acted on %q, want container %s", detail, c.wantID[:12])
			}
		})
	}
}

func TestContainerGoneMidAction(t *testing.T) {
	t.Parallel()
	name, _, _ := demoContainer(t, demoImages(t).healthy, optIn)
	a := newActuator(t, Options{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		testutil.RemoveContainers(name)
	}()
	_, err := a.Run(context.Background(), request(config.DockerAction{Action: "restart", StopTimeout: model.Duration(2 * time.Second)}, map[string]string{"container": name}))
	if err == nil {
		t.Fatal("restart of a container removed mid-action succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), name) {
		t.Errorf("error %q does not name the container", err)
	}
}

// TestEngineUnreachable needs no engine: nothing listens on the address.
func TestEngineUnreachable(t *testing.T) {
	addr := fmt.Sprintf("tcp://127.0.0.1:%d", testutil.FreePort(t))
	t.Setenv("DOCKER_HOST", addr)
	a := newActuator(t, Options{}) // DOCKER_HOST is honoured; New must not fail
	if a.Host() != addr {
		t.Fatalf("host %q, want DOCKER_HOST %q", a.Host(), addr)
	}
	for _, act := range []string{"restart", "recreate"} {
		start := time.Now()
		_, err := a.Run(context.Background(), request(config.DockerAction{Action: act}, map[string]string{"container": "user-service"}))
		if err == nil {
			t.Fatalf("%s against a closed port succeeded", act)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s took %s to fail, want it quick", act, took)
		}
		if !strings.Contains(err.Error(), "docker engine unreachable at "+addr) {
			t.Errorf("err = %q, want it to say the engine at %s is unreachable", err, addr)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{Host: "gopher://nowhere"}); err == nil {
		t.Error("New accepted an unsupported host scheme")
	}
	if _, err := New(Options{Host: "unix:///nonexistent.sock", SelfContainerID: "me"}); err == nil {
		t.Error("New accepted a self id that is no container id")
	}
}

func TestActionDeadline(t *testing.T) {
	t.Parallel()
	name, _, _ := demoContainer(t, demoImages(t).healthy, optIn)
	labels := map[string]string{"container": name}

	a := newActuator(t, Options{Timeout: 5 * time.Second})
	_, err := a.Run(context.Background(), request(config.DockerAction{Action: "restart", StopTimeout: model.Duration(10 * time.Second)}, labels))
	if err == nil || !strings.Contains(err.Error(), "stop_timeout 10s does not fit") {
		t.Fatalf("err = %v, want the stop timeout refused", err)
	}

	// The healthcheck runs every second: the new process cannot be healthy within 300ms.
	a = newActuator(t, Options{Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err = a.Run(context.Background(), request(config.DockerAction{Action: "restart"}, labels))
	if err == nil || !strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a 300ms deadline took %s", took)
	}
	t.Log(err)
}
