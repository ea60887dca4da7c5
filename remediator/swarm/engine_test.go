package swarm

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
	"github.com/selfheal/selfheal/remediator/docker"
)

// The demo service's image, built once for the package FROM scratch under a test-only name.
var image testutil.DemoImages

func TestMain(m *testing.M) {
	code := m.Run()
	if err := image.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "removing the test image:", err)
	}
	if err := testutil.ReleaseSwarm(); err != nil {
		fmt.Fprintln(os.Stderr, "leaving the engine as it was:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// demoImage needs a Swarm manager, then builds the image on first use.
func demoImage(t *testing.T) string {
	t.Helper()
	testutil.RequireSwarm(t)
	return image.Build(t, "swarm", testutil.DemoImage{})[0]
}

func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := testutil.DockerCLI(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var optIn = map[string]string{"remediator.enable": "true"}

// serviceSpec is a test service: the demo service with quick updates and restarts.
type serviceSpec struct {
	replicas int
	labels   map[string]string
	args     []string // further `docker service create` options
	// broken runs the demo service with an unknown flag: its tasks exit at once, and creating
	// the service does not wait for them.
	broken bool
}

// createService starts a service of the demo image, waits until its tasks run, and removes it
// (and waits for its containers to go) when the test ends.
func createService(t *testing.T, spec serviceSpec) (name, id string) {
	t.Helper()
	img := demoImage(t)
	name = testutil.UniqueName(t, "selfheal-st")
	args := []string{"service", "create", "--detach", "--quiet", "--no-resolve-image", "--name", name,
		"--label", testutil.TestLabel, "--container-label", testutil.TestLabel,
		"--replicas", strconv.Itoa(spec.replicas), "--env", "SERVICE_NAME=user-service",
		"--stop-grace-period", "1s", "--update-delay", "0s", "--update-monitor", "2s",
		"--restart-delay", "1s", "--restart-max-attempts", "3"}
	for k, v := range spec.labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, spec.args...)
	args = append(args, img)
	if spec.broken {
		args = append(args, "--bad-flag")
	}
	id = dockerCLI(t, args...)
	t.Cleanup(func() { removeService(t, name) })
	if !spec.broken {
		waitRunning(t, name, spec.replicas)
	}
	return name, id
}

func removeService(t *testing.T, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := testutil.DockerCLI(ctx, "service", "rm", name); err != nil {
		t.Logf("removing service %s: %v", name, err)
		return
	}
	for ctx.Err() == nil {
		out, err := testutil.DockerCLI(ctx, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+name)
		if err == nil && out == "" {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("containers of service %s still there after a minute", name)
}

// runningTasks returns the ids of the service's tasks that run and should, by `docker service ps`.
func runningTasks(t *testing.T, name string) []string {
	t.Helper()
	out := dockerCLI(t, "service", "ps", "--quiet", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}} {{.CurrentState}}", name)
	var ids []string
	for _, l := range strings.Split(out, "\n") {
		if id, state, ok := strings.Cut(l, " "); ok && strings.HasPrefix(state, "Running") {
			ids = append(ids, id)
		}
	}
	return ids
}

func waitRunning(t *testing.T, name string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ids := runningTasks(t, name)
		if len(ids) == n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("service %s: %d tasks running after a minute, want %d (%s)", name, len(ids), n,
				dockerCLI(t, "service", "ps", "--no-trunc", name))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// deploy updates the service as a person would (`docker service update`) and waits until
// Swarm reports the update completed.
func deploy(t *testing.T, name string, args ...string) {
	t.Helper()
	dockerCLI(t, append(append([]string{"service", "update", "--detach", "--quiet"}, args...), name)...)
	deadline := time.Now().Add(time.Minute)
	for inspect(t, name, "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}") != "completed" {
		if time.Now().After(deadline) {
			t.Fatalf("updating %s %v did not complete within a minute: %s", name, args, dockerCLI(t, "service", "ps", "--no-trunc", name))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// inspect returns one field of `docker service inspect`, as a Go template.
func inspect(t *testing.T, name, format string) string {
	t.Helper()
	return dockerCLI(t, "service", "inspect", "--format", format, name)
}

func newActuator(t *testing.T, opts Options) *Actuator {
	t.Helper()
	if opts.Timeout == 0 {
		opts.Timeout = 90 * time.Second
	}
	opts.Logger = testutil.Logger()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	a.poll = 100 * time.Millisecond
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// request builds what the pipeline hands an actuator for an alert with these labels.
func request(t *testing.T, step string, labels map[string]string) action.Request {
	t.Helper()
	cfg, err := config.Parse([]byte("playbooks:\n  - name: swarm-heal\n    match: ['alertname=\"SwarmServiceDown\"']\n    steps:\n      - swarm: "+step+"\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	ls := template.KV{"alertname": "SwarmServiceDown"}
	for k, v := range labels {
		ls[k] = v
	}
	pb := cfg.Playbooks[0]
	return action.Request{
		Playbook: pb, Step: pb.Steps[0], Target: labels["service_name"],
		Alert: template.Alert{Status: string(model.AlertFiring), Labels: ls, StartsAt: time.Now()},
	}
}

func run(t *testing.T, a *Actuator, step string, labels map[string]string) (string, error) {
	t.Helper()
	start := time.Now()
	detail, err := a.Run(context.Background(), request(t, step, labels))
	t.Logf("%s on %v after %s: %q, %v", step, labels, time.Since(start).Round(time.Millisecond), detail, err)
	return detail, err
}

func TestForceUpdate(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 2, labels: optIn})
	before := waitRunning(t, name, 2)
	a := newActuator(t, Options{})
	detail, err := run(t, a, "{action: force-update}", map[string]string{"service_name": name})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "force-updated service "+name) || !strings.Contains(detail, "2/2 tasks running on the current spec, update completed") {
		t.Errorf("detail %q does not say the update completed with 2 of 2 tasks", detail)
	}
	// Done means done: right after Run, without waiting, Swarm shows new tasks only.
	after := runningTasks(t, name)
	if len(after) != 2 {
		t.Fatalf("%d tasks running right after the force-update, want 2", len(after))
	}
	for _, id := range after {
		for _, old := range before {
			if id == old {
				t.Errorf("task %s still runs after the force-update: the tasks were not replaced", id)
			}
		}
	}
	if got := inspect(t, name, "{{.Spec.TaskTemplate.ForceUpdate}} {{.UpdateStatus.State}}"); got != "1 completed" {
		t.Errorf("after the force-update the service has ForceUpdate and update state %q, want \"1 completed\"", got)
	}
}

func TestScale(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 1, labels: optIn})
	a := newActuator(t, Options{})
	labels := map[string]string{"service_name": name}
	for _, tc := range []struct {
		step   string
		want   int
		detail string // in the detail, or in the error when refused
		refuse bool
	}{
		{step: "{action: scale, by: 1, min: 1, max: 2}", want: 2, detail: "from 1 to 2 replicas (bounds 1..2); 2/2 tasks running"},
		{step: "{action: scale, by: 1, min: 1, max: 2}", want: 2, refuse: true, detail: "already has 2 replicas (bounds 1..2): nothing to scale"},
		{step: "{action: scale, by: -5, min: 1, max: 2}", want: 1, detail: "from 2 to 1 replicas (bounds 1..2); 1/1 tasks running"},
		{step: "{action: scale, replicas: 0}", want: 0, detail: "from 1 to 0 replicas; 0/0 tasks running"},
		{step: "{action: scale, replicas: 3, max: 3}", want: 3, detail: "from 0 to 3 replicas (bounds 0..3); 3/3 tasks running"},
	} {
		detail, err := run(t, a, tc.step, labels)
		switch {
		case tc.refuse && err == nil:
			t.Errorf("%s: done (%q), want it refused", tc.step, detail)
		case tc.refuse && !strings.Contains(err.Error(), tc.detail):
			t.Errorf("%s: error %q does not contain %q", tc.step, err, tc.detail)
		case !tc.refuse && err != nil:
			t.Fatalf("%s: %v", tc.step, err)
		case !tc.refuse && !strings.Contains(detail, tc.detail):
			t.Errorf("%s: detail %q does not contain %q", tc.step, detail, tc.detail)
		}
		// Done means done: Swarm agrees at once, without waiting.
		if got := len(runningTasks(t, name)); got != tc.want {
			t.Errorf("%s: %d tasks running right after, want %d", tc.step, got, tc.want)
		}
		if got := inspect(t, name, "{{.Spec.Mode.Replicated.Replicas}}"); got != strconv.Itoa(tc.want) {
			t.Errorf("%s: the service's spec has %s replicas, want %d", tc.step, got, tc.want)
		}
	}
}

// TestRollback deploys a bad version (its tasks exit at once), lets Swarm pause the update as it
// does by default, takes the evidence a person would want, and rolls back to the good spec.
func TestRollback(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 1, labels: optIn})
	a := newActuator(t, Options{})
	labels := map[string]string{"service_name": name}

	if _, err := run(t, a, "{action: rollback}", labels); err == nil || !strings.Contains(err.Error(), "has no previous spec to roll back to") {
		t.Errorf("rollback of a never updated service: %v, want it refused for want of a previous spec", err)
	}

	dockerCLI(t, "service", "update", "--detach", "--quiet", "--args", "--bad-flag", name)
	deadline := time.Now().Add(time.Minute)
	for inspect(t, name, "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}") != "paused" {
		if time.Now().After(deadline) {
			t.Fatalf("the bad update was not paused within a minute: %s", dockerCLI(t, "service", "ps", "--no-trunc", name))
		}
		time.Sleep(250 * time.Millisecond)
	}

	ev, err := a.Evidence(context.Background(), request(t, "{action: rollback}", labels))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("evidence: %+v", ev)
	if ev.Object != "service "+name+" ("+docker.ShortID(inspect(t, name, "{{.ID}}"))+")" {
		t.Errorf("evidence is about %q, want the service", ev.Object)
	}
	for k, want := range map[string]string{
		"update_state":  "paused",
		"mode":          "replicated 1",
		"previous_spec": "true",
		"spec_version":  inspect(t, name, "{{.Version.Index}}"),
		"image":         demoImage(t),
	} {
		if ev.State[k] != want {
			t.Errorf("evidence state %s = %q, want %q", k, ev.State[k], want)
		}
	}
	if !strings.Contains(ev.State["last_task_error"], "non-zero exit") {
		t.Errorf("evidence has last_task_error %q, want the failed task's exit", ev.State["last_task_error"])
	}
	if !strings.Contains(ev.Log, "bad-flag") {
		t.Errorf("evidence log of %s does not show why the task failed (the unknown flag): %q", ev.State["log_task"], ev.Log)
	}
	if len(ev.Events) == 0 || len(ev.Events) > action.MaxEvidenceEvents || !strings.Contains(strings.Join(ev.Events, "\n"), "failed") {
		t.Errorf("evidence events do not list the failed tasks: %q", ev.Events)
	}

	detail, err := run(t, a, "{action: rollback}", labels)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(detail, "rolled back service "+name) || !strings.Contains(detail, "1/1 tasks running on the current spec, update rollback_completed") {
		t.Errorf("detail %q does not say the rollback completed with its task running", detail)
	}
	if got := inspect(t, name, "{{.Spec.TaskTemplate.ContainerSpec.Args}} {{.UpdateStatus.State}}"); got != "[] rollback_completed" {
		t.Errorf("after the rollback the service has args and update state %q, want \"[] rollback_completed\"", got)
	}
	if got := len(runningTasks(t, name)); got != 1 {
		t.Errorf("%d tasks running right after the rollback, want 1", got)
	}
}

// TestPausedUpdate: restarting a version whose tasks cannot run ends as soon as Swarm pauses the
// update, with Swarm's words and the task's exit, not at the step's timeout. The rollback that
// would follow in a playbook is refused: Swarm keeps one previous spec, and after the restart it
// is the same broken one.
func TestPausedUpdate(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 1, labels: optIn, broken: true})
	a := newActuator(t, Options{})
	labels := map[string]string{"service_name": name}
	start := time.Now()
	_, err := run(t, a, "{action: force-update}", labels)
	if err == nil || !strings.Contains(err.Error(), "swarm paused the update") || !strings.Contains(err.Error(), "non-zero exit") {
		t.Errorf("force-update of a broken service: %v, want Swarm's pause and the task's exit", err)
	} else if took := time.Since(start); took > 45*time.Second {
		t.Errorf("the paused update was reported after %s", took)
	}
	version := inspect(t, name, "{{.Version.Index}}")
	_, err = run(t, a, "{action: rollback}", labels)
	if err == nil || !strings.Contains(err.Error(), "differs from the current one only by a force-update or scale") {
		t.Errorf("rollback after a force-update: %v, want it refused", err)
	}
	if got := inspect(t, name, "{{.Version.Index}}"); got != version {
		t.Errorf("the refused rollback changed the service (version %s, was %s)", got, version)
	}
}

// TestGuards: nothing happens to a service that did not opt in by its own label, carries the
// protection label, or is the remediator's own; the refusal says which.
func TestGuards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		self   bool
		want   string
	}{
		{name: "no opt-in", labels: map[string]string{}, want: "has not opted in: service label remediator.enable=true is missing"},
		{name: "opt-in not true", labels: map[string]string{"remediator.enable": "yes"}, want: `has not opted in: service label remediator.enable="yes", want "true"`},
		{name: "protected", labels: map[string]string{"remediator.enable": "true", "remediator.protected": ""}, want: `carries the protection label remediator.protected=""`},
		{name: "own service", labels: optIn, self: true, want: "is the remediator's own service: refusing to act on it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// No task needs to run to be refused.
			name, _ := createService(t, serviceSpec{replicas: 0, labels: tc.labels})
			opts := Options{}
			if tc.self {
				opts.SelfService = name
			}
			a := newActuator(t, opts)
			version := inspect(t, name, "{{.Version.Index}}")
			for _, step := range []string{"{action: force-update}", "{action: scale, replicas: 1}", "{action: rollback}"} {
				_, err := run(t, a, step, map[string]string{"service_name": name})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: %v, want refused: %s", step, err, tc.want)
				}
			}
			if _, err := a.Evidence(context.Background(), request(t, "{action: force-update}", map[string]string{"service_name": name})); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("evidence: %v, want refused: %s", err, tc.want)
			}
			if got := inspect(t, name, "{{.Version.Index}}"); got != version {
				t.Errorf("the service changed (version %s, was %s)", got, version)
			}
		})
	}
}

// TestResolve finds the service from each kind of label Swarm and cAdvisor put on alerts, and
// refuses hostile or inconsistent values before they reach an API path. A rollback of a never
// updated service is the probe: reaching its refusal means the service was found and allowed.
func TestResolve(t *testing.T) {
	name, id := createService(t, serviceSpec{replicas: 1, labels: optIn})
	a := newActuator(t, Options{})
	task := runningTasks(t, name)[0]
	container := dockerCLI(t, "ps", "--no-trunc", "--quiet", "--filter", "label=com.docker.swarm.task.id="+task)
	containerName := dockerCLI(t, "inspect", "--format", "{{.Name}}", container)
	plain := testutil.RunContainer(t, testutil.ContainerSpec{Name: name + "-plain", Image: demoImage(t), Labels: optIn})
	const found = "has no previous spec to roll back to"
	for _, tc := range []struct {
		step   string
		labels map[string]string
		want   string
	}{
		{labels: map[string]string{"service_name": name}, want: found},
		{labels: map[string]string{"swarm_service": id}, want: found},
		{labels: map[string]string{"container_label_com_docker_swarm_service_name": name}, want: found},
		{labels: map[string]string{"swarm_task": name + ".1." + task}, want: found},
		{labels: map[string]string{"container": containerName}, want: found},
		{labels: map[string]string{"name": strings.TrimPrefix(containerName, "/")}, want: found},
		{labels: map[string]string{"container_id": container}, want: found},
		{step: "{action: rollback, service: '{{ .Labels.app }}'}", labels: map[string]string{"app": name}, want: found},

		{labels: map[string]string{}, want: "the alert names no Swarm service"},
		{labels: map[string]string{"service_name": "selfheal-st-no-such-service"}, want: `no service named "selfheal-st-no-such-service"`},
		{labels: map[string]string{"service_name": "../../nodes"}, want: `"../../nodes" is not a valid service name`},
		{labels: map[string]string{"service_name": name + "/update?rollback=previous"}, want: "is not a valid service name"},
		{labels: map[string]string{"service_name": name + " "}, want: "is not a valid service name"},
		{labels: map[string]string{"service_name": strings.Repeat("a", 64)}, want: "is not a valid service name"},
		{labels: map[string]string{"service_name": id[:6]}, want: "is neither the name nor the id of a service"},
		{labels: map[string]string{"swarm_task": "selfheal-other.1." + task}, want: "belongs to service " + name},
		{labels: map[string]string{"swarm_task": name + ".1.../../../x"}, want: "is not a task name"},
		{labels: map[string]string{"swarm_task": name + ".1." + strings.Repeat("z", 25)}, want: "no task " + strings.Repeat("z", 25)},
		{labels: map[string]string{"container": "../../containers/x"}, want: "invalid container name"},
		{labels: map[string]string{"container": "selfheal-st-no-such-container"}, want: `no container "selfheal-st-no-such-container"`},
		{labels: map[string]string{"container": plain.Name}, want: "is not a Swarm task (it has no com.docker.swarm.service.id label)"},
		{labels: map[string]string{"container": container[:8]}, want: "is neither the name of a container nor an id of 12+ digits"},
		{labels: map[string]string{"container_id": "xyz"}, want: "is not a container id"},
		{labels: map[string]string{"container_id": container[:3]}, want: "is not a container id"},
		{step: "{action: rollback, service: '{{ .Labels.app }}'}", labels: map[string]string{"app": "a/../b"}, want: "is not a valid service name"},
		{step: "{action: rollback, service: '{{ .Labels.app }}'}", labels: map[string]string{"app": " "}, want: "rendered empty"},
	} {
		step := tc.step
		if step == "" {
			step = "{action: rollback}"
		}
		_, err := run(t, a, step, tc.labels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %v: %v, want an error containing %q", step, tc.labels, err, tc.want)
		}
	}
	if got := inspect(t, name, "{{.Version.Index}} {{.PreviousSpec}}"); !strings.HasSuffix(got, " <nil>") {
		t.Errorf("resolving changed the service: %s", got)
	}
}

// TestEngineDown: a manager that cannot be reached fails the step with the address in the
// reason, not with the client's bare text.
func TestEngineDown(t *testing.T) {
	a := newActuator(t, Options{Host: "tcp://" + closedPort(t), Timeout: 5 * time.Second})
	_, err := run(t, a, "{action: force-update}", map[string]string{"service_name": "api"})
	if err == nil || !strings.Contains(err.Error(), "docker engine unreachable at tcp://127.0.0.1:") {
		t.Errorf("got %v, want the unreachable engine named", err)
	}
}

func closedPort(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}
