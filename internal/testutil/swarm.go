package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gwBridge is the bridge network `docker swarm init` creates and `docker swarm leave` keeps.
const gwBridge = "docker_gwbridge"

// The test process's use of Swarm on the engine: whether this process made the engine a
// manager (and so must leave again), and the lock that keeps two test processes on this machine
// from initialising and leaving the same engine's swarm under each other's feet.
var swarm struct {
	sync.Mutex
	started     bool
	err         error
	lock        *os.File
	initialized bool
	hadGWBridge bool
}

// RequireSwarm makes the test engine a single-node Swarm manager (`docker swarm init
// --advertise-addr 127.0.0.1`) unless it is one already; without an engine it fails in CI and
// skips elsewhere. A package that calls it must call ReleaseSwarm from TestMain, after m.Run.
func RequireSwarm(t testing.TB) {
	t.Helper()
	RequireDocker(t)
	swarm.Lock()
	defer swarm.Unlock()
	if !swarm.started {
		swarm.started = true
		swarm.err = joinSwarm()
	}
	if swarm.err != nil {
		t.Fatalf("making the test engine a Swarm manager: %v", swarm.err)
	}
}

func joinSwarm() error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "selfheal-swarm-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	// Blocks while another test process on this machine uses the swarm.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	swarm.lock = lock
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, err := DockerCLI(ctx, "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
	if err != nil {
		return err
	}
	switch state {
	case "active true":
		return nil
	case "inactive false":
	default:
		return fmt.Errorf("the engine's swarm state is %q; the tests need an inactive engine or a manager", state)
	}
	if out, err := DockerCLI(ctx, "network", "ls", "--quiet", "--filter", "name=^"+gwBridge+"$"); err != nil {
		return err
	} else {
		swarm.hadGWBridge = out != ""
	}
	if _, err := DockerCLI(ctx, "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
		return err
	}
	swarm.initialized = true
	return nil
}

// ReleaseSwarm leaves the engine as RequireSwarm found it: if this process made it a manager,
// it leaves the swarm and removes the bridge network the swarm left behind.
func ReleaseSwarm() error {
	swarm.Lock()
	defer swarm.Unlock()
	var errs []error
	if swarm.initialized {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := DockerCLI(ctx, "swarm", "leave", "--force"); err != nil {
			errs = append(errs, err)
		} else if !swarm.hadGWBridge {
			// The network is briefly in use while the engine tears down the swarm's endpoints.
			var err error
			for i := 0; i < 20; i++ {
				if _, err = DockerCLI(ctx, "network", "rm", gwBridge); err == nil {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			errs = append(errs, err)
		}
		swarm.initialized = false
	}
	if swarm.lock != nil {
		errs = append(errs, swarm.lock.Close()) // closing releases the lock
		swarm.lock = nil
	}
	swarm.started = false
	return errors.Join(errs...)
}

// SocketProxy stands for the compose stack's socket proxy in front of the test engine: GET and
// HEAD on paths that read matches, POST on paths that write matches, 403 for everything else as
// the proxy answers. It returns the proxy's address for DOCKER_HOST. The engine must be
// reached through a unix socket; otherwise the test is skipped, saying why.
func SocketProxy(t testing.TB, read, write *regexp.Regexp) string {
	t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Skip("the proxy test forwards to a unix socket; DOCKER_HOST is " + h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: "docker"}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := ((r.Method == http.MethodGet || r.Method == http.MethodHead) && read.MatchString(r.URL.Path)) ||
			(r.Method == http.MethodPost && write.MatchString(r.URL.Path))
		if !ok {
			http.Error(w, "<html><body><h1>403 Forbidden</h1>Request forbidden by administrative rules.</body></html>", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}
