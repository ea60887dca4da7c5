package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const alertmanagerPlaybook = `
playbooks:
  - name: memory-high
    match: ['alertname="ServiceMemoryHigh"']
    steps:
      - wait: 1s
        verify: {skip: true}
`

func TestAlertmanagerConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "playbooks.yml")
	src := `
global:
  alertmanager:
    url: https://alertmanager.example:9093
    http_config:
      authorization:
        credentials_file: secrets/am-token
      tls_config:
        ca_file: ca.pem
defaults:
  silence: true
` + alertmanagerPlaybook
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	am := cfg.Global.Alertmanager
	if am == nil || am.URL != "https://alertmanager.example:9093" {
		t.Fatalf("alertmanager %+v, want the file's url", am)
	}
	if got, want := am.HTTPConfig.Authorization.CredentialsFile, filepath.Join(dir, "secrets/am-token"); got != want {
		t.Errorf("credentials_file %q, want %q (relative to the playbooks file)", got, want)
	}
	if got, want := am.HTTPConfig.TLSConfig.CAFile, filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("ca_file %q, want %q", got, want)
	}
	if !am.HTTPConfig.FollowRedirects || !am.HTTPConfig.EnableHTTP2 {
		t.Errorf("http_config lost Prometheus' defaults: %+v", am.HTTPConfig)
	}
	if !cfg.Playbooks[0].Silence {
		t.Error("silence: true in defaults did not reach the playbook")
	}

	cfg, err = ParseWithOptions([]byte(alertmanagerPlaybook), "p.yml", Options{AlertmanagerURL: "http://am:9093"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.Alertmanager == nil || cfg.Global.Alertmanager.URL != "http://am:9093" || !cfg.Global.Alertmanager.HTTPConfig.EnableHTTP2 {
		t.Errorf("--alertmanager.url gave %+v", cfg.Global.Alertmanager)
	}
	if cfg.Playbooks[0].Silence {
		t.Error("silence is on without being asked for")
	}
	cfg, err = Parse([]byte(alertmanagerPlaybook), "p.yml")
	if err != nil || cfg.Global.Alertmanager != nil {
		t.Errorf("no alertmanager key: got %+v, %v; want none", cfg.Global.Alertmanager, err)
	}
}

func TestAlertmanagerConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, global string
		opts         Options
		want         string
	}{
		{"no url", "  alertmanager:\n    http_config: {}\n", Options{},
			`p.yml:2: global.alertmanager: url is required (hint: e.g. url: http://alertmanager:9093)`},
		{"bad scheme", "  alertmanager:\n    url: ftp://am\n", Options{},
			`p.yml:3: global.alertmanager: url: "ftp://am" must be an http:// or https:// URL with a host (hint: e.g. http://alertmanager:9093)`},
		{"bad flag", "", Options{AlertmanagerURL: "am:9093"},
			`p.yml:1: --alertmanager.url: "am:9093" must be an http:// or https:// URL with a host`},
		{"unknown http_config key", "  alertmanager:\n    url: http://am:9093\n    http_config:\n      bearer: x\n", Options{},
			`p.yml:5: global.alertmanager.http_config: field bearer not found (hint:`},
		{"two credentials", "  alertmanager:\n    url: http://am:9093\n    http_config:\n      basic_auth: {username: a, password: b}\n      authorization: {credentials: c}\n", Options{},
			`p.yml:5: global.alertmanager.http_config: at most one of basic_auth, oauth2 & authorization must be configured`},
		{"unknown alertmanager key", "  alertmanager:\n    url: http://am:9093\n    token: x\n", Options{},
			`p.yml:4: unknown key "token" in alertmanager (hint: valid keys: url, http_config)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "global:\n" + tc.global + alertmanagerPlaybook
			if tc.global == "" {
				src = alertmanagerPlaybook
			}
			_, err := ParseWithOptions([]byte(src), "p.yml", tc.opts)
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}
