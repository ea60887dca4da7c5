package pipeline

import (
	"strconv"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// decision carries one accepted alert through the stages.
type decision struct {
	entry    store.InboxEntry
	alert    template.Alert
	episode  string
	playbook *config.Playbook
	target   string
	now      time.Time
	// dryRun is set by the guards when the global or playbook dry-run is on.
	dryRun bool
	// blockedBy is the suppression reason that holds the decision back while it is parked, so
	// each new reason is counted once, not on every re-evaluation.
	blockedBy string
}

// verdict is a stage's answer: go on (zero value) or stop with an outcome.
type verdict struct {
	stop bool
	// outcome is one of the outcome constants below.
	outcome string
	// reason is the suppression reason (remediator_heals_suppressed_total) or a text for logs.
	reason string
	detail string
}

const (
	outcomeDeduplicated = "deduplicated"
	outcomeUnmatched    = "unmatched"
	outcomeSuppressed   = "suppressed"
	outcomeResolved     = "resolved"
)

func proceed() verdict { return verdict{} }

func suppress(reason, detail string) verdict {
	return verdict{stop: true, outcome: outcomeSuppressed, reason: reason, detail: detail}
}

// stage is one step of the decision. Decide is called with the pipeline's lock held and must
// not block on anything slow (no network).
type stage interface {
	name() string
	decide(p *Pipeline, d *decision) verdict
}

func itoa(i int) string { return strconv.Itoa(i) }

func templateData(d *decision) config.TemplateData {
	return config.TemplateData{
		Labels:      d.alert.Labels,
		Annotations: d.alert.Annotations,
		Target:      d.target,
		Playbook:    d.playbook.Name,
	}
}
