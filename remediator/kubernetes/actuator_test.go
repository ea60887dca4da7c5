package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

func run(t *testing.T, a *Actuator, ka config.KubernetesAction, labels map[string]string) (string, error) {
	t.Helper()
	ka.Action = strings.ToLower(ka.Action)
	req := action.Request{
		Step:  &config.Step{Name: "s", Kubernetes: &ka},
		Alert: template.Alert{Labels: template.KV(labels)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return a.Run(ctx, req)
}

func mustRun(t *testing.T, a *Actuator, ka config.KubernetesAction, labels map[string]string) string {
	t.Helper()
	detail, err := run(t, a, ka, labels)
	if err != nil {
		t.Fatalf("%s: %v", ka.Action, err)
	}
	return detail
}

func getDeployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := admin.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func uids(pods []corev1.Pod) map[string]bool {
	m := map[string]bool{}
	for _, p := range pods {
		m[string(p.UID)] = true
	}
	return m
}

func TestRolloutRestartDeployment(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "api", optedIn())
	before := uids(podsOf(t, ns, "api"))
	a := newActuator(t, ns)

	detail := mustRun(t, a, config.KubernetesAction{Action: "rollout-restart"}, map[string]string{"namespace": ns, "deployment": "api"})
	if !strings.Contains(detail, "restarted deployment "+ns+"/api; rollout complete: 2/2 updated, 2 available") {
		t.Errorf("detail = %q", detail)
	}
	d := getDeployment(t, ns, "api")
	if d.Spec.Template.Annotations[restartedAtAnnotation] == "" {
		t.Errorf("pod template has no %s annotation", restartedAtAnnotation)
	}
	if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != 2 || d.Status.AvailableReplicas != 2 {
		t.Errorf("reported done but status is %+v at generation %d", d.Status, d.Generation)
	}
	after := podsOf(t, ns, "api")
	if len(after) != 2 {
		t.Fatalf("%d pods after the restart, want 2", len(after))
	}
	for _, p := range after {
		if before[string(p.UID)] {
			t.Errorf("pod %s survived the restart", p.Name)
		}
	}
}

func TestRolloutRestartStatefulSetAndDaemonSet(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	ctx := context.Background()
	o := optedIn()
	sts, err := admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: o.labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr(int32(2)), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: podTemplate("db", o),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ns, kindStatefulSet, "db", sts.Generation)
	ds, err := admin.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Labels: o.labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: podTemplate("agent", o),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := newActuator(t, ns)
	before := uids(podsOf(t, ns, "db"))

	// A pod of the StatefulSet is resolved to it through its owner reference.
	pod := podsOf(t, ns, "db")[0].Name
	detail := mustRun(t, a, config.KubernetesAction{Action: "rollout-restart"}, map[string]string{"namespace": ns, "pod": pod, "container": "app"})
	if !strings.Contains(detail, "restarted statefulset "+ns+"/db; rollout complete: 2/2 ready, 2 updated") {
		t.Errorf("detail = %q", detail)
	}
	for _, p := range podsOf(t, ns, "db") {
		if before[string(p.UID)] {
			t.Errorf("statefulset pod %s survived the restart", p.Name)
		}
	}
	// No node runs here, so the DaemonSet wants no pods: done is its controller having
	// observed the new template.
	detail = mustRun(t, a, config.KubernetesAction{Action: "rollout-restart"}, map[string]string{"namespace": ns, "daemonset": "agent"})
	got, err := admin.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation <= ds.Generation || got.Status.ObservedGeneration < got.Generation || !strings.Contains(detail, "restarted daemonset") {
		t.Errorf("daemonset generation %d (was %d), observed %d; detail %q", got.Generation, ds.Generation, got.Status.ObservedGeneration, detail)
	}
}

// A pod label (KubePodCrashLooping) resolves through its ReplicaSet to the Deployment.
func TestOwnerResolutionPodToDeployment(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "web", optedIn())
	a := newActuator(t, ns)
	pod := podsOf(t, ns, "web")[0]
	tg, err := a.resolve(context.Background(), map[string]string{"namespace": ns, "pod": pod.Name}, false)
	if err != nil {
		t.Fatal(err)
	}
	if tg.kind != kindDeployment || tg.name != "web" || tg.pod == nil || tg.pod.UID != pod.UID {
		t.Errorf("pod %s resolved to %s (pod %v), want deployment %s/web", pod.Name, tg, tg.pod != nil, ns)
	}
	// A workload label wins over the pod label of the scrape target (kube-state-metrics' own pod).
	tg, err = a.resolve(context.Background(), map[string]string{"namespace": ns, "deployment": "web", "pod": "kube-state-metrics-0"}, false)
	if err != nil || tg.kind != kindDeployment || tg.name != "web" {
		t.Errorf("deployment label: %v, %v", tg, err)
	}
}

func TestDeletePodEvictsAndWaitsForReplacement(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "api", optedIn())
	a := newActuator(t, ns)
	victim := podsOf(t, ns, "api")[0]

	detail := mustRun(t, a, config.KubernetesAction{Action: "delete-pod", GracePeriod: ptr(model.Duration(2 * time.Second))},
		map[string]string{"namespace": ns, "pod": victim.Name})
	if !strings.Contains(detail, "evicted pod "+ns+"/"+victim.Name+" of deployment "+ns+"/api; 2 of 2 pods ready") {
		t.Errorf("detail = %q", detail)
	}
	pods := podsOf(t, ns, "api")
	ready := 0
	for _, p := range pods {
		if p.UID == victim.UID {
			t.Errorf("evicted pod %s still there", p.Name)
		}
		if podReady(&p) {
			ready++
		}
	}
	if ready != 2 {
		t.Errorf("%d ready pods after the eviction, want 2", ready)
	}
}

// The eviction API enforces the PodDisruptionBudget: with every replica required, no pod may go.
func TestDeletePodRespectsDisruptionBudget(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	ctx := context.Background()
	deployment(t, ns, "api", optedIn())
	pdb, err := admin.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr(intstr.FromInt32(2)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the disruption controller to compute the budget, so the refusal below is the
	// budget's and not "not processed yet".
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := admin.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdb.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.ObservedGeneration >= p.Generation && p.Status.ExpectedPods == 2 && p.Status.CurrentHealthy == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("disruption controller did not process the budget: %+v", p.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := newActuator(t, ns)
	victim := podsOf(t, ns, "api")[0]
	_, err = run(t, a, config.KubernetesAction{Action: "delete-pod"}, map[string]string{"namespace": ns, "pod": victim.Name})
	if !action.IsRefusal(err) || !strings.Contains(err.Error(), "PodDisruptionBudget forbids it") {
		t.Fatalf("err = %v, want a refusal by the PodDisruptionBudget", err)
	}
	if _, err := admin.CoreV1().Pods(ns).Get(ctx, victim.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("pod %s after a refused eviction: %v", victim.Name, err)
	}

	// With one disruption allowed, the same eviction goes through.
	pdb, err = admin.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, pdb.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb.Spec.MinAvailable = ptr(intstr.FromInt32(1))
	if _, err := admin.PolicyV1().PodDisruptionBudgets(ns).Update(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		_, err = run(t, a, config.KubernetesAction{Action: "delete-pod"}, map[string]string{"namespace": ns, "pod": victim.Name})
		if err == nil || !action.IsRefusal(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("eviction with a disruption allowed: %v", err)
	}
}

func TestScaleWithinBounds(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "api", optedIn())
	a := newActuator(t, ns)
	labels := map[string]string{"namespace": ns, "deployment": "api"}

	detail := mustRun(t, a, config.KubernetesAction{Action: "scale", By: 1, Max: ptr(3)}, labels)
	if !strings.Contains(detail, "scaled deployment "+ns+"/api from 2 to 3; rollout complete: 3/3 updated, 3 available") {
		t.Errorf("detail = %q", detail)
	}
	// At its max, a step up is refused instead of pretending to help.
	if _, err := run(t, a, config.KubernetesAction{Action: "scale", By: 1, Max: ptr(3)}, labels); !action.IsRefusal(err) {
		t.Errorf("scale past max: err = %v, want a refusal", err)
	}
	// A value beyond the bound is clamped to it.
	mustRun(t, a, config.KubernetesAction{Action: "scale", Replicas: ptr(0), Min: ptr(1)}, labels)
	d := getDeployment(t, ns, "api")
	if *d.Spec.Replicas != 1 || d.Status.AvailableReplicas != 1 || d.Status.Replicas != 1 {
		t.Errorf("after scale to 0 with min 1: spec %d, status %+v", *d.Spec.Replicas, d.Status)
	}
}

func TestRollbackToPreviousRevision(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	ctx := context.Background()
	o := optedIn()
	o.image = "registry.invalid/app:1"
	deployment(t, ns, "api", o)
	a := newActuator(t, ns)
	labels := map[string]string{"namespace": ns, "deployment": "api"}
	if _, err := run(t, a, config.KubernetesAction{Action: "rollback"}, labels); !action.IsRefusal(err) {
		t.Errorf("rollback of a first revision: err = %v, want a refusal", err)
	}

	d := getDeployment(t, ns, "api")
	d.Spec.Template.Spec.Containers[0].Image = "registry.invalid/app:2-broken"
	d, err := admin.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ns, kindDeployment, "api", d.Generation)

	detail := mustRun(t, a, config.KubernetesAction{Action: "rollback"}, labels)
	if !strings.Contains(detail, "back from revision 2 to the template of revision 1") || !strings.Contains(detail, "rollout complete: 2/2 updated") {
		t.Errorf("detail = %q", detail)
	}
	d = getDeployment(t, ns, "api")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.invalid/app:1" {
		t.Errorf("image after rollback = %q, want registry.invalid/app:1", img)
	}
	if _, ok := d.Spec.Template.Labels[podTemplateHashLabel]; ok {
		t.Errorf("rolled-back template carries %s", podTemplateHashLabel)
	}
	if d.Annotations[revisionAnnotation] != "3" {
		t.Errorf("revision after rollback = %q, want 3", d.Annotations[revisionAnnotation])
	}
	for _, p := range podsOf(t, ns, "api") {
		if img := p.Spec.Containers[0].Image; img != "registry.invalid/app:1" {
			t.Errorf("pod %s runs %s after the rollback", p.Name, img)
		}
	}
}

func TestOptInAndProtection(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	other := namespace(t)
	deployment(t, ns, "plain", workloadOpts{replicas: 1})
	deployment(t, ns, "by-annotation", workloadOpts{replicas: 1, annotations: map[string]string{DefaultOptIn: "true"}})
	deployment(t, ns, "protected", workloadOpts{replicas: 1, labels: map[string]string{DefaultOptIn: "true"}, annotations: map[string]string{DefaultProtected: "true"}})
	deployment(t, ns, "pod-protected", workloadOpts{replicas: 1, labels: map[string]string{DefaultOptIn: "true"}, podLabels: map[string]string{DefaultProtected: "true"}})
	deployment(t, ns, "wrong-value", workloadOpts{replicas: 1, labels: map[string]string{DefaultOptIn: "yes"}})
	deployment(t, other, "elsewhere", optedIn())
	a := newActuator(t, ns)
	restart := config.KubernetesAction{Action: "rollout-restart"}

	for _, tc := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"namespace": ns, "deployment": "plain"}, "has not opted in: label or annotation remediator.enable=true is missing"},
		{map[string]string{"namespace": ns, "deployment": "wrong-value"}, `has not opted in: label or annotation remediator.enable="yes", want "true"`},
		{map[string]string{"namespace": ns, "deployment": "protected"}, `deployment ` + ns + `/protected carries remediator.protected="true"`},
		{map[string]string{"namespace": ns, "pod": podsOf(t, ns, "pod-protected")[0].Name}, `carries remediator.protected="true": refusing`},
		{map[string]string{"namespace": other, "deployment": "elsewhere"}, `namespace "` + other + `" is not one the remediator may act in`},
		{map[string]string{"deployment": "plain"}, "the alert has no namespace label"},
		{map[string]string{"namespace": ns, "deployment": "missing"}, "no deployment " + ns + "/missing"},
		{map[string]string{"namespace": ns, "job": "x"}, "the alert names no workload"},
	} {
		_, err := run(t, a, restart, tc.labels)
		if !action.IsRefusal(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("labels %v: err = %v, want a refusal containing %q", tc.labels, err, tc.want)
		}
	}
	if d := getDeployment(t, ns, "plain"); d.Spec.Template.Annotations[restartedAtAnnotation] != "" {
		t.Error("a refused restart changed the deployment")
	}
	// An opt-in by annotation counts as one by label.
	mustRun(t, a, restart, map[string]string{"namespace": ns, "deployment": "by-annotation"})
}

// Label values come from alerts: each is checked as a Kubernetes name before any API path is
// built from it.
func TestHostileLabelValues(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	a := newActuator(t, ns, "kube-system")
	for _, tc := range []struct{ key, value string }{
		{"namespace", "../kube-system"},
		{"namespace", "kube-system/pods"},
		{"namespace", "KUBE-SYSTEM"},
		{"namespace", strings.Repeat("a", 64)},
		{"deployment", "api/../../secrets"},
		{"deployment", "api?dryRun=All"},
		{"deployment", "api%2F..%2Fsecrets"},
		{"deployment", "api name"},
		{"deployment", strings.Repeat("a", 254)},
		{"statefulset", "db\n"},
		{"pod", "web-0#frag"},
		{"pod", "."},
		{"container", "app;rm -rf /"},
	} {
		labels := map[string]string{"namespace": ns, "deployment": "api"}
		labels[tc.key] = tc.value
		_, err := run(t, a, config.KubernetesAction{Action: "rollout-restart"}, labels)
		if !action.IsRefusal(err) || !strings.Contains(err.Error(), "is not a valid Kubernetes name") {
			t.Errorf("%s=%q: err = %v, want a refusal for an invalid name", tc.key, tc.value, err)
		}
	}
}

func TestEvidence(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	ctx := context.Background()
	deployment(t, ns, "api", optedIn())
	pod := podsOf(t, ns, "api")[0]
	pod.Status.ContainerStatuses[0].RestartCount = 7
	pod.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}
	if _, err := admin.CoreV1().Pods(ns).UpdateStatus(ctx, &pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	if _, err := admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: pod.Name + ".backoff"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID},
		Reason:         "BackOff", Message: "Back-off restarting failed container app", Type: corev1.EventTypeWarning,
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a := newActuator(t, ns)
	ev, err := a.Evidence(ctx, action.Request{
		Step:  &config.Step{Kubernetes: &config.KubernetesAction{Action: "delete-pod"}},
		Alert: template.Alert{Labels: template.KV{"namespace": ns, "pod": pod.Name, "container": "app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Object != "deployment "+ns+"/api, pod "+pod.Name {
		t.Errorf("object = %q", ev.Object)
	}
	for k, want := range map[string]string{
		"replicas": "2", "available": "2", "pod_phase": "Running",
		"container_app_restarts": "7", "container_app_last_exit": "OOMKilled, exit code 137",
	} {
		if ev.State[k] != want {
			t.Errorf("state[%s] = %q, want %q (state %v)", k, ev.State[k], want, ev.State)
		}
	}
	// The deployment controller's own events (ScalingReplicaSet) come along with the pod's.
	var backOff, scaling bool
	for _, e := range ev.Events {
		backOff = backOff || strings.Contains(e, "Warning pod/"+pod.Name+" BackOff: Back-off restarting failed container app")
		scaling = scaling || strings.Contains(e, "Normal deployment/api ScalingReplicaSet")
	}
	if !backOff || !scaling {
		t.Errorf("events = %q, want the pod's BackOff and the deployment's ScalingReplicaSet", ev.Events)
	}
	// Logs come from the node's kubelet; no pod is on a node here, and that is said instead.
	if ev.Log != "" || ev.State["log_error"] != "the pod is on no node: it has no logs yet" {
		t.Errorf("log = %q, log_error = %q; want no log and the reason", ev.Log, ev.State["log_error"])
	}
}
