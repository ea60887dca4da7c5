package config

import (
	"strings"

	"github.com/prometheus/common/model"
)

// KubernetesAction acts on a workload or pod of a Kubernetes cluster. What it acts on comes from
// the alert's labels (namespace, pod, deployment, statefulset, daemonset), as kube-state-metrics
// and the kube-prometheus rules write them; a pod is resolved to the workload that owns it.
type KubernetesAction struct {
	// Action is one of KubernetesActions.
	Action string `yaml:"action"`
	// Replicas is the count scale sets; By is the step it adds (negative: removes) instead.
	Replicas *int `yaml:"replicas"`
	By       int  `yaml:"by"`
	// Min and Max bound what scale may set, whatever the alert or the current count says.
	Min *int `yaml:"min"`
	Max *int `yaml:"max"`
	// GracePeriod is what delete-pod gives the pod to stop; unset: the pod's own.
	GracePeriod *model.Duration `yaml:"grace_period"`
}

// KubernetesActions are the operations a kubernetes step may ask for, and what each one does.
var KubernetesActions = map[string]string{
	"rollout-restart": "replace every pod of a Deployment, StatefulSet or DaemonSet, as `kubectl rollout restart` does",
	"delete-pod":      "evict one pod, so that a PodDisruptionBudget is respected, and let its owner replace it",
	"scale":           "set a Deployment's or StatefulSet's replicas, to a value or by a step, within min and max",
	"rollback":        "return a Deployment to its previous ReplicaSet's pod template",
}

func kubernetesActionNames() string {
	return "rollout-restart, delete-pod, scale, rollback"
}

func (v *validator) kubernetesStep(st *Step, add addFunc, at func(...string) int) {
	k := st.Kubernetes
	if k == nil {
		add(at("kubernetes"), "e.g. kubernetes: {action: rollout-restart}", "kubernetes action needs an action")
		return
	}
	k.Action = strings.ToLower(strings.TrimSpace(k.Action))
	if _, ok := KubernetesActions[k.Action]; !ok {
		add(at("kubernetes.action", "kubernetes"), "use one of "+kubernetesActionNames(), "kubernetes.action %q is not supported", k.Action)
		return
	}
	if k.Action != "scale" {
		for _, f := range []struct {
			key string
			set bool
		}{{"replicas", k.Replicas != nil}, {"by", k.By != 0}, {"min", k.Min != nil}, {"max", k.Max != nil}} {
			if f.set {
				add(at("kubernetes."+f.key), "remove it, or use action: scale", "kubernetes.%s is only used by action scale, not %q", f.key, k.Action)
			}
		}
	}
	if k.GracePeriod != nil && k.Action != "delete-pod" {
		add(at("kubernetes.grace_period"), "remove it, or use action: delete-pod", "kubernetes.grace_period is only used by action delete-pod, not %q", k.Action)
	} else if k.GracePeriod != nil && st.Timeout > 0 && *k.GracePeriod >= st.Timeout {
		add(at("kubernetes.grace_period", "timeout"), "raise the step's timeout or lower grace_period", "kubernetes.grace_period (%s) leaves no time within the step's timeout (%s)", *k.GracePeriod, st.Timeout)
	}
	if k.Action == "scale" {
		v.kubernetesScale(k, add, at)
	}
}

// kubernetesScale checks that a scale step says where to go and stays within bounds a person
// wrote down: a step that adds replicas needs a max, one that removes them a min.
func (v *validator) kubernetesScale(k *KubernetesAction, add addFunc, at func(...string) int) {
	switch {
	case k.Replicas == nil && k.By == 0:
		add(at("kubernetes"), "e.g. kubernetes: {action: scale, by: 1, max: 5}", "kubernetes scale needs replicas or a non-zero by")
	case k.Replicas != nil && k.By != 0:
		add(at("kubernetes.by"), "keep one of them", "kubernetes.replicas and kubernetes.by exclude each other")
	case k.Replicas != nil && *k.Replicas < 0:
		add(at("kubernetes.replicas"), "e.g. replicas: 3", "kubernetes.replicas must not be negative, got %d", *k.Replicas)
	case k.By > 0 && k.Max == nil:
		add(at("kubernetes.by"), "add max: the most replicas this playbook may ever set", "kubernetes scale by %d needs a max", k.By)
	case k.By < 0 && k.Min == nil:
		add(at("kubernetes.by"), "add min: the fewest replicas this playbook may ever leave", "kubernetes scale by %d needs a min", k.By)
	}
	if k.Min != nil && *k.Min < 0 {
		add(at("kubernetes.min"), "e.g. min: 1", "kubernetes.min must not be negative, got %d", *k.Min)
	}
	if k.Min != nil && k.Max != nil && *k.Min > *k.Max {
		add(at("kubernetes.max", "kubernetes.min"), "raise max or lower min", "kubernetes.min (%d) is greater than kubernetes.max (%d)", *k.Min, *k.Max)
	}
	if r := k.Replicas; r != nil && *r >= 0 && ((k.Min != nil && *r < *k.Min) || (k.Max != nil && *r > *k.Max)) {
		add(at("kubernetes.replicas"), "set replicas between min and max", "kubernetes.replicas (%d) is outside min and max", *r)
	}
}
