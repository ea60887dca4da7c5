package docker

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

// Compose's labels on the containers it creates.
const (
	composeServiceLabel = "com.docker.compose.service"
	composeProjectLabel = "com.docker.compose.project"
)

// target is the one container an action is about, as inspected just before acting.
type target struct {
	id     string
	name   string // without the leading slash
	labels map[string]string
	info   container.InspectResponse
}

func (t *target) String() string { return fmt.Sprintf("container %s (%s)", t.name, ShortID(t.id)) }

var hexPattern = regexp.MustCompile(`^[0-9a-f]+$`)

// validName refuses what is not a container name (config.ValidContainerName, with the leading
// slash Docker's API writes): slashes, "..", query characters and spaces in a label never become
// part of an API path.
func validName(s string) error {
	if err := config.ValidContainerName(strings.TrimPrefix(s, "/")); err != nil {
		return action.Refuse(action.RefusedTarget, "%v", err)
	}
	return nil
}

// IsContainerID reports whether s is a container id as an alert may carry one: 12 to 64 hex
// digits.
func IsContainerID(s string) bool { return isHexID(s, 12) }

// IsExactRef reports whether the container the engine answered for ref (its name without the
// leading slash, and its id) is the one ref means: by its exact name, or by an id of 12 or more
// digits. The engine also takes any unambiguous id prefix for a name, so a short label value
// could otherwise hit an unrelated container.
func IsExactRef(ref, name, id string) bool {
	return name == ref || (isHexID(ref, 12) && strings.HasPrefix(id, ref))
}

func isHexID(s string, minLen int) bool {
	return len(s) >= minLen && len(s) <= 64 && hexPattern.MatchString(s)
}

// ShortID is an engine object id as the docker CLI shows it.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// resolve finds the container: the step's explicit container if any, else from the alert's
// labels: container (name or id), container_id, or a compose service (with its project) whose
// replica is chosen by instance.
func (a *Actuator) resolve(ctx context.Context, explicit string, labels map[string]string) (*target, error) {
	if explicit != "" {
		return a.byRef(ctx, explicit, "step container")
	}
	if v := labels["container"]; v != "" {
		return a.byRef(ctx, v, "alert label container")
	}
	if v := labels["container_id"]; v != "" {
		v = strings.ToLower(v)
		if !IsContainerID(v) {
			return nil, action.Refuse(action.RefusedTarget, "alert label container_id=%q is not a container id (12 to 64 hex digits)", v)
		}
		return a.byRef(ctx, v, "alert label container_id")
	}
	service, svcLabel := action.FirstLabel(labels, "compose_service", "service")
	if service == "" {
		return nil, action.Refuse(action.RefusedTarget, "the alert names no container: it has none of the labels container, container_id, compose_service, service")
	}
	project, projLabel := action.FirstLabel(labels, "compose_project", "project")
	return a.byCompose(ctx, service, svcLabel, project, projLabel, labels["instance"])
}

// byRef inspects a container by name or id. The engine also accepts any unambiguous id prefix
// for a name, so a short label value could hit an unrelated container; the answer must be the
// exact name or an id of at least 12 digits.
func (a *Actuator) byRef(ctx context.Context, ref, from string) (*target, error) {
	if err := validName(ref); err != nil {
		return nil, action.Refuse(action.RefusedTarget, "%s: %v", from, err)
	}
	ref = strings.TrimPrefix(ref, "/")
	t, err := a.inspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, action.Refuse(action.RefusedTarget, "%s: no container named %q", from, ref)
		}
		return nil, err
	}
	if !IsExactRef(ref, t.name, t.id) {
		return nil, action.Refuse(action.RefusedTarget, "%s: %q is neither the name of a container nor an id of 12+ digits (the engine matched %s)", from, ref, t)
	}
	return t, nil
}

func (a *Actuator) inspect(ctx context.Context, ref string) (*target, error) {
	res, err := a.cli.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	c := res.Container
	if c.Config == nil || c.State == nil || c.HostConfig == nil {
		return nil, fmt.Errorf("engine returned an incomplete inspect of %q", ref)
	}
	return &target{id: c.ID, name: strings.TrimPrefix(c.Name, "/"), labels: c.Config.Labels, info: c}, nil
}

// byCompose lists the replicas of a compose service and picks the one instance names.
func (a *Actuator) byCompose(ctx context.Context, service, svcLabel, project, projLabel, instance string) (*target, error) {
	if config.ValidContainerName(service) != nil {
		return nil, action.Refuse(action.RefusedTarget, "alert label %s=%q is not a valid compose service name", svcLabel, service)
	}
	f := client.Filters{}
	f.Add("label", composeServiceLabel+"="+service)
	what := fmt.Sprintf("compose service %q", service)
	if project != "" {
		if config.ValidContainerName(project) != nil {
			return nil, action.Refuse(action.RefusedTarget, "alert label %s=%q is not a valid compose project name", projLabel, project)
		}
		f.Add("label", composeProjectLabel+"="+project)
		what += fmt.Sprintf(" in project %q", project)
	}
	res, err := a.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	c, err := pickReplica(res.Items, instance, what)
	if err != nil {
		return nil, err
	}
	return a.inspect(ctx, c.ID)
}

// pickReplica chooses among a service's containers: the only one, or the one whose name (or
// address) is the host part of the instance label ("name:port", as Prometheus writes it).
func pickReplica(items []container.Summary, instance, what string) (container.Summary, error) {
	names := make([]string, 0, len(items))
	for _, c := range items {
		names = append(names, summaryName(c))
	}
	sort.Strings(names)
	if len(items) == 0 {
		return container.Summary{}, action.Refuse(action.RefusedTarget, "%s has no containers", what)
	}
	if instance == "" {
		if len(items) == 1 {
			return items[0], nil
		}
		return container.Summary{}, action.Refuse(action.RefusedTarget, "%s is ambiguous: %d replicas (%s) and the alert has no instance label to pick one", what, len(items), strings.Join(names, ", "))
	}
	host := instanceHost(instance)
	var found []container.Summary
	for _, c := range items {
		if replicaMatches(c, host) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return container.Summary{}, action.Refuse(action.RefusedTarget, "%s has no replica for instance %q (replicas: %s)", what, instance, strings.Join(names, ", "))
	}
	return container.Summary{}, action.Refuse(action.RefusedTarget, "%s: instance %q matches %d replicas", what, instance, len(found))
}

func instanceHost(instance string) string {
	if h, _, err := net.SplitHostPort(instance); err == nil {
		return h
	}
	return instance
}

func replicaMatches(c container.Summary, host string) bool {
	if host == "" {
		return false
	}
	for _, n := range c.Names {
		if strings.TrimPrefix(n, "/") == host {
			return true
		}
	}
	if isHexID(host, 12) && strings.HasPrefix(c.ID, host) {
		return true
	}
	if c.NetworkSettings != nil {
		for _, ep := range c.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() && ep.IPAddress.String() == host {
				return true
			}
		}
	}
	return false
}

func summaryName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return ShortID(c.ID)
}

// guard refuses what must never be touched: the remediator itself (acting on it would end the
// heal half-way), protected containers, and anything that did not opt in.
func (a *Actuator) guard(t *target) error {
	if a.self != "" && (strings.HasPrefix(t.id, a.self) || strings.HasPrefix(a.self, t.id)) {
		return action.Refuse(action.RefusedSelf, "%s is the remediator's own container: refusing to act on it", t)
	}
	if err := a.Unprotected(t, t.labels); err != nil {
		return err
	}
	v, ok := t.labels[a.OptInLabel]
	return a.OptedIn(t, "label", v, ok)
}
