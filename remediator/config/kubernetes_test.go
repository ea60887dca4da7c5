package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const kubePlaybookHead = `playbooks:
  - name: crashloop
    match: ['alertname="KubePodCrashLooping"']
    target: '{{ .Labels.namespace }}:{{ .Labels.pod }}'
    steps:
`

func TestKubernetesStepsValid(t *testing.T) {
	cfg, err := Parse([]byte(kubePlaybookHead+`      - kubernetes: {action: Delete-Pod, grace_period: 5s}
        timeout: 1m
      - kubernetes: {action: rollout-restart}
      - kubernetes: {action: scale, by: 2, max: 6}
      - kubernetes: {action: scale, by: -1, min: 1}
      - kubernetes: {action: scale, replicas: 3, min: 1, max: 5}
      - kubernetes: {action: rollback}
`), "kube.yml")
	if err != nil {
		t.Fatal(err)
	}
	steps := cfg.Playbooks[0].Steps
	if got := steps[0].Action(); got != "kubernetes" {
		t.Errorf("Action() = %q, want kubernetes", got)
	}
	k := steps[0].Kubernetes
	if k.Action != "delete-pod" || k.GracePeriod == nil || time.Duration(*k.GracePeriod) != 5*time.Second {
		t.Errorf("first step = %+v, want delete-pod with a 5s grace period", k)
	}
	if steps[0].Name != "1-kubernetes" {
		t.Errorf("unnamed step got name %q, want 1-kubernetes", steps[0].Name)
	}
	if s := steps[2].Kubernetes; s.By != 2 || *s.Max != 6 {
		t.Errorf("scale step = %+v", s)
	}
}

func TestKubernetesStepsInvalid(t *testing.T) {
	for _, tc := range []struct{ steps, want string }{
		{"      - kubernetes: {action: reboot}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes.action "reboot" is not supported (hint: use one of rollout-restart, delete-pod, scale, rollback)`},
		{"      - kubernetes: {}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes.action "" is not supported (hint: use one of rollout-restart, delete-pod, scale, rollback)`},
		{"      - kubernetes: {action: scale}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes scale needs replicas or a non-zero by (hint: e.g. kubernetes: {action: scale, by: 1, max: 5})`},
		{"      - kubernetes: {action: scale, by: 1}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes scale by 1 needs a max (hint: add max: the most replicas this playbook may ever set)`},
		{"      - kubernetes: {action: scale, by: -1}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes scale by -1 needs a min (hint: add min: the fewest replicas this playbook may ever leave)`},
		{"      - kubernetes: {action: scale, replicas: 2, by: 1, max: 3}\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes.replicas and kubernetes.by exclude each other (hint: keep one of them)`},
		{"      - kubernetes:\n          action: scale\n          replicas: 9\n          max: 4\n",
			`kube.yml:8: playbook "crashloop": step 1: kubernetes.replicas (9) is outside min and max (hint: set replicas between min and max)`},
		{"      - kubernetes:\n          action: scale\n          by: 1\n          min: 5\n          max: 4\n",
			`kube.yml:10: playbook "crashloop": step 1: kubernetes.min (5) is greater than kubernetes.max (4) (hint: raise max or lower min)`},
		{"      - kubernetes:\n          action: rollout-restart\n          max: 4\n",
			`kube.yml:8: playbook "crashloop": step 1: kubernetes.max is only used by action scale, not "rollout-restart" (hint: remove it, or use action: scale)`},
		{"      - kubernetes:\n          action: rollback\n          grace_period: 10s\n",
			`kube.yml:8: playbook "crashloop": step 1: kubernetes.grace_period is only used by action delete-pod, not "rollback" (hint: remove it, or use action: delete-pod)`},
		{"      - kubernetes: {action: delete-pod, grace_period: 30s}\n        timeout: 30s\n",
			`kube.yml:6: playbook "crashloop": step 1: kubernetes.grace_period (30s) leaves no time within the step's timeout (30s) (hint: raise the step's timeout or lower grace_period)`},
		{"      - kubernetes: {action: delete-pod, pod: x}\n",
			`kube.yml:6: unknown key "pod" in a kubernetes action (hint: valid keys: action, replicas, by, min, max, grace_period)`},
		{"      - kubernetes: {action: delete-pod}\n        docker: {action: restart}\n",
			`kube.yml:6: playbook "crashloop": step 1: step has 2 actions (docker, kubernetes); a step does exactly one thing (hint: split it into one step per action)`},
	} {
		_, err := Parse([]byte(kubePlaybookHead+tc.steps), "kube.yml")
		var es Errors
		if !errors.As(err, &es) {
			t.Errorf("steps\n%s: error %v, want Errors", tc.steps, err)
			continue
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Error())
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("steps\n%s got:\n%s\nwant:\n%s", tc.steps, strings.Join(got, "\n"), tc.want)
		}
	}
}

// A file that mixes platforms passes the same check a start runs (--config.check).
func TestCheckMixedActuators(t *testing.T) {
	path := filepath.Join(t.TempDir(), "playbooks.yml")
	err := os.WriteFile(path, []byte(`playbooks:
  - name: crashloop
    match: ['alertname="KubePodCrashLooping"']
    target: '{{ .Labels.namespace }}:{{ .Labels.pod }}'
    steps:
      - kubernetes: {action: delete-pod, grace_period: 10s}
      - kubernetes: {action: rollout-restart}
  - name: replicas-mismatch
    match: ['alertname="KubeDeploymentReplicasMismatch"']
    target: '{{ .Labels.namespace }}:{{ .Labels.deployment }}'
    steps:
      - kubernetes: {action: rollback}
      - kubernetes: {action: scale, by: 1, max: 5}
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - docker: {action: restart}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	summary, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(summary, ": 3 playbooks, 5 steps, OK") {
		t.Errorf("summary = %q", summary)
	}
}
