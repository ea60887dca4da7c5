package config

import (
	"bytes"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	commoncfg "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// Alertmanager is where the remediator reaches people: it silences an alert while healing it and
// posts its own alerts (failed, declined, suspended, performed) there. Its http_config is
// Prometheus' own client configuration: credentials from files, TLS, proxies.
type Alertmanager struct {
	// URL is Alertmanager's base URL, e.g. http://alertmanager:9093 (the API is under /api/v2).
	URL        string                     `yaml:"url"`
	HTTPConfig commoncfg.HTTPClientConfig `yaml:"http_config"`
}

// UnmarshalYAML starts from Prometheus' default client settings (follow redirects, HTTP/2), as
// Prometheus does for its own alertmanager_config.
func (a *Alertmanager) UnmarshalYAML(node *yaml.Node) error {
	*a = Alertmanager{HTTPConfig: commoncfg.DefaultHTTPClientConfig}
	type plain Alertmanager
	return node.Decode((*plain)(a))
}

var typeHTTPClientConfig = reflect.TypeOf(commoncfg.HTTPClientConfig{})

// httpConfig checks an http_config block with Prometheus' own rules, strictly: the schema walk
// cannot descend into it (its types have their own unmarshalers), so the block is decoded alone
// with unknown keys refused, which is how Prometheus reads it.
func (s *schema) httpConfig(n *yaml.Node, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		s.fail(n.Line, "write it as `key: value` lines, as in Prometheus' http_config", "%s must be a mapping, got %s", s.at(path), kindName(n))
		return
	}
	raw, err := yaml.Marshal(n)
	if err != nil {
		s.fail(n.Line, "", "%s: %v", s.at(path), err)
		return
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c commoncfg.HTTPClientConfig
	if err := dec.Decode(&c); err != nil {
		line, msg := n.Line, strings.TrimSpace(strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:"))
		if m := yamlErrLine.FindStringSubmatch(msg); m != nil {
			// The block was decoded alone: its line 1 is the file's n.Line.
			rel, _ := strconv.Atoi(m[1])
			line, msg = n.Line+rel-1, m[2]
		}
		msg = strings.TrimSuffix(msg, " in type config.plain")
		s.fail(line, "see Prometheus' http_config: authorization, basic_auth, tls_config, proxy_url, ...", "%s: %s", s.at(path), msg)
	}
}

var yamlErrLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// alertmanager validates global.alertmanager and makes its file paths relative to the playbooks
// file, as Prometheus does for its own configuration.
func (v *validator) alertmanager(o Options) {
	a := v.cfg.Global.Alertmanager
	if a == nil {
		return
	}
	fallback, ok := v.line("global", "alertmanager")
	if !ok {
		fallback = 1 // given by the --alertmanager.url flag alone
	}
	as := scope{v: v, prefix: "global.alertmanager", who: "global.alertmanager", fallback: fallback}
	if a.URL == "" {
		as.report([]string{"url"}, "e.g. url: http://alertmanager:9093", "url is required")
	} else if err := checkPrometheusURL(a.URL); err != nil {
		if o.AlertmanagerURL != "" {
			v.e.add(1, "", "--alertmanager.url: %v", err)
		} else {
			as.report([]string{"url"}, "e.g. http://alertmanager:9093", "url: %v", err)
		}
	}
	if v.cfg.File != "" {
		a.HTTPConfig.SetDirectory(filepath.Dir(v.cfg.File))
	}
	if err := a.HTTPConfig.Validate(); err != nil {
		as.report([]string{"http_config"}, "", "http_config: %v", err)
	}
}

// applyAlertmanagerURL puts the --alertmanager.url flag over the file's url.
func applyAlertmanagerURL(cfg *Config, url string) {
	if url == "" {
		return
	}
	if cfg.Global.Alertmanager == nil {
		cfg.Global.Alertmanager = &Alertmanager{HTTPConfig: commoncfg.DefaultHTTPClientConfig}
	}
	cfg.Global.Alertmanager.URL = url
}
