package docker

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/config"
)

func TestValidName(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"order-service", true},
		{"/order-service", true},
		{"selfheal_payment-service_1", true},
		{"3f2a1b4c5d6e", true},
		{"a.b", true},
		{"", false},
		{"-leading", false},
		{"../etc", false},
		{"a/b", false},
		{"a b", false},
		{"x?force=1", false},
		{"x%2F..", false},
		{strings.Repeat("a", 256), false},
	} {
		if err := validName(c.in); (err == nil) != c.ok {
			t.Errorf("validName(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestNormalizeSignal(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"", "KILL", ""},
		{"SIGKILL", "KILL", ""},
		{"term", "TERM", ""},
		{"sighup", "HUP", ""},
		{"9", "KILL", ""},
		{"15", "TERM", ""},
		{"SIGNOPE", "", "unsupported signal"},
		{"99", "", "unsupported signal"},
		{"KILL; rm -rf /", "", "unsupported signal"},
	} {
		got, err := normalizeSignal(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("normalizeSignal(%q) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("normalizeSignal(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestPickReplica(t *testing.T) {
	replica := func(name, id, ip string) container.Summary {
		s := container.Summary{ID: id, Names: []string{"/" + name}, NetworkSettings: &container.NetworkSettingsSummary{
			Networks: map[string]*network.EndpointSettings{"demo": {IPAddress: netip.MustParseAddr(ip)}},
		}}
		return s
	}
	a := replica("payment-service-1", strings.Repeat("a", 64), "172.20.0.5")
	b := replica("payment-service-2", strings.Repeat("b", 64), "172.20.0.6")
	for _, c := range []struct {
		name     string
		items    []container.Summary
		instance string
		want     string
		err      string
	}{
		{"single without instance", []container.Summary{a}, "", a.ID, ""},
		{"none", nil, "", "", "has no containers"},
		{"ambiguous", []container.Summary{a, b}, "", "", "ambiguous: 2 replicas (payment-service-1, payment-service-2)"},
		{"by name:port", []container.Summary{a, b}, "payment-service-2:8080", b.ID, ""},
		{"by bare name", []container.Summary{a, b}, "payment-service-1", a.ID, ""},
		{"by address", []container.Summary{a, b}, "172.20.0.6:8080", b.ID, ""},
		{"by short id", []container.Summary{a, b}, "aaaaaaaaaaaa:8080", a.ID, ""},
		{"short prefix is no id", []container.Summary{a, b}, "aaa:8080", "", "no replica for instance"},
		{"unknown", []container.Summary{a, b}, "payment-service-3:8080", "", "no replica for instance \"payment-service-3:8080\""},
		{"single but instance elsewhere", []container.Summary{a}, "other:8080", "", "no replica"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickReplica(c.items, c.instance, `compose service "payment-service"`)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || got.ID != c.want {
				t.Fatalf("got %s, %v; want %s", got.ID, err, c.want)
			}
		})
	}
}

func TestSelfDetection(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	other := strings.Repeat("f", 64)
	inContainer := `1000 990 0:50 / / rw,relatime master:1 - overlay overlay rw
1010 1000 254:1 /var/lib/docker/containers/` + id + `/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda1 rw
1011 1000 254:1 /var/lib/docker/containers/` + id + `/hostname /etc/hostname rw,relatime - ext4 /dev/vda1 rw
`
	// On the host, other containers' shm mounts are visible: they are not us.
	onHost := `29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
300 29 0:60 / /var/lib/docker/containers/` + other + `/mounts/shm rw,nosuid - tmpfs shm rw
`
	if got := selfFromMountinfo(inContainer); got != id {
		t.Errorf("in a container: %q, want %q", got, id)
	}
	if got := selfFromMountinfo(onHost); got != "" {
		t.Errorf("on the host: %q, want none", got)
	}
	for _, c := range []struct{ in, want string }{
		{"12:memory:/docker/" + id + "\n0::/", id},
		{"1:name=systemd:/system.slice/docker-" + id + ".scope", id},
		{"0::/", ""},
		{"4:memory:/process_api/e92ca7f36755f42f04e13f6e13a5ec43", ""},
	} {
		if got := selfFromCgroup(c.in); got != c.want {
			t.Errorf("selfFromCgroup(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestGuard(t *testing.T) {
	id := strings.Repeat("c", 64)
	a := &Actuator{Settings: action.Settings{OptInLabel: DefaultOptInLabel, ProtectedLabel: DefaultProtectedLabel}}
	for _, c := range []struct {
		name   string
		self   string
		labels map[string]string
		err    string
	}{
		{"opted in", "", map[string]string{"remediator.enable": "true"}, ""},
		{"missing", "", nil, "label remediator.enable=true is missing"},
		{"not true", "", map[string]string{"remediator.enable": "yes"}, `remediator.enable="yes", want "true"`},
		{"protected wins", "", map[string]string{"remediator.enable": "true", "remediator.protected": ""}, "protection label"},
		{"self by full id", id, map[string]string{"remediator.enable": "true"}, "own container"},
		{"self by short id", id[:12], map[string]string{"remediator.enable": "true"}, "own container"},
		{"someone else", strings.Repeat("d", 64), map[string]string{"remediator.enable": "true"}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a.self = c.self
			err := a.guard(&target{id: id, name: "x", labels: c.labels})
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
		})
	}
}

func TestCloneSpec(t *testing.T) {
	id := "0123456789ab" + strings.Repeat("0", 52)
	p := network.MustParsePort("8080/tcp")
	info := container.InspectResponse{
		ID:    id,
		Image: "sha256:feed",
		Config: &container.Config{
			Hostname: id[:12],
			Image:    "demo:latest",
			Labels:   map[string]string{"a": "b"},
			Env:      []string{"X=1"},
			Volumes:  map[string]struct{}{"/data": {}},
		},
		HostConfig: &container.HostConfig{
			NetworkMode:  "demo_net",
			Links:        []string{"/db:/web/database"},
			Binds:        []string{"named:/named:rw"},
			PortBindings: network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: ""}}},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "anon123", Destination: "/data", RW: true},
			{Type: mount.TypeVolume, Name: "named", Destination: "/named", RW: true},
		},
		NetworkSettings: &container.NetworkSettings{
			Ports: network.PortMap{p: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "49153"}}},
			Networks: map[string]*network.EndpointSettings{
				"demo_net": {Aliases: []string{"web", id[:12]}, IPAddress: netip.MustParseAddr("172.20.0.3")},
				"other":    {Aliases: []string{"web2"}},
			},
		},
	}
	s := cloneSpec(info)
	if s.config.Image != "sha256:feed" || s.config.Hostname != "" {
		t.Errorf("image %q hostname %q: want the old image id and no inherited hostname", s.config.Image, s.config.Hostname)
	}
	s.config.Labels["a"] = "changed"
	if info.Config.Labels["a"] != "b" {
		t.Error("the spec shares its labels with the inspect")
	}
	if got := s.host.PortBindings[p][0].HostPort; got != "49153" {
		t.Errorf("dynamic port pinned to %q, want 49153", got)
	}
	if len(s.host.Links) != 1 || s.host.Links[0] != "db:database" {
		t.Errorf("links %q", s.host.Links)
	}
	if len(s.host.Mounts) != 1 || s.host.Mounts[0].Source != "anon123" || s.host.Mounts[0].Target != "/data" {
		t.Errorf("mounts %+v: want the anonymous volume kept", s.host.Mounts)
	}
	if _, ok := s.config.Volumes["/data"]; ok {
		t.Error("/data still declared as a fresh anonymous volume")
	}
	ep := s.networking.EndpointsConfig["demo_net"]
	if ep == nil || len(ep.Aliases) != 1 || ep.Aliases[0] != "web" || ep.IPAddress.IsValid() {
		t.Errorf("primary endpoint %+v: want alias web only and no old address", ep)
	}
	if s.extraNetworks["other"] == nil || len(s.networking.EndpointsConfig) != 1 {
		t.Errorf("networks: create %v, connect later %v", s.networking.EndpointsConfig, s.extraNetworks)
	}
}

// TestConfigSignalsAreSent proves that --config.check and the actuator agree: every signal a
// kill step may name, by name or number, the actuator sends, as that signal; what the loader
// refuses, the actuator refuses too.
func TestConfigSignalsAreSent(t *testing.T) {
	if len(config.Signals) == 0 {
		t.Fatal("no signals")
	}
	for name, num := range config.Signals {
		for _, given := range []string{name, strings.ToLower(strings.TrimPrefix(name, "SIG")), strconv.Itoa(num)} {
			canonical, ok := config.ParseSignal(given)
			if !ok || canonical != name {
				t.Errorf("config.ParseSignal(%q) = %q, %v; want %q", given, canonical, ok, name)
				continue
			}
			sent, err := normalizeSignal(canonical)
			if err != nil || "SIG"+sent != name {
				t.Errorf("the loader accepts %q as %s, the actuator sends %q, %v", given, canonical, sent, err)
			}
		}
	}
	for n := 0; n <= 65; n++ {
		_, configOK := config.ParseSignal(strconv.Itoa(n))
		_, err := normalizeSignal(strconv.Itoa(n))
		if configOK != (err == nil) {
			t.Errorf("signal %d: loader accepts %v, actuator err %v", n, configOK, err)
		}
	}
}

// TestConfigActionsAreImplemented: every docker action the loader accepts has an implementation,
// and there is none the loader would refuse.
func TestConfigActionsAreImplemented(t *testing.T) {
	if len(actions) != len(config.DockerActions) {
		t.Errorf("%d actions implemented, the loader accepts %d (%v)", len(actions), len(config.DockerActions), config.DockerActions)
	}
	for _, a := range config.DockerActions {
		if actions[a] == nil {
			t.Errorf("docker action %q passes the loader but is not implemented", a)
		}
	}
}

func TestIsExactRef(t *testing.T) {
	const id = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcd"
	for _, tc := range []struct {
		ref  string
		want bool
	}{
		{"order-service", true},
		{id, true},
		{id[:12], true},
		// The engine matches a name by any unambiguous id prefix; a short one means another thing.
		{id[:6], false},
		{"order", false},
		{"3F2A9C1B7D4E", false},
	} {
		if got := IsExactRef(tc.ref, "order-service", id); got != tc.want {
			t.Errorf("IsExactRef(%q) = %v, want %v", tc.ref, got, tc.want)
		}
	}
}
