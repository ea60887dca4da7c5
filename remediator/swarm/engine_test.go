package swarm

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

// The demo service's image, built once for the package FROM scratch under a test-only name.
var image struct {
	once sync.Once
	err  error
	tag  string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if image.tag != "" {
		if err := testutil.RemoveImage(image.tag); err != nil {
			fmt.Fprintln(os.Stderr, "removing the test image:", err)
		}
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
	image.once.Do(func() {
		dir, err := os.MkdirTemp("", "selfheal-swarm-test-")
		if err != nil {
			image.err = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "demo-service")
		if image.err = testutil.BuildStatic(testutil.RepoRoot(t), "./services/cmd/demo-service", bin); image.err != nil {
			return
		}
		tag := fmt.Sprintf("selfheal-test/demo-service:swarm-%d", os.Getpid())
		if image.err = testutil.BuildScratchImage(bin, tag); image.err == nil {
			image.tag = tag
		}
	})
	if image.err != nil {
		t.Fatalf("building the demo-service test image: %v", image.err)
	}
	return image.tag
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
}

// createService starts a service of the demo image, waits until its tasks run, and removes it
// (and waits for its containers to go) when the test ends.
func createService(t *testing.T, spec serviceSpec) (name, id string) {
	t.Helper()
	img := demoImage(t)
	n := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(n) > 40 {
		n = n[:40]
	}
	name = fmt.Sprintf("selfheal-st-%s-%04x", strings.Trim(n, "-"), rand.IntN(0x10000))
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
	id = dockerCLI(t, args...)
	t.Cleanup(func() { removeService(t, name) })
	waitRunning(t, name, spec.replicas)
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
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.SelfService == "" {
		// The tests may run in a container; its service (none) is not what is tested here.
		opts.SelfService = "selfheal-no-such-service"
	}
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
