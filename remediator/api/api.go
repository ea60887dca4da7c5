// Package api serves the remediator's JSON API under /api/v1/: targets and their state, the heal
// history, and the manual overrides (pause, resume, reset a spent budget).
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

// Controller is what the API reads and changes; the pipeline implements it.
type Controller interface {
	Targets() []pipeline.TargetView
	Heals(store.HealFilter) ([]store.Heal, error)
	Heal(id string) (store.Heal, bool, error)
	Pause(target string, d time.Duration, reason string) error
	Resume(target string) error
	Reset(target string) error
}

// Options configures the API.
type Options struct {
	Controller Controller
	// Auth protects the write endpoints, and the read endpoints too when ReadAuth is set.
	Auth     *intake.Auth
	ReadAuth bool
}

// Register adds the API's routes to mux.
func Register(mux *http.ServeMux, o Options) {
	a := &api{c: o.Controller}
	read := func(h http.HandlerFunc) http.Handler {
		if o.ReadAuth {
			return o.Auth.Require(h)
		}
		return h
	}
	mux.Handle("GET /api/v1/targets", read(a.targets))
	mux.Handle("GET /api/v1/heals", read(a.heals))
	// One heal: the link in the remediator's silences and alerts at Alertmanager.
	mux.Handle("GET /api/v1/heals/{id}", read(a.heal))
	mux.Handle("POST /api/v1/pause", o.Auth.Require(http.HandlerFunc(a.pause)))
	mux.Handle("POST /api/v1/resume", o.Auth.Require(http.HandlerFunc(a.resume)))
	mux.Handle("POST /api/v1/targets/{target}/reset", o.Auth.Require(http.HandlerFunc(a.reset)))
}

type api struct{ c Controller }

func (a *api) targets(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"targets": a.c.Targets()})
}

func (a *api) heals(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.HealFilter{Target: q.Get("target"), Playbook: q.Get("playbook")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			intake.WriteError(w, http.StatusBadRequest, "limit must be a number from 1 to 10000")
			return
		}
		f.Limit = n
	}
	hs, err := a.c.Heals(f)
	if err != nil {
		intake.WriteError(w, http.StatusInternalServerError, "reading heal history: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"heals": hs})
}

func (a *api) heal(w http.ResponseWriter, r *http.Request) {
	h, ok, err := a.c.Heal(r.PathValue("id"))
	switch {
	case err != nil:
		intake.WriteError(w, http.StatusInternalServerError, "reading heal history: "+err.Error())
	case !ok:
		intake.WriteError(w, http.StatusNotFound, "no heal with this id (the history keeps heals for history_max_age)")
	default:
		writeJSON(w, http.StatusOK, h)
	}
}

// override is the body of pause and resume; every field is optional.
type override struct {
	Target   string `json:"target"`
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

func readOverride(w http.ResponseWriter, r *http.Request) (override, time.Duration, bool) {
	var o override
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		intake.WriteError(w, http.StatusRequestEntityTooLarge, "body too large")
		return o, 0, false
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			intake.WriteError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
			return o, 0, false
		}
	}
	var d time.Duration
	if o.Duration != "" {
		md, err := model.ParseDuration(o.Duration)
		if err != nil || md <= 0 {
			intake.WriteError(w, http.StatusBadRequest, "duration must be a positive duration such as \"10m\" or \"2h\"")
			return o, 0, false
		}
		d = time.Duration(md)
	}
	return o, d, true
}

func (a *api) pause(w http.ResponseWriter, r *http.Request) {
	o, d, ok := readOverride(w, r)
	if !ok {
		return
	}
	if err := a.c.Pause(o.Target, d, o.Reason); err != nil {
		intake.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	res := map[string]any{"status": "paused", "target": o.Target}
	if d > 0 {
		res["until"] = time.Now().Add(d).UTC()
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *api) resume(w http.ResponseWriter, r *http.Request) {
	o, _, ok := readOverride(w, r)
	if !ok {
		return
	}
	if err := a.c.Resume(o.Target); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "resumed", "target": o.Target})
}

func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("target")
	if err := a.c.Reset(target); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "reset", "target": target})
}

func writeErr(w http.ResponseWriter, err error) {
	if errors.Is(err, pipeline.ErrUnknownTarget) {
		intake.WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	intake.WriteError(w, http.StatusInternalServerError, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
