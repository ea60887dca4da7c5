package pipeline

import (
	"context"
	"log/slog"

	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// dedupe drops an alert whose episode is already being handled: repeat deliveries from
// Alertmanager's retries or from its HA peers, and alerts replayed after a restart whose heal
// already started (the interrupted heal was recorded; the episode gets no second action).
type dedupe struct {
	store    *store.Store
	verifier *verify.Verifier
	// handling says whether a heal for the episode is waiting or running.
	handling func(episode string) bool
	logger   *slog.Logger
}

func newDedupe(st *store.Store, v *verify.Verifier, handling func(episode string) bool, l *slog.Logger) dedupe {
	return dedupe{store: st, verifier: v, handling: handling, logger: l}
}

func (s dedupe) decide(_ context.Context, d *decision) verdict {
	if s.handling(d.episode) {
		return verdict{stop: true, outcome: outcomeDeduplicated, detail: dedupeBusy}
	}
	if s.verifier.IsResolved(d.episode) {
		return verdict{stop: true, outcome: outcomeResolved, detail: "episode already resolved"}
	}
	ep, ok, err := s.store.Episode(d.episode)
	if err != nil {
		s.logger.Error("read episode", "episode", d.episode, "err", err)
		return proceed()
	}
	// Done and suppressed episodes are decided anew: this entry is a later delivery (an
	// Alertmanager repeat) that meets the cooldown and the budget. Acting means a heal started
	// for it before a restart; resolved ends it.
	if ok && (ep.State == store.EpisodeActing || ep.State == store.EpisodeResolved) {
		return verdict{stop: true, outcome: outcomeDeduplicated, detail: "episode is " + ep.State}
	}
	return proceed()
}
