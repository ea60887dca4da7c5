package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
)

// CommandRunner runs a program directly, never through a shell: a label value is one argument,
// whatever quotes or semicolons it holds. The alert reaches the program as environment
// variables: ALERT_LABEL_<NAME>, ALERT_ANNOTATION_<NAME>, ALERT_TARGET, ALERT_PLAYBOOK,
// ALERT_STEP, ALERT_STATUS, ALERT_FINGERPRINT and ALERT_STARTS_AT (RFC 3339). Besides those and
// the step's env, only PATH is passed on: the remediator's own environment stays private.
type CommandRunner struct{}

const outputTail = 4 << 10

// Run executes the step's command and waits for it, up to the step's timeout.
func (CommandRunner) Run(ctx context.Context, req Request) (string, error) {
	if req.Step == nil || req.Step.Command == nil {
		return "", errors.New("not a command step")
	}
	c := req.Step.Command
	ctx, cancel := withStepTimeout(ctx, req.Step)
	defer cancel()

	argv, err := config.RenderArgv(c.Argv, config.NewTemplateData(req.Alert, req.Target, req.Playbook))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = commandEnv(req)
	out := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = out, out
	// A child that keeps the output pipes open must not keep the step running past its end.
	cmd.WaitDelay = 2 * time.Second
	setProcessGroup(cmd)

	start := time.Now()
	err = cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	what := "command " + argv[0]
	output := strings.TrimSpace(tailSnippet(out.Bytes(), 512))
	if err != nil {
		if ctx.Err() != nil {
			err = timeoutError(ctx, what, start)
		} else {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%s: %s after %s", what, ee.ProcessState, took)
			} else {
				err = fmt.Errorf("%s: %w", what, err)
			}
		}
		if output != "" {
			err = fmt.Errorf("%w: %s", err, output)
		}
		return "", err
	}
	detail := fmt.Sprintf("%s exited 0 in %s", what, took)
	if output != "" {
		detail += ": " + snippet([]byte(output), 200)
	}
	return detail, nil
}

// commandEnv builds the program's environment, sorted so that runs are reproducible.
func commandEnv(req Request) []string {
	env := map[string]string{}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	env["PATH"] = path
	for k, v := range req.Step.Command.Env {
		env[k] = v
	}
	for k, v := range req.Alert.Labels {
		env["ALERT_LABEL_"+envSuffix(k)] = v
	}
	for k, v := range req.Alert.Annotations {
		env["ALERT_ANNOTATION_"+envSuffix(k)] = v
	}
	env["ALERT_TARGET"] = req.Target
	env["ALERT_PLAYBOOK"] = playbookName(req)
	env["ALERT_STEP"] = req.Step.Name
	env["ALERT_STATUS"] = req.Alert.Status
	env["ALERT_FINGERPRINT"] = req.Alert.Fingerprint
	if !req.Alert.StartsAt.IsZero() {
		env["ALERT_STARTS_AT"] = req.Alert.StartsAt.UTC().Format(time.RFC3339)
	}
	keys := make([]string, 0, len(env))
	for k, v := range env {
		if strings.ContainsRune(v, 0) { // exec would refuse the whole environment
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + env[k]
	}
	return out
}

// envSuffix turns a label name into an environment variable suffix: upper case, anything but
// letters and digits as "_".
func envSuffix(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// tailSnippet is snippet of the last n bytes.
func tailSnippet(b []byte, n int) string {
	if len(b) <= n {
		return snippet(b, n)
	}
	return "…" + snippet(b[len(b)-n:], n)
}

// tailBuffer keeps the last max bytes written: the end of a failing program's output says why.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}
