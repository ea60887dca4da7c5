package config

import (
	"path/filepath"

	promconfig "github.com/prometheus/common/config"
)

// Prometheus is the Prometheus the remediator asks, with the client settings the ecosystem
// writes everywhere else (authorization, basic auth, TLS, proxy), so credentials stay in files
// next to the playbooks instead of inside them.
type Prometheus struct {
	URL        string                       `yaml:"url"`
	HTTPConfig *promconfig.HTTPClientConfig `yaml:"http_config"`
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
