package config

import (
	"path/filepath"
	"strings"
	"testing"
)

const httpConfigPlaybooks = `
global:
  prometheus:
    url: https://prometheus.example:9090
    http_config:
      authorization: {credentials_file: secrets/prometheus-token}
      tls_config: {ca_file: certs/ca.pem, server_name: prometheus}
playbooks:
  - name: flush
    match: ['alertname="MemoryHigh"']
    http_config:
      basic_auth: {username: healer, password_file: /run/secrets/healer}
    steps:
      - http: {url: 'http://{{ .Labels.container }}:8080/flush'}
      - http:
          url: 'https://{{ .Labels.container }}:8443/restart'
          http_config:
            authorization: {credentials_file: step-token}
            proxy_url: http://proxy.example:3128
      - docker: {action: restart}
`

func TestHTTPConfig(t *testing.T) {
	cfg, err := Parse([]byte(httpConfigPlaybooks), "/etc/remediator/playbooks.yml")
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Global
	if g.PrometheusURL != "https://prometheus.example:9090" {
		t.Errorf("prometheus.url did not fill the URL the remediator asks: %q", g.PrometheusURL)
	}
	hc := g.Prometheus.HTTPConfig
	if hc == nil || hc.Authorization == nil || hc.Authorization.Type != "Bearer" {
		t.Fatalf("authorization not read, or not a bearer token by default: %+v", hc)
	}
	if want := "/etc/remediator/secrets/prometheus-token"; hc.Authorization.CredentialsFile != want {
		t.Errorf("credentials_file %q, want %q (next to the playbooks file)", hc.Authorization.CredentialsFile, want)
	}
	if want := "/etc/remediator/certs/ca.pem"; hc.TLSConfig.CAFile != want || hc.TLSConfig.ServerName != "prometheus" {
		t.Errorf("tls_config %+v, want ca_file %q", hc.TLSConfig, want)
	}
	steps := cfg.Playbooks[0].Steps
	if c := steps[0].HTTP.HTTPConfig; c == nil || c.BasicAuth == nil || c.BasicAuth.Username != "healer" || c.BasicAuth.PasswordFile != "/run/secrets/healer" {
		t.Errorf("step without http_config did not take the playbook's: %+v", c)
	}
	c := steps[1].HTTP.HTTPConfig
	if c == nil || c.BasicAuth != nil || c.Authorization == nil || c.Authorization.CredentialsFile != "/etc/remediator/step-token" {
		t.Errorf("step's own http_config lost or mixed with the playbook's: %+v", c)
	}
	if c != nil && (c.ProxyURL.URL == nil || c.ProxyURL.Host != "proxy.example:3128") {
		t.Errorf("proxy_url not read: %+v", c.ProxyURL)
	}
}

func TestPrometheusURLOldSpelling(t *testing.T) {
	cfg, err := Parse([]byte("global:\n  prometheus_url: http://prom:9090\n"+minimalPlaybook), "p.yml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.PrometheusURL != "http://prom:9090" || cfg.Global.Prometheus.HTTPConfig != nil {
		t.Errorf("global %+v", cfg.Global)
	}
}

const minimalPlaybook = `
playbooks:
  - name: p
    match: ['alertname="A"']
    steps:
      - docker: {action: restart}
`

func TestHTTPConfigInvalid(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "global:\n  prometheus:\n    url: http://p:9090\n    http_config:\n      bearer_tokn: x\n",
			`p.yml:5: global.prometheus.http_config: field bearer_tokn not found (hint: see Prometheus' http_config`},
		{"two kinds of auth", "global:\n  prometheus:\n    url: http://p:9090\n    http_config:\n      basic_auth: {username: a, password: b}\n      authorization: {credentials: c}\n",
			`p.yml:5: global.prometheus.http_config: at most one of basic_auth, oauth2 & authorization must be configured`},
		{"URLs disagree", "global:\n  prometheus_url: http://a:9090\n  prometheus:\n    url: http://b:9090\n",
			`p.yml:4: global.prometheus.url "http://b:9090" and global.prometheus_url "http://a:9090" disagree (hint: drop global.prometheus_url`},
		{"no URL", "global:\n  prometheus:\n    http_config: {authorization: {credentials_file: t}}\n",
			`p.yml:3: global.prometheus.http_config is given but no Prometheus URL`},
		{"bad URL", "global:\n  prometheus:\n    url: ftp://p\n",
			`p.yml:3: global: prometheus_url: "ftp://p" must be an http:// or https:// URL`},
		{"not a mapping", "global:\n  prometheus:\n    url: http://p:9090\n    http_config: yes\n",
			`p.yml:4: global.prometheus.http_config must be a mapping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml+minimalPlaybook), filepath.Join("p.yml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
