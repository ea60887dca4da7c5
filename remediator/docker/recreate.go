package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

// rollbackTimeout bounds the undo of a failed recreate. It runs on its own clock: the usual
// reason to roll back is that the action's deadline ran out.
const rollbackTimeout = 60 * time.Second

// recreate replaces the container with a fresh one from the same image and configuration.
// The old one is renamed, not removed, until the new one is up (and healthy when it has a
// healthcheck); if the new one fails, it is removed and the old one is given back its name and
// started again.
func (a *Actuator) recreate(ctx context.Context, t *target, da *config.DockerAction) (string, error) {
	if t.info.HostConfig.AutoRemove {
		return "", action.Refuse(action.RefusedAction, "%s was started with --rm (AutoRemove): stopping it would delete it, so a recreate could not be rolled back", t)
	}
	timeout, err := stopTimeout(ctx, da)
	if err != nil {
		return "", err
	}
	spec := cloneSpec(t.info)
	wasRunning := t.info.State.Running
	oldName := fmt.Sprintf("%s-old-%s", t.name, ShortID(t.id))

	if _, err := a.cli.ContainerRename(ctx, t.id, client.ContainerRenameOptions{NewName: oldName}); err != nil {
		return "", fmt.Errorf("rename the old container to %s: %w", oldName, err)
	}
	rb := &rollback{a: a, t: t, oldName: oldName, wasRunning: wasRunning, timeout: timeout}

	created, err := a.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:             t.name,
		Config:           spec.config,
		HostConfig:       spec.host,
		NetworkingConfig: spec.networking,
	})
	if err != nil {
		return "", rb.undo(ctx, fmt.Errorf("create the new container: %w", err))
	}
	rb.newID = created.ID
	for name, ep := range spec.extraNetworks {
		if _, err := a.cli.NetworkConnect(ctx, name, client.NetworkConnectOptions{Container: created.ID, EndpointConfig: ep}); err != nil {
			return "", rb.undo(ctx, fmt.Errorf("connect the new container to network %s: %w", name, err))
		}
	}
	if wasRunning {
		// Published host ports and static addresses are only free once the old one stops.
		if _, err := a.cli.ContainerStop(ctx, t.id, client.ContainerStopOptions{Timeout: timeout}); err != nil {
			return "", rb.undo(ctx, fmt.Errorf("stop the old container: %w", err))
		}
		rb.stopped = true
	}
	if _, err := a.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return "", rb.undo(ctx, fmt.Errorf("start the new container %s: %w", ShortID(created.ID), err))
	}
	state, err := a.waitUp(ctx, created.ID, "", true)
	if err != nil {
		return "", rb.undo(ctx, fmt.Errorf("new container %s: %w", ShortID(created.ID), err))
	}
	detail := fmt.Sprintf("recreated %s as %s; %s", t, ShortID(created.ID), state)
	// Volumes stay: the new container uses them.
	if _, err := a.cli.ContainerRemove(ctx, t.id, client.ContainerRemoveOptions{}); err != nil {
		detail += fmt.Sprintf("; the old container is left as %s: removing it failed: %v", oldName, err)
		a.Logger.Warn("recreate: old container not removed", "container", oldName, "err", err)
	} else {
		detail += "; old container removed"
	}
	return detail, nil
}

// rollback undoes a recreate step by step, as far as it got.
type rollback struct {
	a          *Actuator
	t          *target
	oldName    string
	newID      string
	wasRunning bool
	stopped    bool
	timeout    *int
}

func (r *rollback) undo(ctx context.Context, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	r.a.Logger.Warn("recreate failed, rolling back", "container", r.t.name, "err", cause)
	var errs []error
	if r.newID != "" {
		if _, err := r.a.cli.ContainerRemove(ctx, r.newID, client.ContainerRemoveOptions{Force: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove the new container %s: %w", ShortID(r.newID), err))
		}
	}
	if len(errs) == 0 {
		if _, err := r.a.cli.ContainerRename(ctx, r.t.id, client.ContainerRenameOptions{NewName: r.t.name}); err != nil {
			errs = append(errs, fmt.Errorf("rename %s back to %s: %w", r.oldName, r.t.name, err))
		}
	}
	if r.wasRunning {
		info, err := r.a.cli.ContainerInspect(ctx, r.t.id, client.ContainerInspectOptions{})
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("inspect the old container: %w", err))
		case !info.Container.State.Running:
			if _, err := r.a.cli.ContainerStart(ctx, r.t.id, client.ContainerStartOptions{}); err != nil {
				errs = append(errs, fmt.Errorf("start the old container: %w", err))
			} else if _, err := r.a.waitUp(ctx, r.t.id, "", false); err != nil {
				// Running is what it was before; healthy is not ours to promise: it may
				// have been unhealthy, which may be why it was recreated.
				errs = append(errs, fmt.Errorf("old container after restart: %w", err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w; ROLLBACK FAILED: %w (the old container may be left as %s, stopped)", cause, errors.Join(errs...), r.oldName)
	}
	r.a.Logger.Info("recreate rolled back", "container", r.t.name, "id", ShortID(r.t.id))
	return fmt.Errorf("%w; rolled back: the old container %s runs again under its name", cause, ShortID(r.t.id))
}

// containerSpec is what ContainerCreate needs to make a twin of an existing container.
type containerSpec struct {
	config        *container.Config
	host          *container.HostConfig
	networking    *network.NetworkingConfig
	extraNetworks map[string]*network.EndpointSettings
}

// cloneSpec derives the create request from an inspect: the same configuration (name,
// labels, env, command, healthcheck, ports, mounts, limits, restart policy, networks), minus
// what the engine filled in for the old container only.
func cloneSpec(info container.InspectResponse) containerSpec {
	cfg := *info.Config
	cfg.Labels = maps.Clone(info.Config.Labels)
	cfg.Env = slices.Clone(info.Config.Env)
	// The exact image the old one ran, not whatever its tag points to now: a heal is no deploy.
	cfg.Image = info.Image
	hc := *info.HostConfig
	mode := hc.NetworkMode
	if cfg.Hostname == ShortID(info.ID) || mode.IsHost() || mode.IsContainer() {
		// The default hostname is the old id; host and container network modes forbid one.
		cfg.Hostname = ""
	}
	hc.Links = fixLinks(hc.Links)
	hc.PortBindings = pinPorts(hc.PortBindings, info.NetworkSettings)
	hc.Mounts, cfg.Volumes = keepAnonymousVolumes(hc, cfg.Volumes, info.Mounts)

	spec := containerSpec{config: &cfg, host: &hc}
	if info.NetworkSettings == nil || mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return spec
	}
	primary := string(mode)
	if mode.IsDefault() || primary == "" {
		primary = "bridge"
	}
	// Before API 1.44 a create takes one network; the others are connected before start.
	for name, ep := range info.NetworkSettings.Networks {
		es := endpointTwin(ep, info.ID)
		if name == primary {
			spec.networking = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: es}}
			continue
		}
		if spec.extraNetworks == nil {
			spec.extraNetworks = map[string]*network.EndpointSettings{}
		}
		spec.extraNetworks[name] = es
	}
	return spec
}

// endpointTwin keeps what a person configured on a network attachment (aliases, static
// addresses, links, driver options) and drops what the engine assigned.
func endpointTwin(ep *network.EndpointSettings, oldID string) *network.EndpointSettings {
	if ep == nil {
		return &network.EndpointSettings{}
	}
	var aliases []string
	for _, al := range ep.Aliases {
		// The engine adds the short id as an alias on user networks.
		if al != ShortID(oldID) && al != oldID {
			aliases = append(aliases, al)
		}
	}
	return &network.EndpointSettings{
		IPAMConfig: ep.IPAMConfig.Copy(),
		Links:      slices.Clone(ep.Links),
		Aliases:    aliases,
		DriverOpts: maps.Clone(ep.DriverOpts),
	}
}

// fixLinks turns inspect's "/db:/web/db" back into the "db:db" form a create accepts.
func fixLinks(links []string) []string {
	out := make([]string, 0, len(links))
	for _, l := range links {
		src, alias, ok := strings.Cut(l, ":")
		if !ok {
			out = append(out, strings.TrimPrefix(l, "/"))
			continue
		}
		out = append(out, strings.TrimPrefix(src, "/")+":"+alias[strings.LastIndex(alias, "/")+1:])
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// pinPorts replaces "any free host port" bindings by the port the old container actually got,
// so that whoever reaches the service through it still does after the recreate.
func pinPorts(bindings network.PortMap, ns *container.NetworkSettings) network.PortMap {
	if len(bindings) == 0 {
		return bindings
	}
	out := make(network.PortMap, len(bindings))
	for port, bs := range bindings {
		var actual []network.PortBinding
		if ns != nil {
			actual = slices.Clone(ns.Ports[port])
		}
		pinned := make([]network.PortBinding, 0, len(bs))
		for _, b := range bs {
			if b.HostPort == "" || b.HostPort == "0" {
				for i, got := range actual {
					if got.HostPort != "" && (!b.HostIP.IsValid() || b.HostIP.IsUnspecified() || got.HostIP == b.HostIP) {
						b.HostPort = got.HostPort
						actual = slices.Delete(actual, i, i+1)
						break
					}
				}
			}
			pinned = append(pinned, b)
		}
		out[port] = pinned
	}
	return out
}

// keepAnonymousVolumes mounts the old container's unnamed volumes (an image VOLUME, `-v /data`)
// into the new one; otherwise the engine would create empty ones and the data would be
// stranded. Named volumes and binds are in the host config already.
func keepAnonymousVolumes(hc container.HostConfig, volumes map[string]struct{}, mounts []container.MountPoint) ([]mount.Mount, map[string]struct{}) {
	declared := map[string]bool{}
	for _, b := range hc.Binds {
		if parts := strings.Split(b, ":"); len(parts) >= 2 {
			declared[parts[1]] = true
		}
	}
	for _, m := range hc.Mounts {
		declared[m.Target] = true
	}
	out := slices.Clone(hc.Mounts)
	vols := maps.Clone(volumes)
	for _, mp := range mounts {
		if mp.Type != mount.TypeVolume || mp.Name == "" || declared[mp.Destination] {
			continue
		}
		out = append(out, mount.Mount{Type: mount.TypeVolume, Source: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW})
		delete(vols, mp.Destination)
	}
	return out, vols
}
