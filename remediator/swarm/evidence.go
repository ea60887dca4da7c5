package swarm

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/docker"
)

// Evidence captures what a person looks at after a heal: the service's spec version and update
// status, its tasks' states and errors, and the last log lines of the task that failed last
// (or, if none did, the newest). It resolves and guards the target as Run does, so nothing is
// read of a service the actuator would not act on.
func (a *Actuator) Evidence(ctx context.Context, req action.Request) (*action.Evidence, error) {
	if req.Step == nil || req.Step.Swarm == nil {
		return nil, fmt.Errorf("not a swarm step")
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := time.Now()
	s, err := a.target(ctx, req)
	if err != nil {
		return nil, a.engineError(ctx, err, "resolve target", start)
	}
	obs, err := a.observe(ctx, s.id)
	if err != nil {
		return nil, a.engineError(ctx, err, "evidence of "+s.String(), start)
	}
	ev := &action.Evidence{Captured: time.Now().UTC(), Object: s.String(), State: serviceState(obs)}
	for i := min(len(obs.tasks), action.MaxEvidenceEvents) - 1; i >= 0; i-- {
		ev.Events = append(ev.Events, taskEvent(obs.svc.Spec.Name, obs.tasks[i]))
	}
	if t, ok := failingTask(obs.tasks); ok {
		ev.State["log_task"] = taskLabel(obs.svc.Spec.Name, t) + " (" + t.ID + ")"
		log, err := a.taskLog(ctx, t.ID)
		if err != nil {
			ev.State["log_error"] = err.Error()
		}
		ev.Log = log
	}
	return ev, nil
}

func serviceState(o observation) map[string]string {
	st := map[string]string{
		"spec_version":  strconv.FormatUint(o.svc.Version.Index, 10),
		"tasks_running": fmt.Sprintf("%d/%d", o.running, o.desired),
		"previous_spec": strconv.FormatBool(o.svc.PreviousSpec != nil),
	}
	switch m := o.svc.Spec.Mode; {
	case m.Replicated != nil && m.Replicated.Replicas != nil:
		st["mode"] = fmt.Sprintf("replicated %d", *m.Replicated.Replicas)
	case m.Global != nil:
		st["mode"] = "global"
	default:
		st["mode"] = "job"
	}
	if c := o.svc.Spec.TaskTemplate.ContainerSpec; c != nil {
		st["image"] = c.Image
	}
	if us := o.svc.UpdateStatus; us != nil {
		st["update_state"] = string(us.State)
		st["update_message"] = us.Message
		if us.StartedAt != nil {
			st["update_started"] = us.StartedAt.UTC().Format(time.RFC3339)
		}
		if us.CompletedAt != nil {
			st["update_completed"] = us.CompletedAt.UTC().Format(time.RFC3339)
		}
	}
	if o.lastErr != "" {
		st["last_task_error"] = o.lastErr
	}
	return st
}

func taskEvent(service string, t swarm.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s task %s (%s): %s, desired %s", t.Status.Timestamp.UTC().Format(time.RFC3339), taskLabel(service, t), docker.ShortID(t.ID), t.Status.State, t.DesiredState)
	if t.Status.Message != "" {
		fmt.Fprintf(&b, ": %s", t.Status.Message)
	}
	if t.Status.Err != "" {
		fmt.Fprintf(&b, ": error: %s", t.Status.Err)
	}
	if cs := t.Status.ContainerStatus; cs != nil && t.Status.State != swarm.TaskStateRunning && cs.ExitCode != 0 {
		fmt.Fprintf(&b, " (exit code %d)", cs.ExitCode)
	}
	return b.String()
}

// failingTask picks the task whose log tells most: the newest that failed or was rejected,
// else the newest that should run and does not, else the newest.
func failingTask(tasks []swarm.Task) (swarm.Task, bool) {
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected || t.Status.Err != "" {
			return t, true
		}
	}
	for _, t := range tasks {
		if t.DesiredState == swarm.TaskStateRunning && t.Status.State != swarm.TaskStateRunning {
			return t, true
		}
	}
	if len(tasks) > 0 {
		return tasks[0], true
	}
	return swarm.Task{}, false
}

// taskLog returns the last lines of a task's output, stdout and stderr interleaved, bounded as
// docker.LogTail bounds them.
func (a *Actuator) taskLog(ctx context.Context, taskID string) (string, error) {
	rc, err := a.cli.TaskLogs(ctx, taskID, client.TaskLogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(action.MaxEvidenceLogLines),
	})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return docker.LogTail(rc, false)
}
