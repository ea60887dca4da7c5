package kubernetes

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/selfheal/selfheal/remediator/action"
)

// getWorkload reads a Deployment, StatefulSet or DaemonSet.
func (a *Actuator) getWorkload(ctx context.Context, ns, kind, name string) (metav1.Object, error) {
	apps := a.cs.AppsV1()
	switch kind {
	case kindDeployment:
		return apps.Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	case kindStatefulSet:
		return apps.StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	case kindDaemonSet:
		return apps.DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	}
	return nil, action.Refuse(action.RefusedAction, "%s is not a workload kind this actuator handles", kind)
}

// patchWorkload applies a patch to the target's workload and returns the generation it made,
// the one a rollout must be observed at.
func (a *Actuator) patchWorkload(ctx context.Context, t *target, pt types.PatchType, data []byte) (int64, error) {
	apps := a.cs.AppsV1()
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	var obj metav1.Object
	var err error
	switch t.kind {
	case kindDeployment:
		obj, err = apps.Deployments(t.namespace).Patch(ctx, t.name, pt, data, opts)
	case kindStatefulSet:
		obj, err = apps.StatefulSets(t.namespace).Patch(ctx, t.name, pt, data, opts)
	case kindDaemonSet:
		obj, err = apps.DaemonSets(t.namespace).Patch(ctx, t.name, pt, data, opts)
	default:
		return 0, action.Refuse(action.RefusedAction, "%s is not a Deployment, StatefulSet or DaemonSet", t)
	}
	if err != nil {
		return 0, err
	}
	t.workload = obj
	return obj.GetGeneration(), nil
}

// rolloutStatus says whether the workload's controller has rolled out generation gen to every
// replica, with kubectl rollout status' rules, and in words what it is waiting for.
func rolloutStatus(obj metav1.Object, gen int64) (done bool, status string, err error) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		st, want := w.Status, replicasOf(w.Spec.Replicas)
		if st.ObservedGeneration < gen {
			return false, "waiting for the deployment controller to see the change", nil
		}
		for _, c := range st.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
				return false, "", fmt.Errorf("rollout exceeded its progress deadline: %s", c.Message)
			}
		}
		status = fmt.Sprintf("%d/%d updated, %d available, %d total", st.UpdatedReplicas, want, st.AvailableReplicas, st.Replicas)
		return st.UpdatedReplicas >= want && st.Replicas == st.UpdatedReplicas && st.AvailableReplicas >= st.UpdatedReplicas, status, nil
	case *appsv1.StatefulSet:
		st, want := w.Status, replicasOf(w.Spec.Replicas)
		if st.ObservedGeneration < gen {
			return false, "waiting for the statefulset controller to see the change", nil
		}
		status = fmt.Sprintf("%d/%d ready, %d updated, revision %s (want %s)", st.ReadyReplicas, want, st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
		if w.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return st.ReadyReplicas >= want && st.Replicas == want, status, nil
		}
		return st.ReadyReplicas >= want && st.Replicas == want && st.UpdatedReplicas >= want && st.CurrentRevision == st.UpdateRevision, status, nil
	case *appsv1.DaemonSet:
		st := w.Status
		if st.ObservedGeneration < gen {
			return false, "waiting for the daemonset controller to see the change", nil
		}
		status = fmt.Sprintf("%d/%d updated, %d available", st.UpdatedNumberScheduled, st.DesiredNumberScheduled, st.NumberAvailable)
		return st.UpdatedNumberScheduled >= st.DesiredNumberScheduled && st.NumberAvailable >= st.DesiredNumberScheduled, status, nil
	case *corev1.Pod:
		return true, string(w.Status.Phase), nil
	}
	return false, "", fmt.Errorf("no rollout status for %T", obj)
}

func replicasOf(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// waitRollout polls the workload until its rollout of generation gen is complete, fails, or
// ctx ends; a timeout reports the last status seen.
func (a *Actuator) waitRollout(ctx context.Context, t *target, gen int64) (string, error) {
	last := "no status read yet"
	for {
		obj, err := a.getWorkload(ctx, t.namespace, t.kind, t.name)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("rollout not complete (%s): %w", last, ctx.Err())
			}
			return "", err
		}
		t.workload = obj
		done, status, err := rolloutStatus(obj, gen)
		if err != nil {
			return "", err
		}
		last = status
		if done {
			return "rollout complete: " + status, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("rollout not complete (%s): %w", last, ctx.Err())
		case <-time.After(a.poll):
		}
	}
}
