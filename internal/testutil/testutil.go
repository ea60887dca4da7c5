// Package testutil holds what the tests of every package share, so that each does it one way:
// finding real programs and deciding whether a missing one skips the test (on a developer's
// machine) or fails it (in CI, where a skip would hide a missing install step); starting them
// (Prometheus, Alertmanager, PostgreSQL, the remediator and demo service binaries, containers);
// and talking to them (requests, JSON, scrapes, waiting, a stand-in webhook receiver, fixtures).
//
// A remediator run inside the test process is remediator/loadtest's Start: this package cannot
// import the remediator's packages, whose own tests import it.
package testutil

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the tests run in continuous integration.
func InCI() bool { return os.Getenv("CI") != "" }

// Require fails the test in CI and skips it elsewhere, saying why.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if InCI() {
		t.Fatalf("required in CI: %s", why)
	}
	t.Skipf("skipped outside CI: %s", why)
}

// LookPath returns the first of names that Find finds, or requires it.
func LookPath(t testing.TB, names ...string) string {
	t.Helper()
	if p, ok := Find(names...); ok {
		return p
	}
	Require(t, false, "none of "+strings.Join(names, ", ")+" is installed (see .ci/run for the packages)")
	return ""
}

// Find returns the first of names found on PATH or where Debian installs PostgreSQL's server
// programs (which are not on PATH).
func Find(names ...string) (string, bool) {
	dirs := []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, true
		}
		for _, d := range dirs {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
	}
	return "", false
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// handedOut holds every port FreePorts returned in this process. A port is closed again when
// FreePorts returns, and the kernel may offer it to the next caller (one that starts
// PostgreSQL, say) before the first caller's server binds it: two servers of one test stack
// would then share a port. FreePorts never returns a port twice.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago and that no
// earlier call in this process returned: they are held open together, so none repeats.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			t.Fatalf("free port: %d of %d found; the others were handed out before", len(ports), n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		defer l.Close()
		p := l.Addr().(*net.TCPAddr).Port
		if !handedOut.ports[p] {
			handedOut.ports[p] = true
			ports = append(ports, p)
		}
	}
	return ports
}

// RepoRoot returns the repository's root directory, found from this file's location.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the repository root")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

// Logger is the logger for code under test: its lines go to stderr with `go test -v`, and
// nowhere otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}
