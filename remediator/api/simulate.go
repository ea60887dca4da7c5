package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

// Simulator says what the remediator would do now with alerts; the pipeline implements it.
type Simulator interface {
	Simulate(ctx context.Context, entries []store.InboxEntry) []pipeline.Simulation
}

// SimulateOptions configures POST /api/v1/simulate.
type SimulateOptions struct {
	Simulator Simulator
	// Auth and ReadAuth protect it as they protect the read endpoints: it acts on nothing.
	Auth     *intake.Auth
	ReadAuth bool
	// MaxBodyBytes bounds the notification, as on the webhook (0: 1 MiB).
	MaxBodyBytes int64
}

// RegisterSimulate adds POST /api/v1/simulate: the body is a notification as Alertmanager posts
// it to the webhook; the answer is the decision for each of its alerts, made now over the
// remediator's own state, without acting.
func RegisterSimulate(mux *http.ServeMux, o SimulateOptions) {
	h := http.Handler(simulateHandler(o))
	if o.ReadAuth {
		h = o.Auth.Require(intake.Read, h)
	}
	mux.Handle("POST /api/v1/simulate", h)
}

func simulateHandler(o SimulateOptions) http.HandlerFunc {
	limit := o.MaxBodyBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				intake.WriteError(w, http.StatusRequestEntityTooLarge, "notification larger than the webhook accepts")
				return
			}
			intake.WriteError(w, http.StatusBadRequest, "reading the notification: "+err.Error())
			return
		}
		m, err := intake.Decode(body)
		if err != nil {
			intake.WriteError(w, http.StatusBadRequest, err.Error()+" (want Alertmanager's webhook payload, version 4)")
			return
		}
		entries, errs := intake.Entries(m, time.Now())
		rejected := make([]string, len(errs))
		for i, e := range errs {
			rejected[i] = e.Error()
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"simulations": o.Simulator.Simulate(r.Context(), entries),
			// What the webhook would reject of the notification, alert by alert.
			"rejected": rejected,
		})
	}
}
