package main

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

func TestConfigCheck(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	root := testutil.RepoRoot(t)
	out, err := exec.Command(bin, "--config.check", "--config.file", filepath.Join(root, "remediator", "playbooks.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "playbooks") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Fatalf("shipped playbooks: %v\n%s", err, out)
	}
	bad := testutil.WriteFile(t, t.TempDir(), "bad.yml", "playbooks:\n  - name: x\n    bogus: 1\n")
	out, err = exec.Command(bin, "--config.check", "--config.file", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("bad file accepted: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), bad+":3:") {
		t.Fatalf("no file:line message:\n%s", out)
	}
}

// SIGHUP reloads; a bad file keeps the running config and the metric says so.
func TestSIGHUPReload(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	p := testutil.StartRemediator(t, bin, dir, testutil.Testdata(t, "playbooks.yml"))
	m := testutil.GetText(t, p.URL+"/metrics")
	for _, want := range []string{"remediator_build_info{", "remediator_config_last_reload_successful 1", `remediator_heals_total{playbook="cpu-high",result="healed"} 0`} {
		if !strings.Contains(m, want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
	testutil.WriteFile(t, dir, "playbooks.yml", "playbooks: [")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the failed reload to show", func() bool {
		m := testutil.GetText(t, p.URL+"/metrics")
		return strings.Contains(m, "remediator_config_last_reload_successful 0") && strings.Contains(m, `remediator_config_reloads_total{result="failure"} 1`)
	})
	testutil.WriteFile(t, dir, "playbooks.yml", strings.Replace(testutil.Testdata(t, "playbooks.yml"), "name: cpu-high", "name: cpu-saturated", 1))
	_ = p.Signal(syscall.SIGHUP)
	testutil.Eventually(t, 10*time.Second, "the good reload to show", func() bool {
		m := testutil.GetText(t, p.URL+"/metrics")
		return strings.Contains(m, "remediator_config_last_reload_successful 1") &&
			strings.Contains(m, `playbook="cpu-saturated"`) && !strings.Contains(m, `playbook="cpu-high"`)
	})
}

// A client that trickles its request headers is cut off by --web.read-header-timeout and does
// not keep others from being served.
func TestSlowClientIsCutOff(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	p := testutil.StartRemediator(t, bin, dir, testutil.Testdata(t, "playbooks.yml"),
		"--web.read-header-timeout=500ms", "--web.max-requests=2")
	conns := make([]net.Conn, 0, 4)
	for range 4 {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("POST /webhook HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// Meanwhile a well-behaved client is served.
	if code, _ := testutil.Do(t, http.MethodPost, p.URL+"/webhook", `{"version":"4","alerts":[]}`, nil); code != 400 {
		t.Fatalf("normal request: %d", code)
	}
	start := time.Now()
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		// The server answers 408 or just closes; either way the connection ends.
		if err == nil && !strings.Contains(string(buf[:n]), "408") {
			t.Fatalf("slow client got %q", buf[:n])
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("slow clients held their connections for %s", d)
	}
}

// The image has no curl, so `remediator healthcheck` is the container's healthcheck: it must
// pass against a running remediator and fail, non-zero, when nothing answers.
func TestHealthcheckCommand(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	root := testutil.RepoRoot(t)
	p := testutil.StartServer(t, "remediator", bin, "/-/ready",
		"--config.file", filepath.Join(root, "remediator", "playbooks.yml"), "--storage.path", t.TempDir())
	if out, err := exec.Command(bin, "healthcheck", "--url", p.URL+"/-/ready").CombinedOutput(); err != nil {
		t.Fatalf("healthcheck against a ready remediator: %v\n%s", err, out)
	}
	closed := fmt.Sprintf("http://127.0.0.1:%d/-/ready", testutil.FreePort(t))
	out, err := exec.Command(bin, "healthcheck", "--url", closed, "--timeout", "1s").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "unhealthy") {
		t.Fatalf("healthcheck against nothing: %v\n%s", err, out)
	}
}
