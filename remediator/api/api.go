// Package api serves the remediator's JSON API under /api/v1/: targets and their state, the heal
// history, the manual overrides (pause, resume, reset a spent budget) with who made them, and
// the answers to heals awaiting approval.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

// Controller is what the API reads and changes; the pipeline implements it.
type Controller interface {
	TargetList(pipeline.TargetPage) pipeline.TargetList
	Heals(store.HealFilter) ([]store.Heal, error)
	// Heal is one heal by ID; false when there is none.
	Heal(id string) (store.Heal, bool, error)
	// Awaiting is what the heal awaits, nil when it awaits no approval.
	Awaiting(healID string) *pipeline.AwaitingApproval
	History(target string, all bool, limit int) ([]store.Override, error)
	PauseBy(actor, target string, d time.Duration, reason string) error
	ResumeBy(actor, target string) error
	ResetBy(actor, target string) error
	Approve(healID, by, comment string) error
	Reject(healID, by, comment string) error
}

// Options configures the API.
type Options struct {
	Controller Controller
	// Auth protects the write endpoints (operator role), and the read endpoints too (reader or
	// operator role) when ReadAuth is set.
	Auth     *intake.Auth
	ReadAuth bool
	// Logger logs every write with its actor.
	Logger *slog.Logger
}

// Register adds the API's routes to mux.
func Register(mux *http.ServeMux, o Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{c: o.Controller, logger: o.Logger}
	read := func(h http.HandlerFunc) http.Handler {
		if o.ReadAuth {
			return o.Auth.Require(intake.Read, h)
		}
		return h
	}
	write := func(h http.HandlerFunc) http.Handler { return o.Auth.Require(intake.Operate, h) }
	mux.Handle("GET /api/v1/targets", read(a.targets))
	mux.Handle("GET /api/v1/heals", read(a.heals))
	mux.Handle("GET /api/v1/heals/{id}", read(a.heal))
	mux.Handle("GET /api/v1/history", read(a.history))
	mux.Handle("POST /api/v1/pause", write(a.pause))
	mux.Handle("POST /api/v1/resume", write(a.resume))
	mux.Handle("POST /api/v1/targets/{target}/reset", write(a.reset))
	mux.Handle("POST /api/v1/heals/{id}/approve", write(a.approve))
	mux.Handle("POST /api/v1/heals/{id}/reject", write(a.reject))
}

type api struct {
	c      Controller
	logger *slog.Logger
}

// written logs a write through the API with who made it.
func (a *api) written(r *http.Request, action string, kv ...any) {
	actor := intake.ActorFrom(r.Context())
	a.logger.Info("api write", append([]any{"action", action, "actor", actor.Name, "role", string(actor.Role)}, kv...)...)
}

// DefaultTargetLimit is how many targets GET /api/v1/targets lists unless asked otherwise: a
// large fleet is summed up (total, states, firing) and paged, so that the answer stays small;
// all=true lists every target.
const DefaultTargetLimit = 1000

func (a *api) targets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := pipeline.TargetPage{After: q.Get("after"), Limit: DefaultTargetLimit}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			intake.WriteError(w, http.StatusBadRequest, "limit must be a number from 1 to 10000")
			return
		}
		page.Limit = n
	}
	switch q.Get("all") {
	case "", "false":
	case "true":
		if q.Get("limit") != "" {
			intake.WriteError(w, http.StatusBadRequest, "all=true lists every target: leave out limit")
			return
		}
		page.Limit = 0
	default:
		intake.WriteError(w, http.StatusBadRequest, "all must be true or false")
		return
	}
	writeJSON(w, http.StatusOK, a.c.TargetList(page))
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
	for i := range hs {
		withoutLogs(&hs[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"heals": hs})
}

// heal shows one heal whole: with the evidence its steps collected, logs included.
func (a *api) heal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		intake.WriteError(w, http.StatusBadRequest, "heal id must be a number, as in the heal list")
		return
	}
	h, ok, err := a.c.Heal(id)
	switch {
	case err != nil:
		intake.WriteError(w, http.StatusInternalServerError, "reading heal "+id+": "+err.Error())
	case !ok:
		intake.WriteError(w, http.StatusNotFound, "no heal "+id+" in the history (it may have been pruned)")
	default:
		writeJSON(w, http.StatusOK, pipeline.HealView{Heal: h, AwaitingApproval: a.c.Awaiting(id)})
	}
}

// withoutLogs leaves the evidence logs out of a heal in a list: up to 64 KiB per step, times a
// history of heals, is not a list. GET /api/v1/heals/{id} has them. The heal's own steps are
// left as they were.
func withoutLogs(h *store.Heal) {
	h.Steps = slices.Clone(h.Steps)
	for i := range h.Steps {
		if ev := h.Steps[i].Evidence; ev != nil && ev.Log != "" {
			short := *ev
			short.Log = ""
			h.Steps[i].Evidence = &short
		}
	}
}

// history lists the overrides of ?target= ("" for the global pause), or of all without it.
func (a *api) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.OverridesKept {
			intake.WriteError(w, http.StatusBadRequest, "limit must be a number from 1 to "+strconv.Itoa(store.OverridesKept))
			return
		}
		limit = n
	}
	_, one := q["target"]
	hs, err := a.c.History(q.Get("target"), !one, limit)
	if err != nil {
		intake.WriteError(w, http.StatusInternalServerError, "reading the override history: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"history": hs})
}

// answerBody is the optional body of approve and reject.
type answerBody struct {
	Comment string `json:"comment"`
}

func (a *api) approve(w http.ResponseWriter, r *http.Request) {
	a.answer(w, r, "approved", a.c.Approve)
}
func (a *api) reject(w http.ResponseWriter, r *http.Request) { a.answer(w, r, "rejected", a.c.Reject) }

func (a *api) answer(w http.ResponseWriter, r *http.Request, status string, fn func(id, by, comment string) error) {
	var b answerBody
	if !readBody(w, r, &b) {
		return
	}
	id, actor := r.PathValue("id"), intake.ActorFrom(r.Context())
	if err := fn(id, actor.Name, b.Comment); err != nil {
		writeErr(w, err)
		return
	}
	a.written(r, status, "heal", id, "comment", b.Comment)
	writeJSON(w, http.StatusOK, map[string]any{"status": status, "heal": id, "by": actor.Name})
}

// override is the body of pause and resume; every field is optional.
type override struct {
	Target   string `json:"target"`
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

// readBody decodes an optional JSON body strictly into v; false means the answer is written.
func readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		intake.WriteError(w, http.StatusRequestEntityTooLarge, "body too large")
		return false
	}
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			intake.WriteError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
			return false
		}
	}
	return true
}

func readOverride(w http.ResponseWriter, r *http.Request) (override, time.Duration, bool) {
	var o override
	if !readBody(w, r, &o) {
		return o, 0, false
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
	if err := a.c.PauseBy(intake.ActorFrom(r.Context()).Name, o.Target, d, o.Reason); err != nil {
		intake.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.written(r, "pause", "target", o.Target, "duration", d, "reason", o.Reason)
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
	if err := a.c.ResumeBy(intake.ActorFrom(r.Context()).Name, o.Target); err != nil {
		writeErr(w, err)
		return
	}
	a.written(r, "resume", "target", o.Target)
	writeJSON(w, http.StatusOK, map[string]any{"status": "resumed", "target": o.Target})
}

func (a *api) reset(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("target")
	if err := a.c.ResetBy(intake.ActorFrom(r.Context()).Name, target); err != nil {
		writeErr(w, err)
		return
	}
	a.written(r, "reset", "target", target)
	writeJSON(w, http.StatusOK, map[string]any{"status": "reset", "target": target})
}

func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, pipeline.ErrUnknownTarget), errors.Is(err, pipeline.ErrUnknownHeal):
		intake.WriteError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, pipeline.ErrNotAwaiting):
		intake.WriteError(w, http.StatusConflict, err.Error())
		return
	}
	intake.WriteError(w, http.StatusInternalServerError, err.Error())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
