package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/selfheal/selfheal/remediator/action"
)

// Workload kinds, as owner references and messages name them.
const (
	kindDeployment  = "Deployment"
	kindStatefulSet = "StatefulSet"
	kindDaemonSet   = "DaemonSet"
	kindReplicaSet  = "ReplicaSet"
	kindPod         = "Pod"
)

// target is what an action is about: a workload (or a bare pod), and the pod the alert named,
// as read from the API just before acting.
type target struct {
	namespace string
	kind      string // kindDeployment, kindStatefulSet, kindDaemonSet, or kindPod for a bare pod
	name      string
	workload  metav1.Object // the workload's object; the pod itself for a bare pod
	pod       *corev1.Pod   // the pod the alert named, if any
	container string        // the container the alert named, if any
}

func (t *target) String() string {
	return fmt.Sprintf("%s %s/%s", strings.ToLower(t.kind), t.namespace, t.name)
}

// Labels naming a workload, in the order they are preferred. kube-state-metrics series such as
// kube_deployment_status_replicas carry the workload's own label; pod series carry pod.
var workloadLabels = []struct{ label, kind string }{
	{"deployment", kindDeployment},
	{"statefulset", kindStatefulSet},
	{"daemonset", kindDaemonSet},
}

// checkName refuses a value that is not a valid Kubernetes name before it becomes part of an
// API path: namespaces and containers are DNS-1123 labels, the objects DNS-1123 subdomains.
func checkName(what, v string, label bool) error {
	var problems []string
	if label {
		problems = validation.IsDNS1123Label(v)
	} else {
		problems = validation.IsDNS1123Subdomain(v)
	}
	if len(problems) > 0 {
		return action.Refuse(action.RefusedTarget, "%s %q is not a valid Kubernetes name: %s", what, v, strings.Join(problems, "; "))
	}
	return nil
}

// resolve finds what the alert is about. Every label value is untrusted: each is checked as a
// Kubernetes name, and the namespace against the allowed ones, before the API is asked.
func (a *Actuator) resolve(ctx context.Context, labels map[string]string, needPod bool) (*target, error) {
	ns := labels["namespace"]
	if ns == "" {
		return nil, action.Refuse(action.RefusedTarget, "the alert has no namespace label: cannot tell where to act")
	}
	if err := checkName("alert label namespace", ns, true); err != nil {
		return nil, err
	}
	if !a.namespaces[ns] {
		return nil, action.Refuse(action.RefusedTarget, "namespace %q is not one the remediator may act in (allowed: %s)", ns, a.allowed())
	}
	t := &target{namespace: ns}
	if c := labels["container"]; c != "" {
		if err := checkName("alert label container", c, true); err != nil {
			return nil, err
		}
		t.container = c
	}
	podName := labels["pod"]
	if podName != "" {
		if err := checkName("alert label pod", podName, false); err != nil {
			return nil, err
		}
	}
	if needPod || podName != "" && !hasWorkloadLabel(labels) {
		if podName == "" {
			return nil, action.Refuse(action.RefusedTarget, "the alert names no pod (label pod)")
		}
		pod, err := a.cs.CoreV1().Pods(ns).Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, action.Refuse(action.RefusedTarget, "alert label pod: no pod %s/%s", ns, podName)
			}
			return nil, err
		}
		t.pod = pod
		return t, a.owner(ctx, t)
	}
	for _, w := range workloadLabels {
		if name := labels[w.label]; name != "" {
			if err := checkName("alert label "+w.label, name, false); err != nil {
				return nil, err
			}
		}
	}
	for _, w := range workloadLabels {
		name := labels[w.label]
		if name == "" {
			continue
		}
		t.kind, t.name = w.kind, name
		obj, err := a.getWorkload(ctx, ns, w.kind, name)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, action.Refuse(action.RefusedTarget, "alert label %s: no %s %s/%s", w.label, strings.ToLower(w.kind), ns, name)
			}
			return nil, err
		}
		t.workload = obj
		return t, nil
	}
	return nil, action.Refuse(action.RefusedTarget, "the alert names no workload: it has none of the labels deployment, statefulset, daemonset, pod")
}

func hasWorkloadLabel(labels map[string]string) bool {
	for _, w := range workloadLabels {
		if labels[w.label] != "" {
			return true
		}
	}
	return false
}

// owner follows the pod's controller references to the workload that manages it: a ReplicaSet
// to its Deployment, a StatefulSet or DaemonSet as it is. A pod without a controller is its own
// workload.
func (a *Actuator) owner(ctx context.Context, t *target) error {
	ref := metav1.GetControllerOf(t.pod)
	if ref == nil {
		t.kind, t.name, t.workload = kindPod, t.pod.Name, t.pod
		return nil
	}
	kind, name := ref.Kind, ref.Name
	if kind == kindReplicaSet {
		rs, err := a.cs.AppsV1().ReplicaSets(t.namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("owner of pod %s/%s: %w", t.namespace, t.pod.Name, err)
		}
		up := metav1.GetControllerOf(rs)
		if up == nil || up.Kind != kindDeployment {
			return action.Refuse(action.RefusedTarget, "pod %s/%s belongs to replicaset %s, which no Deployment manages: not supported", t.namespace, t.pod.Name, name)
		}
		kind, name = up.Kind, up.Name
	}
	switch kind {
	case kindDeployment, kindStatefulSet, kindDaemonSet:
	default:
		return action.Refuse(action.RefusedTarget, "pod %s/%s is managed by a %s (%s): not supported", t.namespace, t.pod.Name, kind, name)
	}
	obj, err := a.getWorkload(ctx, t.namespace, kind, name)
	if err != nil {
		return fmt.Errorf("owner of pod %s/%s: %w", t.namespace, t.pod.Name, err)
	}
	t.kind, t.name, t.workload = kind, name, obj
	return nil
}

func (a *Actuator) allowed() string {
	ns := make([]string, 0, len(a.namespaces))
	for n := range a.namespaces {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return strings.Join(ns, ", ")
}

// guard refuses what did not opt in and what is protected. Opt-in is the workload's (for a
// bare pod, the pod's) to give; protection on the workload or on the pod wins over it.
func (a *Actuator) guard(t *target) error {
	objs := []metav1.Object{t.workload}
	if t.pod != nil && t.kind != kindPod {
		objs = append(objs, t.pod)
	}
	for _, o := range objs {
		if v, ok := marker(o, a.ProtectedLabel); ok && v != "false" {
			return action.Refuse(action.RefusedProtected, "%s %s/%s carries %s=%q: refusing to act on it", kindOf(o, t), o.GetNamespace(), o.GetName(), a.ProtectedLabel, v)
		}
	}
	v, ok := marker(t.workload, a.OptInLabel)
	return a.OptedIn(t, "label or annotation", v, ok)
}

func kindOf(o metav1.Object, t *target) string {
	if t.pod != nil && o.GetUID() == t.pod.UID {
		return "pod"
	}
	return strings.ToLower(t.kind)
}

// marker reads a label, else an annotation, of that name.
func marker(o metav1.Object, key string) (string, bool) {
	if v, ok := o.GetLabels()[key]; ok {
		return v, true
	}
	v, ok := o.GetAnnotations()[key]
	return v, ok
}
