package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// A playbook with docker and swarm steps passes --config.check; swarm step errors are reported
// like any other, with file and line.
func TestConfigCheckSwarmSteps(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	good := testutil.WriteFile(t, dir, "good.yml", `playbooks:
  - name: api-down
    match: ['alertname="SwarmServiceDown"']
    steps:
      - docker: {action: restart}
      - swarm: {action: force-update}
      - swarm: {action: scale, by: 1, min: 1, max: 4}
      - swarm: {action: rollback, service: '{{ .Labels.service_name }}'}
`)
	if out, err := exec.Command(bin, "--config.check", "--config.file", good).CombinedOutput(); err != nil {
		t.Fatalf("docker and swarm steps: %v\n%s", err, out)
	}
	bad := testutil.WriteFile(t, dir, "bad.yml", `playbooks:
  - name: api-down
    match: ['alertname="SwarmServiceDown"']
    steps:
      - swarm: {action: scale, by: 1}
`)
	out, err := exec.Command(bin, "--config.check", "--config.file", bad).CombinedOutput()
	want := bad + ":5: playbook \"api-down\": step 1: swarm scale by a step needs min and max"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), want) {
		t.Fatalf("unbounded scale: %v\n%s\nwant %s", err, out, want)
	}
}

// A bad swarm flag stops the start with a reason, before anything is served.
func TestSwarmFlags(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	cfg := testutil.WriteFile(t, dir, "playbooks.yml", testutil.Testdata(t, "playbooks.yml"))
	out, err := exec.Command(bin, "--config.file", cfg, "--storage.path", filepath.Join(dir, "data"),
		"--swarm.enable", "--swarm.self-service", "../nodes").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), `self service \"../nodes\" is neither a service name nor an id`) {
		t.Fatalf("bad --swarm.self-service: %v\n%s", err, out)
	}
}
