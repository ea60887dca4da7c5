package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/docker"
)

// forceUpdate replaces every task of the service with a new one from the same spec, as
// `docker service update --force` does: the spec's ForceUpdate counter changes, nothing else, so
// Swarm rolls the tasks with the service's own update policy (parallelism, delay, order).
func (a *Actuator) forceUpdate(ctx context.Context, s *service, _ *config.SwarmAction) (string, error) {
	if err := longRunning(s); err != nil {
		return "", err
	}
	if r := s.svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil && *r.Replicas == 0 {
		return "", action.Refuse(action.RefusedAction, "%s has 0 replicas: there is no task to restart", s)
	}
	spec := s.svc.Spec
	spec.TaskTemplate.ForceUpdate++
	if err := a.update(ctx, s, spec, ""); err != nil {
		return "", err
	}
	st, err := a.converge(ctx, s, swarm.UpdateStateCompleted)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("force-updated %s; %s", s, st), nil
}

// scale sets the replicas of a replicated service: to the step's number, or by its step within
// min and max. A scale that would change nothing is refused rather than reported as a heal.
func (a *Actuator) scale(ctx context.Context, s *service, sa *config.SwarmAction) (string, error) {
	if err := longRunning(s); err != nil {
		return "", err
	}
	r := s.svc.Spec.Mode.Replicated
	if r == nil || r.Replicas == nil {
		return "", action.Refuse(action.RefusedAction, "%s is a global service: it runs one task per node and cannot be scaled", s)
	}
	cur := int64(*r.Replicas)
	want, bounds, err := scaleTarget(cur, sa)
	if err != nil {
		return "", action.Refuse(action.RefusedAction, "%s: %v", s, err)
	}
	if want == cur {
		return "", action.Refuse(action.RefusedAction, "%s already has %d replicas%s: nothing to scale", s, cur, bounds)
	}
	n := uint64(want)
	spec := s.svc.Spec
	spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &n}
	if err := a.update(ctx, s, spec, ""); err != nil {
		return "", err
	}
	st, err := a.converge(ctx, s, "")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("scaled %s from %d to %d replicas%s; %s", s, cur, want, bounds, st), nil
}

// scaleTarget computes the replicas a scale step asks for, clamped to its bounds, and says
// which bounds applied.
func scaleTarget(cur int64, sa *config.SwarmAction) (int64, string, error) {
	var want int64
	switch {
	case sa.Replicas != nil:
		want = int64(*sa.Replicas)
	case sa.By != nil:
		want = cur + int64(*sa.By)
	default:
		return 0, "", fmt.Errorf("scale needs replicas or by")
	}
	lo, hi := int64(0), int64(-1)
	if sa.Min != nil {
		lo = int64(*sa.Min)
	}
	if sa.Max != nil {
		hi = int64(*sa.Max)
	}
	bounds := ""
	if sa.Min != nil || sa.Max != nil {
		bounds = fmt.Sprintf(" (bounds %d..", lo)
		if hi >= 0 {
			bounds += fmt.Sprint(hi)
		}
		bounds += ")"
	}
	if hi >= 0 && lo > hi {
		return 0, bounds, fmt.Errorf("min %d is above max %d", lo, hi)
	}
	if want < lo {
		want = lo
	}
	if hi >= 0 && want > hi {
		want = hi
	}
	return want, bounds, nil
}

// rollback returns the service to the spec it had before its last update, as `docker service
// rollback` does: Swarm keeps that spec and rolls the tasks back with the rollback policy.
func (a *Actuator) rollback(ctx context.Context, s *service, _ *config.SwarmAction) (string, error) {
	if err := longRunning(s); err != nil {
		return "", err
	}
	if s.svc.PreviousSpec == nil {
		return "", action.Refuse(action.RefusedAction, "%s has no previous spec to roll back to (it was never updated)", s)
	}
	if sameButRestartAndScale(*s.svc.PreviousSpec, s.svc.Spec) {
		return "", action.Refuse(action.RefusedAction, "%s: its previous spec differs from the current one only by a force-update or scale; Swarm keeps a single previous spec, so the deploy before can no longer be rolled back this way", s)
	}
	if err := a.update(ctx, s, s.svc.Spec, "previous"); err != nil {
		return "", err
	}
	st, err := a.converge(ctx, s, swarm.UpdateStateRollbackCompleted)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("rolled back %s to its previous spec; %s", s, st), nil
}

// sameButRestartAndScale reports whether two specs differ at most in what force-update and scale
// change. Rolling back across such an update would only undo it, not the deploy before it.
func sameButRestartAndScale(a, b swarm.ServiceSpec) bool {
	a.TaskTemplate.ForceUpdate, b.TaskTemplate.ForceUpdate = 0, 0
	a.Mode, b.Mode = swarm.ServiceMode{}, swarm.ServiceMode{}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func longRunning(s *service) error {
	m := s.svc.Spec.Mode
	if m.ReplicatedJob != nil || m.GlobalJob != nil {
		return action.Refuse(action.RefusedAction, "%s is a job: swarm steps act on long-running services only", s)
	}
	return nil
}

// update writes spec at the version that was inspected, so a change made by someone else in the
// meantime makes the engine refuse ("update out of sequence") instead of being overwritten.
// The registry is never asked: the image reference stays exactly as deployed. No credentials
// are sent: the engine keeps those stored with the spec, the previous one's for a rollback.
func (a *Actuator) update(ctx context.Context, s *service, spec swarm.ServiceSpec, rollback string) error {
	from := swarm.RegistryAuthFromSpec
	if rollback != "" {
		from = swarm.RegistryAuthFromPreviousSpec
	}
	res, err := a.cli.ServiceUpdate(ctx, s.id, client.ServiceUpdateOptions{
		Version: s.svc.Version, Spec: spec, Rollback: rollback, RegistryAuthFrom: from,
	})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		a.Logger.Warn("swarm service update warning", "service", s.name, "warning", w)
	}
	return nil
}

// converge waits until Swarm reports the change done: the update (or rollback) that began after
// ours reached want, if want is set, and the service runs its desired number of tasks, all on
// its current spec, with no task of an older spec still running. A paused update, or one Swarm
// rolled back by itself, fails at once with Swarm's own message.
func (a *Actuator) converge(ctx context.Context, s *service, want swarm.UpdateState) (string, error) {
	before := s.svc.UpdateStatus
	var last observation
	for {
		obs, err := a.observe(ctx, s.id)
		if err != nil {
			if ctx.Err() != nil && last.svc.ID != "" {
				return "", fmt.Errorf("not done: %s: %w", last, ctx.Err())
			}
			return "", err
		}
		last = obs
		us := obs.svc.UpdateStatus
		updated := want == "" || (us != nil && !sameStatus(us, before) && us.State == want)
		if us != nil && !sameStatus(us, before) {
			switch us.State {
			case swarm.UpdateStatePaused, swarm.UpdateStateRollbackPaused:
				return "", fmt.Errorf("swarm paused the update: %s", obs)
			case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackCompleted:
				if want == swarm.UpdateStateCompleted {
					return "", fmt.Errorf("swarm rolled the update back: %s", obs)
				}
			}
		}
		if updated && obs.converged() {
			return obs.String(), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("not done: %s: %w", last, ctx.Err())
		case <-time.After(a.poll):
		}
	}
}

func sameStatus(a, b *swarm.UpdateStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.State == b.State && timeEqual(a.StartedAt, b.StartedAt)
}

func timeEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// observation is one look at a service and its tasks.
type observation struct {
	svc   swarm.Service
	tasks []swarm.Task
	// desired is the number of tasks the service should run; running counts those running on
	// the current spec, stale those running on another or told to stop.
	desired, running, stale int
	lastErr                 string
}

func (a *Actuator) observe(ctx context.Context, id string) (observation, error) {
	res, err := a.cli.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return observation{}, err
	}
	tasks, err := a.tasks(ctx, id)
	if err != nil {
		return observation{}, err
	}
	o := observation{svc: res.Service, tasks: tasks}
	for _, t := range tasks {
		if t.DesiredState == swarm.TaskStateRunning && o.svc.Spec.Mode.Global != nil {
			o.desired++
		}
		if t.Status.State == swarm.TaskStateRunning {
			if t.DesiredState == swarm.TaskStateRunning && onSpec(t, o.svc) {
				o.running++
			} else {
				o.stale++
			}
		}
		if o.lastErr == "" && t.Status.Err != "" {
			o.lastErr = fmt.Sprintf("task %s: %s", taskLabel(o.svc.Spec.Name, t), t.Status.Err)
		}
	}
	if r := o.svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
		o.desired = int(*r.Replicas)
	}
	return o, nil
}

func (o observation) converged() bool { return o.running == o.desired && o.stale == 0 }

func (o observation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d tasks running on the current spec", o.running, o.desired)
	if o.stale > 0 {
		fmt.Fprintf(&b, ", %d on an older one or stopping", o.stale)
	}
	if us := o.svc.UpdateStatus; us != nil {
		fmt.Fprintf(&b, ", update %s", us.State)
		if us.Message != "" && us.Message != "update "+string(us.State) {
			fmt.Fprintf(&b, " (%s)", us.Message)
		}
	}
	if o.lastErr != "" && !o.converged() {
		fmt.Fprintf(&b, "; last task error: %s", o.lastErr)
	}
	return b.String()
}

// tasks lists a service's tasks, newest first.
func (a *Actuator) tasks(ctx context.Context, serviceID string) ([]swarm.Task, error) {
	f := client.Filters{}
	f.Add("service", serviceID)
	res, err := a.cli.TaskList(ctx, client.TaskListOptions{Filters: f})
	if err != nil {
		return nil, err
	}
	// The filter matches service names and id prefixes too; keep only this service's tasks.
	tasks := res.Items[:0]
	for _, t := range res.Items {
		if t.ServiceID == serviceID {
			tasks = append(tasks, t)
		}
	}
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Status.Timestamp.After(tasks[j].Status.Timestamp) })
	return tasks, nil
}

// onSpec reports whether a task was made from the service's current spec: Swarm copies the
// spec's task template into each task it creates, all but Runtime, which the API derives for
// the service alone. Compared in JSON, so that an empty list and none are the same.
func onSpec(t swarm.Task, svc swarm.Service) bool {
	ts, ss := t.Spec, svc.Spec.TaskTemplate
	ts.Runtime, ss.Runtime = "", ""
	a, err1 := json.Marshal(ts)
	b, err2 := json.Marshal(ss)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// taskLabel names a task as `docker service ps` does: <service>.<slot>, or <service>.<node>
// for a global service.
func taskLabel(service string, t swarm.Task) string {
	if t.Slot > 0 {
		return fmt.Sprintf("%s.%d", service, t.Slot)
	}
	return service + "." + docker.ShortID(t.NodeID)
}
