package kubernetes

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/loadtest"
	"github.com/selfheal/selfheal/remediator/store"
)

// The whole remediator (webhook, matching, guards, store, the dispatcher and this actuator)
// heals from Alertmanager notifications shaped like the kube-prometheus rules' alerts.
func TestPlaybooksFromAlertmanagerPayload(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "api", optedIn())
	a := newActuator(t, ns)
	r, err := loadtest.Start(loadtest.Options{Dir: t.TempDir(), Actuators: []action.Actuator{a}, Playbooks: `
playbooks:
  - name: pod-crashlooping
    match: ['alertname="KubePodCrashLooping"']
    target: '{{ .Labels.namespace }}:{{ .Labels.pod }}'
    verify: {skip: true}
    steps:
      - kubernetes: {action: delete-pod, grace_period: 1s}
        timeout: 45s
  - name: replicas-mismatch
    match: ['alertname="KubeDeploymentReplicasMismatch"']
    target: '{{ .Labels.namespace }}:{{ .Labels.deployment }}'
    verify: {skip: true}
    steps:
      - kubernetes: {action: rollout-restart}
        timeout: 45s
`})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	client := &http.Client{Timeout: 10 * time.Second}

	victim := podsOf(t, ns, "api")[0]
	// kube_pod_container_status_waiting_reason, as the kube-state-metrics ServiceMonitor keeps
	// the series' own namespace, pod and container (honorLabels).
	post(t, r, client, template.KV{
		"alertname": "KubePodCrashLooping", "namespace": ns, "pod": victim.Name, "container": "app",
		"reason": "CrashLoopBackOff", "uid": string(victim.UID), "job": "kube-state-metrics",
		"instance": "10.0.3.17:8443", "endpoint": "https-main", "service": "kube-state-metrics", "severity": "warning",
	})
	waitHeal(t, r, "pod-crashlooping")
	for _, p := range podsOf(t, ns, "api") {
		if p.UID == victim.UID {
			t.Errorf("crash-looping pod %s was not replaced", p.Name)
		}
	}

	before := uids(podsOf(t, ns, "api"))
	// kube_deployment_spec_replicas vs status_replicas_available: the workload's labels, plus
	// kube-state-metrics' own container from the scrape target, which must not be taken for
	// a container of the deployment.
	post(t, r, client, template.KV{
		"alertname": "KubeDeploymentReplicasMismatch", "namespace": ns, "deployment": "api",
		"container": "kube-rbac-proxy-main", "job": "kube-state-metrics", "instance": "10.0.3.17:8443",
		"endpoint": "https-main", "service": "kube-state-metrics", "severity": "warning",
	})
	waitHeal(t, r, "replicas-mismatch")
	for _, p := range podsOf(t, ns, "api") {
		if before[string(p.UID)] {
			t.Errorf("pod %s survived the rollout restart", p.Name)
		}
	}
	if d := getDeployment(t, ns, "api"); d.Spec.Template.Annotations[restartedAtAnnotation] == "" {
		t.Error("deployment was not restarted")
	}
}

func post(t *testing.T, r *loadtest.Remediator, c *http.Client, labels template.KV) {
	t.Helper()
	now := time.Now().Add(-5 * time.Minute)
	body, err := json.Marshal(map[string]any{
		"version": "4", "groupKey": "{}:{alertname=\"" + labels["alertname"] + "\"}", "status": "firing",
		"receiver": "remediator", "externalURL": "http://alertmanager-main.monitoring:9093",
		"groupLabels":  template.KV{"alertname": labels["alertname"], "namespace": labels["namespace"]},
		"commonLabels": labels, "commonAnnotations": template.KV{},
		"alerts": []template.Alert{{
			Status: "firing", Labels: labels, StartsAt: now, Fingerprint: fingerprint(labels),
			Annotations:  template.KV{"summary": "Pod is crash looping.", "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/" + strings.ToLower(labels["alertname"])},
			GeneratorURL: "http://prometheus-k8s-0:9090/graph",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	status, reply, err := r.Post(c, body)
	if err != nil || status/100 != 2 {
		t.Fatalf("webhook: %d %s %v", status, reply, err)
	}
}

func fingerprint(labels template.KV) string {
	ls := model.LabelSet{}
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// waitHeal waits for the playbook's heal to end and requires it healed.
func waitHeal(t *testing.T, r *loadtest.Remediator, playbook string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		m, err := r.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		results := map[string]float64{}
		for _, res := range []string{store.HealHealed, store.HealFailed, store.HealInterrupted} {
			results[res] = m.Value("remediator_heals_total", "playbook", playbook, "result", res)
		}
		if results[store.HealHealed] == 1 {
			return
		}
		if results[store.HealFailed]+results[store.HealInterrupted] > 0 {
			t.Fatalf("heal of %s ended %v", playbook, results)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no heal of %s ended within a minute", playbook)
}
