package docker

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

// leastPrivilegeProxy stands for the compose stack's socket proxy with what the default
// playbooks need: ping, version, the container list, a container's inspect and its log (the
// evidence before an action); POST only on start, stop, restart and kill. Everything else is
// 403, as the proxy answers.
func leastPrivilegeProxy(t *testing.T) string {
	t.Helper()
	return testutil.SocketProxy(t,
		regexp.MustCompile(`^(/v[\d.]+)?/(_ping|version|containers/json|containers/[a-zA-Z0-9_.-]+/(json|logs))$`),
		regexp.MustCompile(`^(/v[\d.]+)?/containers/[a-zA-Z0-9_.-]+/(start|stop|restart|kill)$`))
}

func TestThroughLeastPrivilegeProxy(t *testing.T) {
	t.Parallel()
	name, c, _ := demoContainer(t, demoImages(t).plain, optIn)
	a := newActuator(t, Options{Host: leastPrivilegeProxy(t)})
	labels := map[string]string{"container": name}

	for _, act := range []string{"restart", "stop", "start", "kill", "start"} {
		da := config.DockerAction{Action: act, StopTimeout: model.Duration(2 * time.Second)}
		if _, err := a.Run(context.Background(), request(da, labels)); err != nil {
			t.Fatalf("%s through the proxy: %v", act, err)
		}
	}

	_, err := a.Run(context.Background(), request(config.DockerAction{Action: "recreate"}, labels))
	if err == nil || !strings.Contains(err.Error(), "which must allow this call") {
		t.Fatalf("recreate through a proxy without create/rename/remove: err = %v, want it to say the proxy forbids it", err)
	}
	t.Log(err)
	if id := testutil.InspectField(t, name, "{{.Id}} {{.State.Status}}"); id != c.ID+" running" {
		t.Errorf("after the refused recreate: %s, want %s running, untouched", id, c.ID)
	}
}
