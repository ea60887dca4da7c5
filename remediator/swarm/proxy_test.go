package swarm

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// What swarm steps need of the engine API, and nothing else, as docs/actuators.md lists it for
// the socket proxy: read a service, its tasks and their logs, and a task's container (to
// resolve container labels and find the remediator's own service); write only a service update.
var (
	proxyRead  = regexp.MustCompile(`^(/v[\d.]+)?/(_ping|version|containers/[a-zA-Z0-9_.-]+/json|services/[a-zA-Z0-9_-]+|tasks|tasks/[a-z0-9]+|tasks/[a-z0-9]+/logs)$`)
	proxyWrite = regexp.MustCompile(`^(/v[\d.]+)?/services/[a-z0-9]+/update$`)
)

func TestThroughLeastPrivilegeProxy(t *testing.T) {
	name, _ := createService(t, serviceSpec{replicas: 1, labels: optIn})
	deploy(t, name, "--env-add", "SELFHEAL_MARK=v2")
	a := newActuator(t, Options{Host: testutil.SocketProxy(t, proxyRead, proxyWrite)})
	task := runningTasks(t, name)[0]
	container := dockerCLI(t, "ps", "--quiet", "--no-trunc", "--filter", "label=com.docker.swarm.task.id="+task)
	for _, tc := range []struct {
		step   string
		labels map[string]string
	}{
		{"{action: rollback}", map[string]string{"container": container}},
		{"{action: force-update}", map[string]string{"service_name": name}},
		{"{action: scale, by: 1, min: 1, max: 2}", map[string]string{"swarm_task": name + ".1." + task}},
	} {
		if _, err := run(t, a, tc.step, tc.labels); err != nil {
			t.Fatalf("%s through the proxy: %v", tc.step, err)
		}
	}
	ev, err := a.Evidence(context.Background(), request(t, "{action: force-update}", map[string]string{"service_name": name}))
	if err != nil || ev.State["log_error"] != "" || ev.State["tasks_running"] != "2/2" {
		t.Fatalf("evidence through the proxy: %v, %+v", err, ev)
	}

	// Without the update endpoint, the refusal names the proxy, and nothing changes.
	readOnly := newActuator(t, Options{Host: testutil.SocketProxy(t, proxyRead, regexp.MustCompile(`^$`))})
	version := inspect(t, name, "{{.Version.Index}}")
	_, err = run(t, readOnly, "{action: force-update}", map[string]string{"service_name": name})
	if err == nil || !strings.Contains(err.Error(), "forbidden by the engine or by the socket proxy") {
		t.Fatalf("force-update through a read-only proxy: %v, want it to say the proxy forbids it", err)
	}
	if got := inspect(t, name, "{{.Version.Index}}"); got != version {
		t.Errorf("the service changed through a read-only proxy (version %s, was %s)", got, version)
	}
}
