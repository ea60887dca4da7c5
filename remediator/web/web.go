// Package web serves the remediator's pages for people: a landing page at / that links to the
// metrics, the API and the docs, and the heal history at /heals, rendered on the server from
// embedded templates so that nothing needs a JavaScript build.
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/selfheal/selfheal/remediator/store"
)

// HealLister reads the heal history, newest first; the pipeline implements it.
type HealLister interface {
	Heals(store.HealFilter) ([]store.Heal, error)
}

// Options configures the pages.
type Options struct {
	Heals   HealLister
	Version string
	// Read wraps the heal history page: the API's read authentication when that is on, so the
	// page shows no more than GET /api/v1/heals would.
	Read   func(http.Handler) http.Handler
	Logger *slog.Logger
}

// DocsURL is where the landing page sends people for the documentation.
const DocsURL = "https://github.com/selfheal/selfheal/tree/main/docs"

// Page sizes: a page shows DefaultLimit heals unless asked for more, and never more than
// MaxLimit. A result filter looks through scanFactor times as many heals to fill the page.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	scanFactor   = 20
)

// Register adds GET / and GET /heals to mux.
func Register(mux *http.ServeMux, o Options) error {
	if o.Read == nil {
		o.Read = func(h http.Handler) http.Handler { return h }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "remediator",
		Description: "Heals what Alertmanager reports, with playbooks of verified steps",
		Version:     o.Version,
		Profiling:   "false",
		Links: []web.LandingLinks{
			{Address: "heals", Text: "Heal history", Description: "recent heals, their steps, evidence and outcomes"},
			{Address: "metrics", Text: "Metrics", Description: "the remediator's own metrics"},
			{Address: "api/v1/targets", Text: "Targets", Description: "JSON API: targets and their state"},
			{Address: "api/v1/heals", Text: "Heals", Description: "JSON API: the heal history"},
			{Address: "-/healthy", Text: "Health", Description: "liveness"},
			{Address: "-/ready", Text: "Readiness", Description: "ready once the state is recovered"},
		},
		ExtraHTML: `<div>Documentation: <a href="` + DocsURL + `">configuration, API and runbooks</a></div>`,
	})
	if err != nil {
		return fmt.Errorf("landing page: %w", err)
	}
	mux.Handle("GET /{$}", landing)
	mux.Handle("GET /heals", o.Read(&healsPage{heals: o.Heals, logger: o.Logger}))
	return nil
}

//go:embed templates/*.html
var templates embed.FS

var healsTemplate = template.Must(template.New("heals.html").Funcs(template.FuncMap{
	"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"took":      took,
	"lastLines": lastLines,
}).ParseFS(templates, "templates/heals.html"))

// Results a heal can end with, offered by the result filter; "relapsed" picks the healed heals
// whose alert came back.
var Results = []string{
	store.HealHealed, store.HealFailed, store.HealRunning, store.HealInterrupted, store.HealDryRun,
	store.HealRestartedOutside, store.HealResolved, Relapsed,
}

// Relapsed is the result filter for heals whose alert came back after they healed.
const Relapsed = "relapsed"

type healsPage struct {
	heals  HealLister
	logger *slog.Logger
}

type pageData struct {
	Target, Result string
	Limit          int
	Results        []string
	Heals          []store.Heal
	// Scanned is how many heals the filter looked through; More says there may be older ones.
	Scanned int
	More    bool
	Error   string
}

func (p *healsPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := pageData{Target: strings.TrimSpace(q.Get("target")), Result: q.Get("result"), Limit: DefaultLimit, Results: Results}
	status := http.StatusOK
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxLimit {
			status, d.Error = http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d", MaxLimit)
		} else {
			d.Limit = n
		}
	}
	if d.Result != "" && !slices.Contains(Results, d.Result) {
		status, d.Error = http.StatusBadRequest, fmt.Sprintf("unknown result %q: choose one of %s", d.Result, strings.Join(Results, ", "))
	}
	if d.Error == "" {
		scan := d.Limit
		if d.Result != "" {
			scan = d.Limit * scanFactor
		}
		hs, err := p.heals.Heals(store.HealFilter{Target: d.Target, Limit: scan})
		if err != nil {
			p.logger.Error("reading heal history for the page", "err", err)
			status, d.Error = http.StatusInternalServerError, "reading the heal history failed: "+err.Error()
		}
		d.Scanned, d.More = len(hs), len(hs) == scan
		for _, h := range hs {
			if len(d.Heals) < d.Limit && matchResult(h, d.Result) {
				d.Heals = append(d.Heals, h)
			}
		}
	}
	var buf bytes.Buffer
	if err := healsTemplate.Execute(&buf, d); err != nil {
		p.logger.Error("rendering the heal history page", "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func matchResult(h store.Heal, result string) bool {
	switch result {
	case "":
		return true
	case Relapsed:
		return h.Relapse != nil
	default:
		return h.Result == result
	}
}

func took(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return ""
	}
	return end.Sub(start).Round(time.Millisecond).String()
}

// evidenceLines is how much of a step's log the page shows; the API has all of it.
const evidenceLines = 20

func lastLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > evidenceLines {
		lines = lines[len(lines)-evidenceLines:]
	}
	return strings.Join(lines, "\n")
}
