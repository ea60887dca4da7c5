package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// NewClient builds a client of the engine at host (empty: DOCKER_HOST and the other DOCKER_*
// variables, else the local socket) and returns it with the address it uses. It does not
// contact the engine.
func NewClient(host string) (*client.Client, string, error) {
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, "", fmt.Errorf("docker client: %w", err)
	}
	addr := cli.DaemonHost()
	u, err := client.ParseHostURL(addr)
	if err != nil {
		return nil, "", fmt.Errorf("docker host %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix", "tcp", "http", "https", "npipe":
	default:
		// ssh:// works for the docker command (through a helper), not for this client.
		return nil, "", fmt.Errorf("docker host %q: unsupported scheme %q (want unix://, tcp://, http:// or https://)", addr, u.Scheme)
	}
	return cli, addr, nil
}

// EngineError explains the failures any call to the engine at host can meet (unreachable,
// timed out, cancelled, forbidden), with what was being done; nil for any other error. The
// client's own texts ("Cannot connect to the Docker daemon...", "context deadline exceeded")
// do not say which engine, which step, or what to check.
func EngineError(ctx context.Context, err error, host, what string, start time.Time) error {
	switch {
	case client.IsErrConnectionFailed(err) || isDialError(err):
		return fmt.Errorf("%s: docker engine unreachable at %s (is it running, is DOCKER_HOST right?): %w", what, host, err)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded:
		return fmt.Errorf("%s: timed out after %s: %w", what, time.Since(start).Round(100*time.Millisecond), err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: cancelled: %w", what, err)
	case cerrdefs.IsPermissionDenied(err):
		return fmt.Errorf("%s: forbidden by the engine or by the socket proxy at %s, which must allow this call: %w", what, host, err)
	}
	return nil
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
