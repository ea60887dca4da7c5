// Package pager is the demo stack's stand-in for a paging integration: Alertmanager's `oncall`
// and `chat` receivers post their notifications to it, it logs every alert a person would be
// told of (`docker compose logs -f pager`), and it keeps the latest notifications for
// GET /api/v1/pages. Without it the demo's human receivers would point nowhere, nobody would
// see an escalation, and Alertmanager's failed deliveries would fire
// RemediatorWebhookDeliveryFailing, an alert about the remediator that is not about it.
//
// It is not a pager: it pages nobody. Replace the two receivers with a real integration
// (pagerduty_configs, opsgenie_configs, slack_configs, ...) before relying on escalations.
package pager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"
)

// Config configures the pager.
type Config struct {
	ListenAddress string
	// Receivers are the names accepted as POST /{receiver}: Alertmanager's receivers that post here.
	Receivers []string
	// Keep is how many notifications GET /api/v1/pages remembers, newest first.
	Keep int
	// MaxBodyBytes bounds one notification.
	MaxBodyBytes int64
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if len(c.Receivers) == 0 {
		return errors.New("at least one receiver is required")
	}
	for _, r := range c.Receivers {
		if !validReceiver(r) {
			return fmt.Errorf("receiver %q: want letters, digits, '-' or '_' (it is a URL path)", r)
		}
	}
	if c.Keep <= 0 {
		return fmt.Errorf("keep %d: want at least 1", c.Keep)
	}
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("max body bytes %d: want at least 1", c.MaxBodyBytes)
	}
	return nil
}

func validReceiver(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for _, c := range r {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Page is one notification as it reached a receiver.
type Page struct {
	Receiver string    `json:"receiver"`
	Received time.Time `json:"received"`
	Status   string    `json:"status"`
	GroupKey string    `json:"group_key"`
	Alerts   []Alert   `json:"alerts"`
}

// Alert is what a person reads of one alert.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	StartsAt    time.Time         `json:"starts_at"`
}

// Pager receives notifications and remembers the latest.
type Pager struct {
	cfg       Config
	logger    *slog.Logger
	receivers map[string]bool

	mu    sync.Mutex
	pages []Page // oldest first, at most cfg.Keep
}

// New builds a pager.
func New(cfg Config, logger *slog.Logger) (*Pager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Pager{cfg: cfg, logger: logger, receivers: map[string]bool{}}
	for _, r := range cfg.Receivers {
		p.receivers[r] = true
	}
	return p, nil
}

// Handler serves POST /{receiver}, GET /api/v1/pages[?receiver=NAME] and GET /-/healthy.
func (p *Pager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{receiver}", p.receive)
	mux.HandleFunc("GET /api/v1/pages", p.list)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "OK\n") })
	return mux
}

func (p *Pager) receive(w http.ResponseWriter, r *http.Request) {
	receiver := r.PathValue("receiver")
	if !p.receivers[receiver] {
		http.Error(w, fmt.Sprintf("no receiver %q here; this pager takes %v", receiver, p.cfg.Receivers), http.StatusNotFound)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		http.Error(w, "content type must be application/json (an Alertmanager webhook notification)", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		status := http.StatusBadRequest
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, "reading the notification: "+err.Error(), status)
		return
	}
	var n struct {
		template.Data
		GroupKey string `json:"groupKey"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		http.Error(w, "not an Alertmanager webhook notification: "+err.Error(), http.StatusBadRequest)
		return
	}
	page := Page{Receiver: receiver, Received: time.Now().UTC(), Status: n.Status, GroupKey: n.GroupKey}
	for _, a := range n.Alerts {
		page.Alerts = append(page.Alerts, Alert{Status: a.Status, Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt})
		// Alert values are untrusted; slog quotes and escapes them, so none can forge a line.
		p.logger.Info("page", "receiver", receiver, "status", a.Status, "alertname", a.Labels["alertname"],
			"severity", a.Labels["severity"], "target", firstOf(a.Labels, "target", "service", "instance"),
			"summary", a.Annotations["summary"])
	}
	p.mu.Lock()
	p.pages = append(p.pages, page)
	if extra := len(p.pages) - p.cfg.Keep; extra > 0 {
		p.pages = slices.Delete(p.pages, 0, extra)
	}
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func firstOf(labels map[string]string, names ...string) string {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v
		}
	}
	return ""
}

func (p *Pager) list(w http.ResponseWriter, r *http.Request) {
	receiver := r.URL.Query().Get("receiver")
	if receiver != "" && !p.receivers[receiver] {
		http.Error(w, fmt.Sprintf("no receiver %q here; this pager takes %v", receiver, p.cfg.Receivers), http.StatusNotFound)
		return
	}
	out := []Page{}
	p.mu.Lock()
	for i := len(p.pages) - 1; i >= 0; i-- {
		if receiver == "" || p.pages[i].Receiver == receiver {
			out = append(out, p.pages[i])
		}
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"pages": out})
}

// Run serves the pager until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	p, err := New(cfg, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 15 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("pager listening; it pages nobody, it logs what a person would be told", "address", l.Addr().String(), "receivers", cfg.Receivers)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
