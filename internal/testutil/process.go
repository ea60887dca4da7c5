package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a program a test started. It runs in a process group of its own, so stopping it
// also stops what it spawned (a remediator's command steps); it is stopped when the test ends,
// and the end of its output is logged when the test failed.
type Process struct {
	Name string
	// URL is the base URL of a program started by StartServer.
	URL string

	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// StartProcess starts bin with args and env (added to the test's environment). Its standard
// output and error go to a file rather than memory: a debug log over a long run is large.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	return startProcess(t, name, append(os.Environ(), env...), bin, args...)
}

// startProcess is StartProcess with the whole environment given.
func startProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p, err := launch(name, env, bin, filepath.Join(t.TempDir(), name+".log"), nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- last lines of %s's output ---\n%s", name, p.Tail(60))
		}
	})
	return p
}

// launch starts bin with args and env, its output in the file logPath, in a process group of its
// own. prepare, when given, adjusts the command before it starts. It is the start of every
// program here, whether a test or a whole package owns it.
func launch(name string, env []string, bin, logPath string, prepare func(*exec.Cmd), args ...string) (*Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if prepare != nil {
		prepare(cmd)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// StartServer starts a program that serves HTTP on a free loopback port, given to it as
// --web.listen-address (the flag of every server here and in the Prometheus ecosystem), and
// returns once GET readyPath answers 200.
func StartServer(t testing.TB, name, bin, readyPath string, args ...string) *Process {
	t.Helper()
	return startServer(t, name, os.Environ(), bin, readyPath, args...)
}

func startServer(t testing.TB, name string, env []string, bin, readyPath string, args ...string) *Process {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	p := startProcess(t, name, env, bin, append(args, "--web.listen-address="+addr)...)
	p.URL = "http://" + addr
	p.WaitReady(t, p.URL+readyPath, 30*time.Second)
	return p
}

// StartRemediator runs the remediator binary bin with playbooks written to dir/playbooks.yml
// and its store in dir/data, on a free port, once it is ready. The playbook file stays, so a
// test may rewrite it and reload.
func StartRemediator(t testing.TB, bin, dir, playbooks string, args ...string) *Process {
	t.Helper()
	cfg := WriteFile(t, dir, "playbooks.yml", playbooks)
	args = append([]string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data")}, args...)
	return StartServer(t, "remediator", bin, "/-/ready", args...)
}

// StartDemoService builds the demo service and serves it as service name on a free loopback
// port, with args after "serve". Its environment holds only PATH, so FAULTS or DATABASE_URL of
// the caller's shell do not reach it.
func StartDemoService(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "demo-service")
	if err := buildDemoService(bin); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"serve", "--service.name=" + name}, args...)
	return startServer(t, name, []string{"PATH=" + os.Getenv("PATH")}, bin, "/healthz", args...)
}

// WaitReady waits until GET url answers 200, or fails the test when timeout passes or the
// process exits first.
func (p *Process) WaitReady(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p.Exited() {
			t.Fatalf("%s exited before it was ready:\n%s", p.Name, p.Tail(30))
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s after %s: %s\n%s", p.Name, url, timeout, last, p.Tail(30))
}

// Signal sends sig to the program itself, e.g. SIGHUP to reload.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop asks the process group to end (SIGTERM) and kills it after ten seconds.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	// The group is the process' own (Setpgid): this ends exactly what StartProcess started.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
	}
}

// Kill ends the process group with SIGKILL: no shutdown code runs, as in a crash.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Exited reports whether the program has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is everything the program has written so far.
func (p *Process) Output() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Tail is the last n lines of the program's output.
func (p *Process) Tail(n int) string { return lastLines(p.Output(), n) }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
