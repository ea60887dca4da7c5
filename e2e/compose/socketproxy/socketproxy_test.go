package socketproxy

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/selfheal/selfheal/internal/testutil"
)

// The allowlists are the shipped compose file's own labels, so the stand-in is judged on what
// the stack relies on: the remediator may restart but not kill or create; Prometheus may only
// list; with docker-compose.recreate.yml the remediator may create, but bind mounts only from
// the directory it names.
func TestShippedAllowlists(t *testing.T) {
	root := testutil.RepoRoot(t)
	labels := func(file, service string) map[string]string {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Services map[string]struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"services"`
		}
		if err := yaml.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return c.Services[service].Labels
	}
	merged := labels("docker-compose.yml", "remediator")
	for k, v := range labels("docker-compose.recreate.yml", "remediator") {
		merged[k] = v
	}
	lists := map[string]map[string]string{
		"remediator": labels("docker-compose.yml", "remediator"),
		"prometheus": labels("docker-compose.yml", "prometheus"),
		"recreate":   merged,
		"unlabelled": {},
	}
	for _, tc := range []struct {
		client, method, path, body string
		want                       bool
	}{
		{"remediator", "POST", "/v1.41/containers/payment-service/restart", "", true},
		{"remediator", "GET", "/v1.41/containers/payment-service/json", "", true},
		{"remediator", "HEAD", "/_ping", "", true},
		{"remediator", "POST", "/v1.41/containers/payment-service/kill", "", false},
		{"remediator", "POST", "/v1.41/containers/create", `{}`, false},
		{"remediator", "DELETE", "/v1.41/containers/payment-service", "", false},
		{"remediator", "POST", "/v1.41/containers/x/restart/../kill", "", false},
		{"prometheus", "GET", "/v1.41/containers/json", "", true},
		{"prometheus", "GET", "/v1.41/networks", "", true},
		{"prometheus", "POST", "/v1.41/containers/payment-service/restart", "", false},
		{"prometheus", "GET", "/v1.41/containers/payment-service/json", "", false},
		{"recreate", "POST", "/v1.41/containers/create", `{"HostConfig":{"Binds":["data:/data"]}}`, true},
		{"recreate", "POST", "/v1.41/containers/create", `{"HostConfig":{"Binds":["/:/host"]}}`, false},
		{"recreate", "POST", "/v1.41/containers/create", `{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc"}]}}`, false},
		{"recreate", "DELETE", "/v1.41/containers/payment-service", "", true},
		{"unlabelled", "GET", "/_ping", "", false},
	} {
		a, err := ParseAllowlist(lists[tc.client])
		if err != nil {
			t.Fatal(err)
		}
		if got, why := a.Allows(tc.method, tc.path, []byte(tc.body)); got != tc.want {
			t.Errorf("%s: %s %s %s: allowed %v (%s), want %v", tc.client, tc.method, tc.path, tc.body, got, why, tc.want)
		}
	}
}

func TestInvalidPatternIsAnError(t *testing.T) {
	_, err := ParseAllowlist(map[string]string{"socket-proxy.allow.get": "(unclosed"})
	if err == nil {
		t.Fatal("a label with an invalid regular expression was accepted")
	}
	t.Log(err)
}
