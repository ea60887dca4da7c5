// Package loadtest drives a whole remediator (real webhook, real bbolt store, real pipeline and
// action runner, its own HTTP server with its timeouts and request limit) the way Alertmanager
// does, for the storm, fault and bad-input tests and for the benchmarks.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/server"
)

// Options starts a Remediator. Zero values take the remediator's own defaults.
type Options struct {
	// Dir holds the playbooks file and the state directory.
	Dir string
	// Playbooks is the playbooks file's content.
	Playbooks string
	// Runner performs steps; nil means the production dispatcher (http, command, wait, and the
	// steps of each of Actuators).
	Runner action.Runner
	// Actuators run docker, swarm or kubernetes steps, each the kind it serves.
	Actuators []action.Actuator
	// Token, when set, is required as the webhook's bearer token.
	Token string

	MaxBodyBytes                                              int64
	MaxRequests                                               int
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	Tick                                                      time.Duration
	Logger                                                    *slog.Logger
}

// Remediator is a remediator running in this process, served on a loopback port by the same
// server code (timeouts, request limit, exporter-toolkit) as the real binary.
type Remediator struct {
	URL      string
	Token    string
	Server   *server.Server
	Registry *prometheus.Registry

	cancel context.CancelFunc
	done   chan error
}

// Start builds and serves a remediator; it returns once /-/ready answers.
func Start(o Options) (*Remediator, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o750); err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(o.Dir, "playbooks.yml")
	if err := os.WriteFile(cfgFile, []byte(o.Playbooks), 0o600); err != nil {
		return nil, err
	}
	var tokenFile string
	if o.Token != "" {
		tokenFile = filepath.Join(o.Dir, "webhook-token")
		if err := os.WriteFile(tokenFile, []byte(o.Token), 0o600); err != nil {
			return nil, err
		}
	}
	runner := o.Runner
	if runner == nil {
		runner = action.NewDispatcher(action.DispatcherOptions{Actuators: o.Actuators, Logger: o.Logger})
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Options{
		ConfigFile: cfgFile, StoragePath: filepath.Join(o.Dir, "data"), WebhookTokenFile: tokenFile,
		MaxBodyBytes: o.MaxBodyBytes, MaxRequests: o.MaxRequests,
		ReadHeaderTimeout: o.ReadHeaderTimeout, ReadTimeout: o.ReadTimeout,
		WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout,
		Runner: runner, Logger: o.Logger, Registerer: reg, Gatherer: reg, Tick: o.Tick,
	})
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Remediator{URL: "http://" + addr, Token: o.Token, Server: srv, Registry: reg, cancel: cancel, done: make(chan error, 1)}
	addrs, systemd, webCfg := []string{addr}, false, ""
	go func() {
		r.done <- srv.Serve(ctx, &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webCfg})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(r.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		select {
		case err := <-r.done:
			cancel()
			return nil, fmt.Errorf("remediator stopped while starting: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = r.Stop()
			return nil, errors.New("remediator not ready within 10s")
		}
	}
}

// Stop shuts the remediator down and closes its store.
func (r *Remediator) Stop() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("remediator did not stop within 30s")
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Post sends one notification body to the webhook and returns the status and body.
func (r *Remediator) Post(c *http.Client, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, r.URL+"/webhook", strings.NewReader(string(body)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metrics is a scrape of the remediator's /metrics.
type Metrics map[string]*dto.MetricFamily

// Scrape reads the remediator's own /metrics over HTTP, as Prometheus does.
func (r *Remediator) Scrape() (Metrics, error) {
	resp, err := http.Get(r.URL + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// Value sums the samples of a counter or gauge whose labels include all of want ("k", "v", ...).
func (m Metrics) Value(name string, want ...string) float64 {
	mf, ok := m[name]
	if !ok {
		return 0
	}
	sum := 0.0
	for _, s := range mf.GetMetric() {
		if !hasLabels(s, want) {
			continue
		}
		switch {
		case s.Counter != nil:
			sum += s.Counter.GetValue()
		case s.Gauge != nil:
			sum += s.Gauge.GetValue()
		case s.Untyped != nil:
			sum += s.Untyped.GetValue()
		}
	}
	return sum
}

// ByLabel returns a counter or gauge's values keyed by one label.
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	mf, ok := m[name]
	if !ok {
		return out
	}
	for _, s := range mf.GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == label {
				v := s.GetCounter().GetValue() + s.GetGauge().GetValue()
				out[l.GetValue()] += v
			}
		}
	}
	return out
}

func hasLabels(s *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == want[i] && l.GetValue() == want[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
