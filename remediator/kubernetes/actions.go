package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/selfheal/selfheal/remediator/action"
)

// Annotations the API and kubectl use.
const (
	// restartedAtAnnotation is what `kubectl rollout restart` sets on the pod template: any
	// change of the template makes the controller replace every pod.
	restartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// revisionAnnotation numbers a Deployment's ReplicaSets, newest highest.
	revisionAnnotation = "deployment.kubernetes.io/revision"
	// podTemplateHashLabel is added by the deployment controller to each ReplicaSet's
	// template; a template copied back to the Deployment must not carry it.
	podTemplateHashLabel = "pod-template-hash"
)

func (a *Actuator) rolloutRestart(ctx context.Context, t *target, _ action.Request) (string, error) {
	if t.kind == kindPod {
		return "", action.Refuse(action.RefusedAction, "%s has no controller to restart it: use delete-pod", t)
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{restartedAtAnnotation: time.Now().Format(time.RFC3339)}},
	}}})
	if err != nil {
		return "", err
	}
	gen, err := a.patchWorkload(ctx, t, types.StrategicMergePatchType, patch)
	if err != nil {
		return "", err
	}
	st, err := a.waitRollout(ctx, t, gen)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("restarted %s; %s", t, st), nil
}

// scale sets the replicas of a Deployment or StatefulSet to the step's value, or moves them by
// its step, never past min and max. The change is conditional on the count it was computed
// from, so two heals cannot both add a step to the same old count.
func (a *Actuator) scale(ctx context.Context, t *target, req action.Request) (string, error) {
	k := req.Step.Kubernetes
	var current *int32
	switch w := t.workload.(type) {
	case *appsv1.Deployment:
		current = w.Spec.Replicas
	case *appsv1.StatefulSet:
		current = w.Spec.Replicas
	default:
		return "", action.Refuse(action.RefusedAction, "%s cannot be scaled: only a Deployment or StatefulSet can", t)
	}
	cur := int(replicasOf(current))
	want := cur + k.By
	if k.Replicas != nil {
		want = *k.Replicas
	}
	if k.Min != nil && want < *k.Min {
		want = *k.Min
	}
	if k.Max != nil && want > *k.Max {
		want = *k.Max
	}
	if want < 0 {
		want = 0
	}
	if want == cur {
		return "", action.Refuse(action.RefusedAction, "%s already has %d replicas: this step would leave it so (min %s, max %s)", t, cur, bound(k.Min), bound(k.Max))
	}
	ops := []map[string]any{
		{"op": "test", "path": "/spec/replicas", "value": cur},
		{"op": "replace", "path": "/spec/replicas", "value": want},
	}
	st, err := a.patchAndWait(ctx, t, ops, fmt.Sprintf("replicas changed while scaling (read %d)", cur))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("scaled %s from %d to %d; %s", t, cur, want, st), nil
}

func bound(p *int) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(*p)
}

// rollback returns a Deployment to the pod template of its previous revision, as `kubectl
// rollout undo` does. The change is conditional on the Deployment not having moved since it
// was read.
func (a *Actuator) rollback(ctx context.Context, t *target, _ action.Request) (string, error) {
	d, ok := t.workload.(*appsv1.Deployment)
	if !ok {
		return "", action.Refuse(action.RefusedAction, "%s cannot be rolled back: only a Deployment can", t)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("selector of %s: %w", t, err)
	}
	list, err := a.cs.AppsV1().ReplicaSets(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", err
	}
	current, err := strconv.ParseInt(d.Annotations[revisionAnnotation], 10, 64)
	if err != nil {
		return "", fmt.Errorf("%s has no revision yet (annotation %s=%q): its controller has not rolled it out", t, revisionAnnotation, d.Annotations[revisionAnnotation])
	}
	type revision struct {
		n  int64
		rs *appsv1.ReplicaSet
	}
	var older []revision
	for i := range list.Items {
		rs := &list.Items[i]
		if ref := metav1.GetControllerOf(rs); ref == nil || ref.UID != d.UID {
			continue
		}
		n, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
		if err == nil && n < current {
			older = append(older, revision{n, rs})
		}
	}
	if len(older) == 0 {
		return "", action.Refuse(action.RefusedAction, "%s has no revision before %d to roll back to", t, current)
	}
	sort.Slice(older, func(i, j int) bool { return older[i].n > older[j].n })
	prev := older[0]
	tmpl := prev.rs.Spec.Template.DeepCopy()
	delete(tmpl.Labels, podTemplateHashLabel)
	st, err := a.patchAndWait(ctx, t, []map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": d.ResourceVersion},
		{"op": "replace", "path": "/spec/template", "value": tmpl},
	}, t.String()+" changed while rolling back")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("rolled %s back from revision %d to the template of revision %d (replicaset %s); %s", t, current, prev.n, prev.rs.Name, st), nil
}

// patchAndWait applies a JSON patch whose first operation tests what the change was computed
// from, then waits for the rollout it starts. A failed test means someone else moved first.
func (a *Actuator) patchAndWait(ctx context.Context, t *target, ops []map[string]any, changed string) (string, error) {
	patch, err := json.Marshal(ops)
	if err != nil {
		return "", err
	}
	gen, err := a.patchWorkload(ctx, t, types.JSONPatchType, patch)
	if err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsConflict(err) {
			return "", fmt.Errorf("%s, nothing done: %w", changed, err)
		}
		return "", err
	}
	return a.waitRollout(ctx, t, gen)
}

// deletePod evicts the pod through the eviction API, so the API server refuses when a
// PodDisruptionBudget would be broken, then waits for the pod to be gone and, when a workload
// owns it, for the workload to be whole again.
func (a *Actuator) deletePod(ctx context.Context, t *target, req action.Request) (string, error) {
	pod := t.pod
	ev := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}},
	}
	if g := req.Step.Kubernetes.GracePeriod; g != nil {
		s := int64(time.Duration(*g) / time.Second)
		ev.DeleteOptions.GracePeriodSeconds = &s
	}
	if err := a.cs.PolicyV1().Evictions(pod.Namespace).Evict(ctx, ev); err != nil {
		if apierrors.IsTooManyRequests(err) {
			return "", action.Refuse(action.RefusedAction, "eviction of pod %s/%s refused, a PodDisruptionBudget forbids it now: %v", pod.Namespace, pod.Name, err)
		}
		if apierrors.IsNotFound(err) {
			return "", action.Refuse(action.RefusedAction, "pod %s/%s is already gone", pod.Namespace, pod.Name)
		}
		return "", err
	}
	if err := a.waitPodGone(ctx, pod); err != nil {
		return "", err
	}
	if t.kind == kindPod {
		return fmt.Sprintf("evicted bare pod %s/%s; no controller replaces it", pod.Namespace, pod.Name), nil
	}
	st, err := a.waitReplaced(ctx, t, pod.UID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("evicted pod %s/%s of %s; %s", pod.Namespace, pod.Name, t, st), nil
}

func (a *Actuator) waitPodGone(ctx context.Context, pod *corev1.Pod) error {
	for {
		p, err := a.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || err == nil && p.UID != pod.UID {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s/%s still there after eviction: %w", pod.Namespace, pod.Name, ctx.Err())
		case <-time.After(a.poll):
		}
	}
}

// waitReplaced waits until the workload's rollout is complete and as many of its pods are
// ready as it wants, none of them the evicted one: the workload's status alone can lag behind
// the eviction and still count the old pod.
func (a *Actuator) waitReplaced(ctx context.Context, t *target, gone types.UID) (string, error) {
	sel, want, err := podSelector(t.workload)
	if err != nil {
		return "", err
	}
	last := "no pods listed yet"
	for {
		pods, err := a.cs.CoreV1().Pods(t.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil && ctx.Err() == nil {
			return "", err
		}
		if err == nil {
			ready := 0
			for i := range pods.Items {
				p := &pods.Items[i]
				if p.UID != gone && p.DeletionTimestamp == nil && podReady(p) {
					ready++
				}
			}
			last = fmt.Sprintf("%d of %d pods ready", ready, want)
			if want < 0 || ready >= int(want) {
				st, err := a.waitRollout(ctx, t, t.workload.GetGeneration())
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s; %s", last, st), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no replacement ready (%s): %w", last, ctx.Err())
		case <-time.After(a.poll):
		}
	}
}

// podSelector is the workload's pod selector and how many pods it wants (-1: the controller
// decides, as for a DaemonSet).
func podSelector(obj metav1.Object) (string, int32, error) {
	var ls *metav1.LabelSelector
	want := int32(-1)
	switch w := obj.(type) {
	case *appsv1.Deployment:
		ls, want = w.Spec.Selector, replicasOf(w.Spec.Replicas)
	case *appsv1.StatefulSet:
		ls, want = w.Spec.Selector, replicasOf(w.Spec.Replicas)
	case *appsv1.DaemonSet:
		ls = w.Spec.Selector
	default:
		return "", 0, fmt.Errorf("no pod selector for %T", obj)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return "", 0, err
	}
	return sel.String(), want, nil
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
