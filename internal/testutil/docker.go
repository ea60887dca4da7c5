package testutil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLabel marks every container and image a test creates, so a person can find leftovers of
// an interrupted run with `docker ps -a --filter label=selfheal.test=1`. Cleanup never removes
// by this label alone: other packages' tests may be running against the same engine.
const TestLabel = "selfheal.test=1"

// DockerCLI runs the docker command line and returns its trimmed standard output; the error
// carries standard error, which is where the engine's reason is.
func DockerCLI(ctx context.Context, args ...string) (string, error) {
	out, err := RunContext(ctx, "docker", args...)
	if err != nil {
		return "", err
	}
	return out, nil
}

// DockerReachable reports whether the docker command is installed and its engine answers; when
// not, the reason says which of the two is missing.
func DockerReachable() (bool, string) {
	if _, err := exec.LookPath("docker"); err != nil {
		return false, "the docker command is not installed"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := DockerCLI(ctx, "version", "--format", "{{.Server.APIVersion}}"); err != nil {
		return false, "the Docker engine does not answer: " + err.Error()
	}
	return true, ""
}

// RequireDocker fails the test in CI and skips it elsewhere when no Docker engine is reachable.
func RequireDocker(t testing.TB) {
	t.Helper()
	ok, why := DockerReachable()
	Require(t, ok, why)
}

// BuildStatic builds the Go main package pkg (an import path or ./relative to the repository
// root) into out as a statically linked binary, so it can run in a FROM scratch image.
func BuildStatic(root, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// BuildScratchImage builds the image tag FROM scratch holding only the static binary at
// /<base name of binary>, run as its entrypoint. Nothing is pulled, so it works offline; the
// image carries TestLabel. extra Dockerfile lines (e.g. HEALTHCHECK) are appended as given.
func BuildScratchImage(binary, tag string, extra ...string) error {
	dir, err := os.MkdirTemp("", "selfheal-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name := filepath.Base(binary)
	data, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
		return err
	}
	dockerfile := "FROM scratch\nCOPY " + name + " /" + name + "\nENTRYPOINT [\"/" + name + "\"]\n"
	for _, l := range extra {
		dockerfile += l + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The classic builder needs no buildx plugin and no pull for FROM scratch.
	cmd := exec.CommandContext(ctx, "docker", "build", "--quiet", "--label", TestLabel, "-t", tag, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %s: %w: %s", tag, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// BuildDemoServiceImages builds the demo service and, for each tag, a FROM scratch image of it
// with that tag's extra Dockerfile lines (see BuildScratchImage): the images a package's tests
// share, built once, and removed by the package when its tests end.
func BuildDemoServiceImages(images map[string][]string) error {
	dir, err := os.MkdirTemp("", "selfheal-demo-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "demo-service")
	if err := buildDemoService(bin); err != nil {
		return err
	}
	for tag, extra := range images {
		if err := BuildScratchImage(bin, tag, extra...); err != nil {
			return err
		}
	}
	return nil
}

// DemoImages are the FROM scratch images of the demo service that a test package shares: built
// once, on first use, under test-only names, and removed by the package's TestMain with Remove.
type DemoImages struct {
	once sync.Once
	err  error
	tags []string
}

// Build builds the images on first use and returns their tags, in the order of variants: each
// variant is a tag suffix and its extra Dockerfile lines (see BuildScratchImage). pkg names the
// package in the tags, so that packages testing at once on one engine never share an image.
// Every later call returns the same tags, whatever it asks for.
func (d *DemoImages) Build(t testing.TB, pkg string, variants ...DemoImage) []string {
	t.Helper()
	d.once.Do(func() {
		base := fmt.Sprintf("selfheal-test/demo-service:%s-%d", pkg, os.Getpid())
		images := map[string][]string{}
		for _, v := range variants {
			images[base+v.Suffix] = v.Dockerfile
			// Named before they are built, so that Remove deletes whatever a failed build left.
			d.tags = append(d.tags, base+v.Suffix)
		}
		d.err = BuildDemoServiceImages(images)
	})
	if d.err != nil {
		t.Fatalf("building the demo-service test images: %v", d.err)
	}
	return d.tags
}

// A DemoImage is one variant of DemoImages: a tag suffix and the Dockerfile lines it adds.
type DemoImage struct {
	Suffix     string
	Dockerfile []string
}

// Remove deletes the images Build made, if it ran.
func (d *DemoImages) Remove() error {
	var errs []error
	for _, tag := range d.tags {
		errs = append(errs, RemoveImage(tag))
	}
	return errors.Join(errs...)
}

// UniqueName is a name for what one test creates on the shared engine (a container, a service):
// prefix, the test's name as Docker accepts it (at most 40 characters), and a random suffix, so
// that parallel runs and leftovers of an earlier run never collide.
func UniqueName(t testing.TB, prefix string) string {
	n := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("%s-%s-%04x", prefix, strings.Trim(n, "-"), rand.IntN(0x10000))
}

// buildDemoService builds the demo service as a static binary at out.
func buildDemoService(out string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	return BuildStatic(root, "./services/cmd/demo-service", out)
}

// RemoveImage deletes an image built by BuildScratchImage.
func RemoveImage(tag string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := DockerCLI(ctx, "rmi", "-f", tag)
	return err
}

// ScratchImage builds a FROM scratch image of binary for one test and removes it afterwards.
func ScratchImage(t testing.TB, binary, tag string, extra ...string) string {
	t.Helper()
	if err := BuildScratchImage(binary, tag, extra...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = RemoveImage(tag) })
	return tag
}

// ContainerSpec describes a test container. Published container ports are bound to a random
// port on 127.0.0.1 only, never on all interfaces.
type ContainerSpec struct {
	Name    string
	Image   string
	Labels  map[string]string
	Env     map[string]string
	Publish []int    // container TCP ports to publish on 127.0.0.1
	Args    []string // further `docker run` options, e.g. --health-cmd
	Cmd     []string // arguments after the image (the entrypoint's arguments)
}

// Container is a running test container.
type Container struct {
	ID   string
	Name string
}

// RunContainer starts spec detached and removes it (by name and by id, with its anonymous
// volumes) when the test ends, whatever happened to it meanwhile.
func RunContainer(t testing.TB, spec ContainerSpec) Container {
	t.Helper()
	args := []string{"run", "-d", "--label", TestLabel}
	if spec.Name != "" {
		args = append(args, "--name", spec.Name)
	}
	for k, v := range spec.Labels {
		args = append(args, "--label", k+"="+v)
	}
	for k, v := range spec.Env {
		args = append(args, "--env", k+"="+v)
	}
	for _, p := range spec.Publish {
		args = append(args, "--publish", "127.0.0.1::"+strconv.Itoa(p))
	}
	args = append(args, spec.Args...)
	args = append(args, spec.Image)
	args = append(args, spec.Cmd...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := DockerCLI(ctx, args...)
	c := Container{ID: id, Name: spec.Name}
	t.Cleanup(func() { RemoveContainers(c.ID, c.Name) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RemoveContainers force-removes the named containers (names or ids), ignoring ones that are
// already gone.
func RemoveContainers(refs ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, r := range refs {
		if r != "" {
			_, _ = DockerCLI(ctx, "rm", "-f", "-v", r)
		}
	}
}

// HostPort returns the port on 127.0.0.1 that the container's TCP port is published on.
func HostPort(t testing.TB, container string, port int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := DockerCLI(ctx, "port", container, strconv.Itoa(port)+"/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "127.0.0.1:") {
			continue
		}
		p, err := strconv.Atoi(strings.TrimPrefix(line, "127.0.0.1:"))
		if err == nil {
			return p
		}
	}
	t.Fatalf("container %s publishes port %d nowhere on 127.0.0.1 (docker port: %q)", container, port, out)
	return 0
}

// InspectField returns one field of `docker inspect`, as a Go template such as
// "{{.State.StartedAt}}".
func InspectField(t testing.TB, container, format string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := DockerCLI(ctx, "inspect", "--format", format, container)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WaitHTTP polls url until it answers 200 or timeout passes, and returns the last error.
func WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: status %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s: %w", url, timeout, last)
}
