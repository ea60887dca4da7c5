package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	promconfig "github.com/prometheus/common/config"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// Prometheus is the Prometheus the remediator asks, with the client settings the ecosystem
// writes everywhere else (authorization, basic auth, TLS, proxy), so credentials stay in files
// next to the playbooks instead of inside them.
type Prometheus struct {
	URL        string                       `yaml:"url"`
	HTTPConfig *promconfig.HTTPClientConfig `yaml:"http_config"`
}

var typeHTTPClientConfig = reflect.TypeOf(promconfig.HTTPClientConfig{})

// httpClientConfig checks an http_config the way Prometheus reads it: strictly, with its own
// validation (one of basic_auth, authorization, oauth2; a credentials file or credentials).
func (s *schema) httpClientConfig(n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		s.fail(n.Line, "write it as `key: value` lines, as in Prometheus' scrape configs", "%s must be a mapping, got %s", s.at(path), kindName(n))
		return
	}
	if _, err := loadHTTPClientConfig(n); err != nil {
		s.fail(n.Line, "http_config takes Prometheus' keys: authorization, basic_auth, tls_config, proxy_url, ...", "%s: %v", s.at(path), err)
	}
}

// loadHTTPClientConfig reads a node with prometheus/common's own strict loader, which reports
// unknown keys that a lenient decode would drop.
func loadHTTPClientConfig(n *yaml.Node) (*promconfig.HTTPClientConfig, error) {
	b, err := yaml.Marshal(n)
	if err != nil {
		return nil, err
	}
	c, err := promconfig.LoadHTTPConfig(string(b))
	if err != nil {
		return nil, cleanYAMLv2Error(err)
	}
	return c, nil
}

// cleanYAMLv2Error drops yaml.v2's line numbers: they count from the http_config, not the file.
func cleanYAMLv2Error(err error) error {
	msg := err.Error()
	if te, ok := errors.AsType[*yamlv2.TypeError](err); ok {
		msg = strings.Join(te.Errors, "; ")
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if i := strings.Index(msg, "line "); i == 0 {
		if j := strings.Index(msg, ": "); j > 0 {
			msg = msg[j+2:]
		}
	}
	return fmt.Errorf("%s", msg)
}

// settleHTTPConfigs resolves the Prometheus URL's two spellings and hands http_config down from
// playbooks to their http steps; relative file paths (credentials_file, ca_file, ...) are read
// next to the playbooks file, as Prometheus reads them next to its own.
func settleHTTPConfigs(cfg *Config, pos map[string]int, e *errs) {
	dir := filepath.Dir(cfg.File)
	g := &cfg.Global
	if g.Prometheus.URL != "" {
		if g.PrometheusURL != "" && g.PrometheusURL != g.Prometheus.URL {
			e.add(pos["global.prometheus.url"], "drop global.prometheus_url: global.prometheus.url replaces it",
				"global.prometheus.url %q and global.prometheus_url %q disagree", g.Prometheus.URL, g.PrometheusURL)
		}
		g.PrometheusURL = g.Prometheus.URL
	}
	if g.Prometheus.HTTPConfig != nil {
		if g.Prometheus.URL == "" && g.PrometheusURL == "" {
			e.add(pos["global.prometheus.http_config"], "set global.prometheus.url", "global.prometheus.http_config is given but no Prometheus URL")
		}
		g.Prometheus.HTTPConfig.SetDirectory(dir)
	}
	for _, pb := range cfg.Playbooks {
		pb.HTTPConfig.SetDirectory(dir)
		for _, st := range pb.Steps {
			if st.HTTP == nil {
				continue
			}
			if st.HTTP.HTTPConfig == nil {
				st.HTTP.HTTPConfig = pb.HTTPConfig
			} else {
				st.HTTP.HTTPConfig.SetDirectory(dir)
			}
		}
	}
}
