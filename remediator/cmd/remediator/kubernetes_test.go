package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// --config.check knows the kubernetes actions next to the docker and swarm ones, in one file.
func TestConfigCheckKubernetesSteps(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	good := testutil.WriteFile(t, dir, "mixed.yml", "playbooks:\n"+
		"  - {name: mismatch, match: ['alertname=\"KubeDeploymentReplicasMismatch\"'], steps: [{kubernetes: {action: rollback}}]}\n"+
		"  - {name: memory-high, match: ['alertname=\"ServiceMemoryHigh\"'], steps: [{docker: {action: restart}}, {kubernetes: {action: scale, by: 1, max: 4}}]}\n"+
		"  - {name: swarm-down, match: ['alertname=\"ServiceDown\"'], steps: [{swarm: {action: force-update}}]}\n")
	out, err := exec.Command(bin, "--config.check", "--config.file", good).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != good+": 3 playbooks, 4 steps, OK" {
		t.Fatalf("mixed playbooks: %v\n%s", err, out)
	}
	bad := testutil.WriteFile(t, dir, "bad.yml", "playbooks:\n  - name: x\n    match: ['a=\"b\"']\n    target: x\n    steps:\n      - kubernetes: {action: drain}\n")
	out, err = exec.Command(bin, "--config.check", "--config.file", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+`:6: playbook "x": step 1: kubernetes.action "drain" is not supported (hint: use one of rollout-restart, delete-pod, scale, rollback)`) {
		t.Fatalf("unknown kubernetes action: %v\n%s", err, out)
	}
}

// The Kubernetes actuator is built only when namespaces are given, and a half-given setup is
// an error at start, not at the first alert.
func TestKubernetesFlags(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	cfg := filepath.Join("..", "..", "playbooks.yml")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubernetes.kubeconfig=" + filepath.Join(dir, "kubeconfig")}, "--kubernetes.kubeconfig is set but --kubernetes.namespaces is not"},
		{[]string{"--kubernetes.namespaces=shop", "--kubernetes.kubeconfig=" + filepath.Join(dir, "missing")}, "kubernetes client configuration"},
		{[]string{"--kubernetes.namespaces=Shop/../x"}, `is not a valid Kubernetes name`},
	} {
		args := append([]string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0"}, tc.args...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v, want exit 1 with %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}
