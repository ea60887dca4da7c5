package swarm

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/docker"
)

// The labels Swarm puts on the containers of its tasks.
const (
	serviceIDLabel   = "com.docker.swarm.service.id"
	serviceNameLabel = "com.docker.swarm.service.name"
)

// Alert labels that name a service, a task or a task's container, in the order they are
// tried. The container_label_* forms are how cAdvisor exports the Swarm labels above.
var (
	serviceLabels   = []string{"swarm_service", "service_name", "container_label_com_docker_swarm_service_name", "service"}
	taskLabels      = []string{"swarm_task", "task_name", "container_label_com_docker_swarm_task_name"}
	containerLabels = []string{"container", "container_name", "name"}
)

var (
	// Swarm's object ids are 25 lowercase letters and digits.
	objectID = regexp.MustCompile(`^[a-z0-9]{25}$`)
	// A task's name, and its container's: <service>.<slot or node id>.<task id>.
	taskName = regexp.MustCompile(`^([a-zA-Z0-9][a-zA-Z0-9_-]{0,62})\.([0-9]{1,9}|[a-z0-9]{25})\.([a-z0-9]{25})$`)
)

// service is the one service an action is about, as inspected just before acting.
type service struct {
	id, name string
	labels   map[string]string
	svc      swarm.Service
}

func (s *service) String() string {
	return fmt.Sprintf("service %s (%s)", s.name, docker.ShortID(s.id))
}

// resolve finds the service: the step's explicit one if any, else from the alert's labels: a
// service name, a task name, or the name or id of a task's container. Every value is checked
// against what Swarm and Docker allow before it becomes part of an API path.
func (a *Actuator) resolve(ctx context.Context, explicit string, labels map[string]string) (*service, error) {
	if explicit != "" {
		return a.byName(ctx, explicit, "step service")
	}
	if v, l := action.FirstLabel(labels, serviceLabels...); v != "" {
		return a.byName(ctx, v, "alert label "+l)
	}
	if v, l := action.FirstLabel(labels, taskLabels...); v != "" {
		return a.byTask(ctx, v, "alert label "+l)
	}
	if v, l := action.FirstLabel(labels, containerLabels...); v != "" {
		v = strings.TrimPrefix(v, "/")
		if taskName.MatchString(v) {
			return a.byTask(ctx, v, "alert label "+l)
		}
		if err := config.ValidContainerName(v); err != nil {
			return nil, action.Refuse(action.RefusedTarget, "alert label %s: %v", l, err)
		}
		return a.byContainer(ctx, v, "alert label "+l)
	}
	if v := strings.ToLower(labels["container_id"]); v != "" {
		if !docker.IsContainerID(v) {
			return nil, action.Refuse(action.RefusedTarget, "alert label container_id=%q is not a container id (12 to 64 hex digits)", v)
		}
		return a.byContainer(ctx, v, "alert label container_id")
	}
	return nil, action.Refuse(action.RefusedTarget, "the alert names no Swarm service: it has none of the labels %s, %s, %s, container_id",
		strings.Join(serviceLabels, ", "), strings.Join(taskLabels, ", "), strings.Join(containerLabels, ", "))
}

// byName inspects a service by its name (or full id). The engine also accepts an id prefix,
// so a short value could hit an unrelated service: the answer must match exactly.
func (a *Actuator) byName(ctx context.Context, ref, from string) (*service, error) {
	if err := config.ValidSwarmServiceName(ref); err != nil {
		return nil, action.Refuse(action.RefusedTarget, "%s: %v", from, err)
	}
	s, err := a.inspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, action.Refuse(action.RefusedTarget, "%s: no service named %q", from, ref)
		}
		return nil, err
	}
	if s.name != ref && s.id != ref {
		return nil, action.Refuse(action.RefusedTarget, "%s: %q is neither the name nor the id of a service (the engine matched %s)", from, ref, s)
	}
	return s, nil
}

// byTask finds the service of a task named <service>.<slot>.<task id>, and refuses a name whose
// parts disagree (a service's name with another service's task).
func (a *Actuator) byTask(ctx context.Context, name, from string) (*service, error) {
	m := taskName.FindStringSubmatch(name)
	if m == nil {
		return nil, action.Refuse(action.RefusedTarget, "%s: %q is not a task name (<service>.<slot>.<task id>)", from, name)
	}
	res, err := a.cli.TaskInspect(ctx, m[3], client.TaskInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, action.Refuse(action.RefusedTarget, "%s: no task %s", from, m[3])
		}
		return nil, err
	}
	if res.Task.ID != m[3] || !objectID.MatchString(res.Task.ServiceID) {
		return nil, action.Refuse(action.RefusedTarget, "%s: the engine answered task %q for %q", from, res.Task.ID, m[3])
	}
	s, err := a.inspect(ctx, res.Task.ServiceID)
	if err != nil {
		return nil, err
	}
	if s.name != m[1] {
		return nil, action.Refuse(action.RefusedTarget, "%s: task %s belongs to %s, not to service %q", from, m[3], s, m[1])
	}
	return s, nil
}

// byContainer reads the Swarm labels of a container on the engine the actuator talks to; a
// container that is no task has none.
func (a *Actuator) byContainer(ctx context.Context, ref, from string) (*service, error) {
	res, err := a.cli.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, action.Refuse(action.RefusedTarget, "%s: no container %q on the engine at %s", from, ref, a.host)
		}
		return nil, err
	}
	c := res.Container
	if c.Config == nil || !docker.IsExactRef(ref, strings.TrimPrefix(c.Name, "/"), c.ID) {
		return nil, action.Refuse(action.RefusedTarget, "%s: %q is neither the name of a container nor an id of 12+ digits", from, ref)
	}
	id, name := c.Config.Labels[serviceIDLabel], c.Config.Labels[serviceNameLabel]
	if id == "" {
		return nil, action.Refuse(action.RefusedTarget, "%s: container %q is not a Swarm task (it has no %s label)", from, ref, serviceIDLabel)
	}
	if !objectID.MatchString(id) {
		return nil, action.Refuse(action.RefusedTarget, "%s: container %q has %s=%q, which is not a service id", from, ref, serviceIDLabel, id)
	}
	s, err := a.inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.id != id || (name != "" && s.name != name) {
		return nil, action.Refuse(action.RefusedTarget, "%s: container %q names service %q (%s), the engine has %s", from, ref, name, id, s)
	}
	return s, nil
}

func (a *Actuator) inspect(ctx context.Context, ref string) (*service, error) {
	res, err := a.cli.ServiceInspect(ctx, ref, client.ServiceInspectOptions{})
	if err != nil {
		return nil, err
	}
	svc := res.Service
	return &service{id: svc.ID, name: svc.Spec.Name, labels: svc.Spec.Labels, svc: svc}, nil
}

// guard refuses what must never be touched: the remediator's own service (acting on it would
// end the heal half-way), protected services, and anything that did not opt in. The labels
// read are the service's own, which only whoever deploys the service can set.
func (a *Actuator) guard(ctx context.Context, s *service) error {
	self, err := a.self(ctx)
	if err != nil {
		return err
	}
	if self != "" && (s.id == self || s.name == self) {
		return action.Refuse(action.RefusedSelf, "%s is the remediator's own service: refusing to act on it", s)
	}
	if err := a.Unprotected(s, s.labels); err != nil {
		return err
	}
	v, ok := s.labels[a.OptInLabel]
	return a.OptedIn(s, "service label", v, ok)
}

// self returns the remediator's own service (name or id), looking it up once from the
// container it runs in. Until that answer is known no service is acted on: a remediator that
// cannot tell which service is its own must not risk restarting itself.
func (a *Actuator) self(ctx context.Context) (string, error) {
	a.selfMu.Lock()
	defer a.selfMu.Unlock()
	if a.selfKnown {
		return a.selfService, nil
	}
	res, err := a.cli.ContainerInspect(ctx, a.selfContainer, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		// The engine is another host's (a remote manager): this container is none of its tasks.
		a.Logger.Info("own container is not on the swarm engine; no service is the remediator's own", "container_id", docker.ShortID(a.selfContainer))
	case err != nil:
		return "", fmt.Errorf("looking up the remediator's own container %s: %w", docker.ShortID(a.selfContainer), err)
	case res.Container.Config != nil:
		a.selfService = res.Container.Config.Labels[serviceIDLabel]
		if a.selfService != "" {
			a.Logger.Info("running as a Swarm task, its service will never be acted on", "service_id", a.selfService)
		}
	}
	a.selfKnown = true
	return a.selfService, nil
}
