package kubernetes

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/selfheal/selfheal/internal/testutil"
	"github.com/selfheal/selfheal/remediator/config"
)

var deployDir = filepath.Join("..", "..", "deploy", "kubernetes")

// deployObjects reads every manifest of deploy/kubernetes, in file order.
func deployObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", deployDir, err)
	}
	// The namespace first: everything else lives in it.
	for i, f := range files {
		if filepath.Base(f) == "namespace.yaml" {
			files[0], files[i] = files[i], files[0]
		}
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(r, 4096)
		for {
			u := &unstructured.Unstructured{}
			err := dec.Decode(&u.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
		_ = r.Close()
	}
	return objs
}

// The shipped manifests apply to a real API server: each one first as a server-side dry run
// (admission and validation, nothing stored), then for real, so that the next can refer to it.
func TestDeployManifestsApply(t *testing.T) {
	requirePlane(t)
	ctx := context.Background()
	// The application namespace the example RoleBinding grants the remediator.
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(adminConfig)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(adminConfig)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	kinds := map[string]bool{}
	for _, u := range deployObjects(t) {
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: %v", gvk.Kind, u.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
		}
		for _, dryRun := range [][]string{{metav1.DryRunAll}, nil} {
			if _, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "selfheal-test", Force: true, DryRun: dryRun}); err != nil {
				t.Fatalf("apply %s %s/%s (dry run %v): %v", gvk.Kind, u.GetNamespace(), u.GetName(), dryRun != nil, err)
			}
		}
		kinds[gvk.Kind] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "RoleBinding", "ConfigMap", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("deploy/kubernetes has no %s", k)
		}
	}

	// The example playbooks are valid playbooks.
	cm, err := admin.CoreV1().ConfigMaps("selfheal").Get(ctx, "remediator-playbooks", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse([]byte(cm.Data["playbooks.yml"]), "configmap.yaml"); err != nil {
		t.Errorf("playbooks of configmap.yaml: %v", err)
	}
	// The example receiver is a valid Alertmanager configuration.
	amtool := testutil.LookPath(t, "amtool")
	out, err := exec.Command(amtool, "check-config", filepath.Join(deployDir, "alertmanager-receiver.yml")).CombinedOutput()
	if err != nil {
		t.Errorf("amtool check-config alertmanager-receiver.yml: %v\n%s", err, out)
	}
}

// The remediator's identity can do what the actuator needs (the other tests run under it) and
// nothing else: deleting, creating or replacing objects, reading secrets, and anything in a
// namespace without the RoleBinding are refused by the API server.
func TestRBACRefusesWhatIsNotGranted(t *testing.T) {
	requirePlane(t)
	ns := namespace(t)
	deployment(t, ns, "api", optedIn())
	ctx := context.Background()
	cs, err := k8s.NewForConfig(remediatorConfig())
	if err != nil {
		t.Fatal(err)
	}
	pod := podsOf(t, ns, "api")[0].Name
	d := getDeployment(t, ns, "api")
	d.ResourceVersion = ""
	d.Name = "api-copy"
	for _, tc := range []struct {
		what string
		call func() error
	}{
		{"delete a pod (evictions only)", func() error { return cs.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{}) }},
		{"delete a deployment", func() error { return cs.AppsV1().Deployments(ns).Delete(ctx, "api", metav1.DeleteOptions{}) }},
		{"create a deployment", func() error { _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); return err }},
		{"list deployments", func() error { _, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"read secrets", func() error { _, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"exec into a pod", func() error {
			return cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").Do(ctx).Error()
		}},
		{"read a pod in a namespace without the binding", func() error {
			_, err := cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
			return err
		}},
		{"list nodes", func() error { _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err }},
	} {
		if err := tc.call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: err = %v, want Forbidden", tc.what, err)
		}
	}
	// What is granted is not refused.
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Errorf("get deployment: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list pods: %v", err)
	}
	if err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).Do(ctx).Error(); err != nil {
		t.Errorf("read a pod's log: %v", err)
	}
	if _, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list events: %v", err)
	}
	// The actuator turns a refusal into a message that says where to look.
	a := newActuator(t, ns, "kube-system")
	_, err = run(t, a, config.KubernetesAction{Action: "rollout-restart"}, map[string]string{"namespace": "kube-system", "deployment": "coredns"})
	if err == nil || !strings.Contains(err.Error(), "forbidden for the remediator's identity") {
		t.Errorf("action without RBAC: err = %v", err)
	}
}
