package prometheus

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
)

// fakeContainer is a container as the Docker engine lists it (GET /containers/json), reduced to
// the fields Prometheus' Docker discovery reads.
type fakeContainer struct {
	ID              string            `json:"Id"`
	Names           []string          `json:"Names"`
	Labels          map[string]string `json:"Labels"`
	State           string            `json:"State"`
	HostConfig      map[string]string `json:"HostConfig"`
	Ports           []fakePort        `json:"Ports"`
	NetworkSettings struct {
		Networks map[string]fakeEndpoint `json:"Networks"`
	} `json:"NetworkSettings"`
}

type fakePort struct {
	PrivatePort int    `json:"PrivatePort"`
	Type        string `json:"Type"`
}

type fakeEndpoint struct {
	NetworkID string `json:"NetworkID"`
	IPAddress string `json:"IPAddress"`
}

const fakeNetwork = "selfheal-app"

// newContainer describes a container on the demo network whose address is 127.0.0.1, so that
// Prometheus, following the shipped relabeling to <network ip>:<prometheus.port>, scrapes a
// process of the test on loopback.
func newContainer(name string, labels map[string]string, ports ...int) fakeContainer {
	c := fakeContainer{ID: "id-" + name, Names: []string{"/" + name}, Labels: labels, State: "running",
		HostConfig: map[string]string{"NetworkMode": fakeNetwork}}
	for _, p := range ports {
		c.Ports = append(c.Ports, fakePort{PrivatePort: p, Type: "tcp"})
	}
	c.NetworkSettings.Networks = map[string]fakeEndpoint{fakeNetwork: {NetworkID: "net-1", IPAddress: "127.0.0.1"}}
	return c
}

// fakeEngine stands in for the Docker engine API (what the socket proxy passes through) as far
// as Prometheus' docker_sd_configs uses it: ping for version negotiation, list networks, list
// containers. It ignores the label filter Prometheus sends, like an engine or proxy that does
// not apply it, so the shipped config's own keep rules are what stops unlabelled containers.
type fakeEngine struct {
	mu         sync.Mutex
	containers []fakeContainer
	srv        *httptest.Server
}

var enginePath = regexp.MustCompile(`^(/v[0-9.]+)?/(_ping|version|networks|containers/json)$`)

func startFakeEngine(t *testing.T, containers ...fakeContainer) *fakeEngine {
	t.Helper()
	e := &fakeEngine{containers: containers}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := enginePath.FindStringSubmatch(r.URL.Path)
		if m == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			t.Logf("fake engine: unexpected %s %s", r.Method, r.URL.Path)
			http.Error(w, `{"message":"not implemented by the test engine"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch m[2] {
		case "_ping":
			_, _ = w.Write([]byte("OK"))
		case "version":
			_ = json.NewEncoder(w).Encode(map[string]string{"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"})
		case "networks":
			_ = json.NewEncoder(w).Encode([]map[string]any{{"Id": "net-1", "Name": fakeNetwork, "Scope": "local", "Driver": "bridge", "Labels": map[string]string{}}})
		case "containers/json":
			e.mu.Lock()
			defer e.mu.Unlock()
			_ = json.NewEncoder(w).Encode(e.containers)
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}
