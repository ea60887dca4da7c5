package kubernetes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/selfheal/selfheal/internal/testutil"
)

// One control plane for the package: starting one costs seconds, and tests isolate themselves
// by namespace.
var (
	plane *testutil.KubeControlPlane
	admin k8s.Interface
	// adminConfig is a member of system:masters, for setting up what a test needs.
	adminConfig *rest.Config
)

// The remediator's identity, as deploy/kubernetes creates it.
const (
	remediatorNamespace      = "selfheal"
	remediatorServiceAccount = "remediator"
)

func TestMain(m *testing.M) {
	plane = testutil.StartKube()
	stopReady := func() {}
	if plane.AdminKubeconfig != "" {
		var err error
		adminConfig, err = clientcmd.BuildConfigFromFlags("", plane.AdminKubeconfig)
		if err == nil {
			admin, err = k8s.NewForConfig(adminConfig)
		}
		if err == nil {
			err = installRBAC(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "setting up the control plane:", err)
			plane.Stop()
			os.Exit(1)
		}
		stopReady = markPodsReady()
	}
	code := m.Run()
	stopReady()
	plane.Stop()
	os.Exit(code)
}

// requirePlane fails (in CI) or skips the test when no control plane runs.
func requirePlane(t *testing.T) {
	t.Helper()
	plane.Require(t)
}

// markPodsReady is the one stand-in for a kubelet these tests allow: no node runs the pods, so
// a loop marks each new pod Running and Ready through the status subresource, as a kubelet
// would once its containers pass their readiness probes. Everything else (rollouts, replica
// sets, PodDisruptionBudgets, evictions) is the real control plane's.
func markPodsReady() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pods, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range pods.Items {
					p := &pods.Items[i]
					if p.DeletionTimestamp != nil || podReady(p) || p.Annotations[holdNotReady] == "true" {
						continue
					}
					setRunningReady(p)
					_, _ = admin.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// holdNotReady on a pod keeps the loop from marking it ready (a pod that never becomes ready).
const holdNotReady = "test.selfheal/hold-not-ready"

func setRunningReady(p *corev1.Pod) {
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
}

func ptr[T any](v T) *T { return &v }

// shippedRBAC is deploy/kubernetes/rbac.yaml: its ClusterRole, and its RoleBinding, which tests
// copy into each namespace they let the remediator act in.
func shippedRBAC() (*rbacv1.ClusterRole, *rbacv1.RoleBinding, error) {
	f, err := os.Open(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	role, binding := &rbacv1.ClusterRole{}, &rbacv1.RoleBinding{}
	if err := dec.Decode(role); err != nil {
		return nil, nil, fmt.Errorf("rbac.yaml, ClusterRole: %w", err)
	}
	if err := dec.Decode(binding); err != nil {
		return nil, nil, fmt.Errorf("rbac.yaml, RoleBinding: %w", err)
	}
	if role.Kind != "ClusterRole" || binding.Kind != "RoleBinding" {
		return nil, nil, fmt.Errorf("rbac.yaml holds %s and %s, want a ClusterRole then a RoleBinding", role.Kind, binding.Kind)
	}
	return role, binding, nil
}

func installRBAC(ctx context.Context) error {
	role, _, err := shippedRBAC()
	if err != nil {
		return err
	}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	return err
}

// remediatorConfig acts as the remediator's service account, holding exactly the shipped RBAC.
func remediatorConfig() *rest.Config {
	cfg := rest.CopyConfig(adminConfig)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + remediatorNamespace + ":" + remediatorServiceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + remediatorNamespace, "system:authenticated"},
	}
	return cfg
}

var nsCount atomic.Int32

// namespace creates a namespace for one test with the shipped RoleBinding in it, and deletes it
// when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("t%d-%s", nsCount.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	_, binding, err := shippedRBAC()
	if err != nil {
		t.Fatal(err)
	}
	binding.Namespace = name
	if _, err := admin.RbacV1().RoleBindings(name).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

// newActuator acts in the given namespaces as the remediator's service account.
func newActuator(t *testing.T, namespaces ...string) *Actuator {
	t.Helper()
	a, err := New(Options{Config: remediatorConfig(), Namespaces: namespaces, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	a.poll = 50 * time.Millisecond
	return a
}

type workloadOpts struct {
	replicas    int32
	labels      map[string]string // on the workload
	annotations map[string]string // on the workload
	podLabels   map[string]string // extra labels on the pod template
	image       string
}

func optedIn() workloadOpts {
	return workloadOpts{replicas: 2, labels: map[string]string{DefaultOptIn: "true"}}
}

func podTemplate(name string, o workloadOpts) corev1.PodTemplateSpec {
	labels := map[string]string{"app": name}
	for k, v := range o.podLabels {
		labels[k] = v
	}
	image := o.image
	if image == "" {
		image = "registry.invalid/app:1"
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
			TerminationGracePeriodSeconds: ptr(int64(1)),
		},
	}
}

// deployment creates a Deployment and waits for its first rollout to complete.
func deployment(t *testing.T, ns, name string, o workloadOpts) *appsv1.Deployment {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: o.labels, Annotations: o.annotations},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(o.replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, o),
		},
	}
	d, err := admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitRolledOut(t, ns, kindDeployment, name, d.Generation)
	return d
}

func waitRolledOut(t *testing.T, ns, kind, name string, gen int64) {
	t.Helper()
	a := &Actuator{cs: admin, poll: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.waitRollout(ctx, &target{namespace: ns, kind: kind, name: name}, gen); err != nil {
		t.Fatalf("%s %s/%s: %v", kind, ns, name, err)
	}
}

// podsOf lists the pods of an app, without the ones being deleted.
func podsOf(t *testing.T, ns, app string) []corev1.Pod {
	t.Helper()
	list, err := admin.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}
