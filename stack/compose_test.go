package stack

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

// compose is the part of docker-compose.yml the tests read. Values may be written in the short
// (string or list) or long (mapping) forms of the Compose Specification; the helpers below
// normalise them.
type compose struct {
	Services map[string]*service `yaml:"services"`
	Networks map[string]struct {
		Name     string `yaml:"name"`
		Internal bool   `yaml:"internal"`
	} `yaml:"networks"`
	Volumes map[string]any `yaml:"volumes"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

type service struct {
	Name          string
	Image         string      `yaml:"image"`
	Build         yaml.Node   `yaml:"build"`
	ContainerName string      `yaml:"container_name"`
	Command       yaml.Node   `yaml:"command"`
	Environment   yaml.Node   `yaml:"environment"`
	Labels        yaml.Node   `yaml:"labels"`
	Volumes       []yaml.Node `yaml:"volumes"`
	Secrets       []yaml.Node `yaml:"secrets"`
	Ports         []string    `yaml:"ports"`
	Networks      yaml.Node   `yaml:"networks"`
	MemLimit      string      `yaml:"mem_limit"`
	CPUs          yaml.Node   `yaml:"cpus"`
	Restart       string      `yaml:"restart"`
	Healthcheck   *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn yaml.Node `yaml:"depends_on"`
}

// mount is one file or directory a service sees: Source is a path in the repository (relative,
// cleaned) for bind mounts and file secrets, or a volume name.
type mount struct {
	Source, Target string
	Bind           bool
}

func loadCompose(t testing.TB) *compose {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read compose file: %v", err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml defines no services")
	}
	for name, s := range c.Services {
		s.Name = name
	}
	return &c
}

var interpolationRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// interpolate applies compose's ${VAR:-default} with the defaults, as a fresh checkout without a
// .env file would.
func interpolate(s string) string {
	return interpolationRe.ReplaceAllString(s, "$2")
}

// mapOrList reads a compose mapping that may also be written as a list of KEY=VALUE strings.
func mapOrList(n yaml.Node) map[string]string {
	out := map[string]string{}
	switch n.Kind {
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err == nil {
			for k, v := range m {
				out[k] = interpolate(v)
			}
		}
	case yaml.SequenceNode:
		var l []string
		if err := n.Decode(&l); err == nil {
			for _, kv := range l {
				k, v, _ := strings.Cut(kv, "=")
				out[k] = interpolate(v)
			}
		}
	}
	return out
}

// stringOrList reads a command written as a string or a list.
func stringOrList(n yaml.Node) []string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strings.Fields(n.Value)
	case yaml.SequenceNode:
		var l []string
		_ = n.Decode(&l)
		return l
	}
	return nil
}

func (s *service) env() map[string]string    { return mapOrList(s.Environment) }
func (s *service) labels() map[string]string { return mapOrList(s.Labels) }
func (s *service) command() []string         { return stringOrList(s.Command) }

// flag returns the value of a --name=value or -name=value (or "--name value") argument.
func (s *service) flag(name string) (string, bool) {
	args := s.command()
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a {
			continue
		}
		if k, v, ok := strings.Cut(trimmed, "="); ok && k == name {
			return v, true
		}
		if trimmed == name && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			return args[i+1], true
		}
	}
	return "", false
}

// networks returns the networks a service joins ("default" when it names none).
func (s *service) networks() []string {
	switch s.Networks.Kind {
	case yaml.SequenceNode:
		var l []string
		_ = s.Networks.Decode(&l)
		return l
	case yaml.MappingNode:
		var m map[string]any
		_ = s.Networks.Decode(&m)
		var l []string
		for k := range m {
			l = append(l, k)
		}
		sort.Strings(l)
		return l
	}
	return []string{"default"}
}

// build returns the build context and Dockerfile, relative to the repository root.
func (s *service) build() (context, dockerfile string, ok bool) {
	switch s.Build.Kind {
	case yaml.ScalarNode:
		return s.Build.Value, filepath.Join(s.Build.Value, "Dockerfile"), true
	case yaml.MappingNode:
		var b struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		}
		if err := s.Build.Decode(&b); err != nil {
			return "", "", false
		}
		if b.Context == "" {
			b.Context = "."
		}
		if b.Dockerfile == "" {
			b.Dockerfile = "Dockerfile"
		}
		return b.Context, filepath.Join(b.Context, b.Dockerfile), true
	}
	return "", "", false
}

// mounts returns the service's volumes and secrets.
func (c *compose) mounts(t testing.TB, s *service) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		var m mount
		switch v.Kind {
		case yaml.ScalarNode:
			parts := strings.Split(v.Value, ":")
			if len(parts) < 2 {
				continue // anonymous volume
			}
			m.Source, m.Target = parts[0], parts[1]
		case yaml.MappingNode:
			var l struct {
				Type, Source, Target string
			}
			if err := v.Decode(&l); err != nil {
				t.Fatalf("service %s: volume: %v", s.Name, err)
			}
			m.Source, m.Target = l.Source, l.Target
		}
		m.Bind = strings.HasPrefix(m.Source, ".") || strings.HasPrefix(m.Source, "/")
		if m.Bind && !filepath.IsAbs(m.Source) {
			m.Source = filepath.Clean(m.Source)
		}
		out = append(out, m)
	}
	for _, v := range s.Secrets {
		var src, target string
		switch v.Kind {
		case yaml.ScalarNode:
			src = v.Value
		case yaml.MappingNode:
			var l struct{ Source, Target string }
			if err := v.Decode(&l); err != nil {
				t.Fatalf("service %s: secret: %v", s.Name, err)
			}
			src, target = l.Source, l.Target
		}
		if target == "" {
			target = src
		}
		if !path.IsAbs(target) {
			target = "/run/secrets/" + target
		}
		def, ok := c.Secrets[src]
		if !ok {
			t.Errorf("service %s uses secret %q, which the top-level secrets do not define", s.Name, src)
			continue
		}
		out = append(out, mount{Source: filepath.Clean(def.File), Target: target, Bind: true})
	}
	return out
}

// hostPath maps a path inside a service's container to the repository file or directory mounted
// there, or fails the test.
func (c *compose) hostPath(t testing.TB, s *service, inContainer string) string {
	t.Helper()
	inContainer = path.Clean(inContainer)
	best := mount{}
	for _, m := range c.mounts(t, s) {
		if !m.Bind {
			continue
		}
		tgt := path.Clean(m.Target)
		if (inContainer == tgt || strings.HasPrefix(inContainer, tgt+"/")) && len(tgt) > len(best.Target) {
			best = mount{Source: m.Source, Target: tgt, Bind: true}
		}
	}
	if best.Target == "" {
		t.Fatalf("service %s: nothing from the repository is mounted at %s", s.Name, inContainer)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(inContainer, best.Target), "/")
	return filepath.Join(best.Source, filepath.FromSlash(rel))
}

// byHost finds the service a hostname on the compose network names: a service name or a
// container_name.
func (c *compose) byHost(host string) *service {
	if s, ok := c.Services[host]; ok {
		return s
	}
	for _, s := range c.Services {
		if s.ContainerName == host {
			return s
		}
	}
	return nil
}

// imageDefaultPorts are the ports the upstream images listen on when no flag says otherwise.
var imageDefaultPorts = map[string]int{
	"prom/prometheus":         9090,
	"prom/alertmanager":       9093,
	"grafana/grafana":         3000,
	"postgres":                5432,
	"wollomatic/socket-proxy": 2375,
}

// listenPorts returns the ports a service listens on inside its container, from its flags,
// environment, published ports and image defaults.
func (s *service) listenPorts(t testing.TB) map[int]bool {
	t.Helper()
	ports := map[int]bool{}
	addPort := func(hostport, what string) {
		_, p, err := net.SplitHostPort(hostport)
		if err != nil {
			t.Errorf("service %s: %s %q is not host:port: %v", s.Name, what, hostport, err)
			return
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Errorf("service %s: %s %q: bad port", s.Name, what, hostport)
			return
		}
		ports[n] = true
	}
	explicit := false
	if v, ok := s.flag("web.listen-address"); ok {
		addPort(v, "--web.listen-address")
		explicit = true
	}
	if v, ok := s.flag("proxyport"); ok {
		addPort(":"+v, "-proxyport")
		explicit = true
	}
	if v, ok := s.env()["LISTEN_ADDR"]; ok && v != "" {
		addPort(v, "LISTEN_ADDR")
		explicit = true
	}
	if v, ok := s.labels()["prometheus.port"]; ok {
		addPort(":"+v, "label prometheus.port")
	}
	if !explicit {
		img, _, _ := strings.Cut(s.Image, ":")
		if p, ok := imageDefaultPorts[img]; ok {
			ports[p] = true
		}
	}
	return ports
}

// publishedContainerPorts returns the container side of the service's published ports.
func (s *service) publishedContainerPorts(t testing.TB) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		cp := strings.TrimSuffix(parts[len(parts)-1], "/tcp")
		n, err := strconv.Atoi(cp)
		if err != nil {
			t.Errorf("service %s: published port %q: container port is not a number", s.Name, p)
			continue
		}
		out[n] = true
	}
	return out
}

// checkURL asserts that a URL used inside the stack points at a compose service on a port that
// service listens on, and that the two services share a network. It returns the service.
func (c *compose) checkURL(t testing.TB, from *service, raw, what string) *service {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Errorf("%s: %q is not an absolute URL", what, raw)
		return nil
	}
	return c.checkHostPort(t, from, u.Host, what)
}

func (c *compose) checkHostPort(t testing.TB, from *service, hostport, what string) *service {
	t.Helper()
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: %q has no explicit port: %v", what, hostport, err)
		return nil
	}
	to := c.byHost(host)
	if to == nil {
		t.Errorf("%s: host %q is no service or container_name of docker-compose.yml", what, host)
		return nil
	}
	port, _ := strconv.Atoi(p)
	if ports := to.listenPorts(t); !ports[port] {
		t.Errorf("%s: %s does not listen on port %d (it listens on %v)", what, to.Name, port, keys(ports))
	}
	if from != nil && !shareNetwork(from, to) {
		t.Errorf("%s: %s (networks %v) cannot reach %s (networks %v)", what, from.Name, from.networks(), to.Name, to.networks())
	}
	return to
}

func shareNetwork(a, b *service) bool {
	for _, x := range a.networks() {
		for _, y := range b.networks() {
			if x == y {
				return true
			}
		}
	}
	return false
}

func keys[K comparable, V any](m map[K]V) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprint(k))
	}
	sort.Strings(out)
	return out
}

// readYAML decodes the repository's file rel into v.
func readYAML(t testing.TB, rel string, v any) {
	t.Helper()
	testutil.ReadYAML(t, filepath.Join(testutil.RepoRoot(t), rel), v)
}
