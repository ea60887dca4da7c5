package kubernetes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/selfheal/selfheal/remediator/action"
)

// Evidence captures, before an action, the state of what the alert points to: the workload's
// replica counts, the pod's phase and containers (restarts, why the last one ended), the
// recent events about both, and the pod's last log lines where the API server can get them
// (it asks the node's kubelet). A part that cannot be read is noted in State, not fatal.
func (a *Actuator) Evidence(ctx context.Context, req action.Request) (*action.Evidence, error) {
	needPod := req.Step != nil && req.Step.Kubernetes != nil && req.Step.Kubernetes.Action == "delete-pod"
	t, err := a.resolve(ctx, req.Alert.Labels, needPod)
	if err != nil {
		return nil, err
	}
	ev := &action.Evidence{Captured: time.Now(), Object: t.String(), State: map[string]string{}}
	workloadState(t.workload, ev.State)
	objects := []metav1.Object{t.workload}
	if t.pod != nil {
		ev.Object += ", pod " + t.pod.Name
		podState(t.pod, ev.State)
		if t.kind != kindPod {
			objects = append(objects, t.pod)
		}
		ev.Log = a.podLog(ctx, t, ev.State)
	}
	ev.Events = a.events(ctx, t.namespace, objects, ev.State)
	return ev, nil
}

func workloadState(obj metav1.Object, st map[string]string) {
	i := func(n int32) string { return strconv.Itoa(int(n)) }
	switch w := obj.(type) {
	case *appsv1.Deployment:
		st["replicas"], st["updated"], st["available"] = i(replicasOf(w.Spec.Replicas)), i(w.Status.UpdatedReplicas), i(w.Status.AvailableReplicas)
		st["revision"] = w.Annotations[revisionAnnotation]
	case *appsv1.StatefulSet:
		st["replicas"], st["ready"], st["updated"] = i(replicasOf(w.Spec.Replicas)), i(w.Status.ReadyReplicas), i(w.Status.UpdatedReplicas)
	case *appsv1.DaemonSet:
		st["desired"], st["updated"], st["available"] = i(w.Status.DesiredNumberScheduled), i(w.Status.UpdatedNumberScheduled), i(w.Status.NumberAvailable)
	}
	if _, ok := obj.(*corev1.Pod); !ok {
		st["generation"] = strconv.FormatInt(obj.GetGeneration(), 10)
	}
}

func podState(p *corev1.Pod, st map[string]string) {
	st["pod_phase"] = string(p.Status.Phase)
	if p.Spec.NodeName != "" {
		st["node"] = p.Spec.NodeName
	}
	for _, c := range p.Status.ContainerStatuses {
		st["container_"+c.Name+"_restarts"] = strconv.Itoa(int(c.RestartCount))
		if w := c.State.Waiting; w != nil {
			st["container_"+c.Name+"_waiting"] = w.Reason
		}
		if term := c.LastTerminationState.Terminated; term != nil {
			st["container_"+c.Name+"_last_exit"] = fmt.Sprintf("%s, exit code %d", term.Reason, term.ExitCode)
		}
	}
}

// podLog reads the last lines of the named container, or of the pod's only or first one.
func (a *Actuator) podLog(ctx context.Context, t *target, st map[string]string) string {
	container := ""
	for _, c := range t.pod.Spec.Containers {
		if c.Name == t.container {
			container = c.Name
		}
	}
	if container == "" && len(t.pod.Spec.Containers) > 0 {
		container = t.pod.Spec.Containers[0].Name
	}
	if t.pod.Spec.NodeName == "" {
		// The API server answers an empty log for a pod on no node, which would read as
		// "the container printed nothing".
		st["log_error"] = "the pod is on no node: it has no logs yet"
		return ""
	}
	lines, limit := int64(action.MaxEvidenceLogLines), int64(action.MaxEvidenceLog)
	b, err := a.cs.CoreV1().Pods(t.namespace).GetLogs(t.pod.Name, &corev1.PodLogOptions{
		Container: container, TailLines: &lines, LimitBytes: &limit,
	}).DoRaw(ctx)
	if err != nil {
		st["log_error"] = oneLine(err.Error(), 200)
		return ""
	}
	return string(b)
}

// events lists the recent events about the given objects, oldest first, at most
// MaxEvidenceEvents.
func (a *Actuator) events(ctx context.Context, ns string, objects []metav1.Object, st map[string]string) []string {
	var all []corev1.Event
	for _, o := range objects {
		list, err := a.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(o.GetUID())).String(),
		})
		if err != nil {
			st["events_error"] = oneLine(err.Error(), 200)
			continue
		}
		all = append(all, list.Items...)
	}
	sort.SliceStable(all, func(i, j int) bool { return eventTime(all[i]).Before(eventTime(all[j])) })
	if len(all) > action.MaxEvidenceEvents {
		all = all[len(all)-action.MaxEvidenceEvents:]
	}
	out := make([]string, 0, len(all))
	for _, e := range all {
		out = append(out, fmt.Sprintf("%s %s %s/%s %s: %s", eventTime(e).UTC().Format(time.RFC3339), e.Type,
			strings.ToLower(e.InvolvedObject.Kind), e.InvolvedObject.Name, e.Reason, oneLine(e.Message, 300)))
	}
	return out
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// oneLine keeps a message from the cluster to one bounded line.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
