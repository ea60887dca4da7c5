package pipeline

import (
	"github.com/selfheal/selfheal/remediator/store"
)

// dedupe drops an alert whose episode is already being handled: repeat deliveries from
// Alertmanager's retries or from its HA peers, and alerts replayed after a restart whose heal
// already started (the interrupted heal was recorded; the episode gets no second action).
type dedupe struct{}

func (dedupe) name() string { return "dedupe" }

func (dedupe) decide(p *Pipeline, d *decision) verdict {
	if _, busy := p.byEpisode[d.episode]; busy {
		return verdict{stop: true, outcome: outcomeDeduplicated, detail: dedupeBusy}
	}
	if p.verifier.IsResolved(d.episode) {
		return verdict{stop: true, outcome: outcomeResolved, detail: "episode already resolved"}
	}
	ep, ok, err := p.store.Episode(d.episode)
	if err != nil {
		p.logger.Error("read episode", "episode", d.episode, "err", err)
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
