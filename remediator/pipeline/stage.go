package pipeline

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/config"
)

// decision carries one accepted alert through the stages.
type decision struct {
	// inboxKey is the accepted alert's inbox entry, removed when the decision closes.
	inboxKey string
	alert    template.Alert
	episode  string
	playbook *config.Playbook
	target   string
	now      time.Time
	// dryRun is set by the guards when the global or playbook dry-run is on.
	dryRun bool
	// resolved is closed when the alert resolves while its heal waits or runs (see job); a
	// wait step stops at it.
	resolved chan struct{}
	// blockedBy is the suppression reason that holds the decision back while it is parked, so
	// each new reason is counted once, not on every re-evaluation.
	blockedBy string
	// stored says that the alert's generator URL, labels and annotations were left out of it
	// while the decision is parked: the store's held-back record of the target has them (see
	// shed).
	stored bool
	// startPending is set while the heal's start is not yet written (see writeHeal).
	startPending bool
	// ap is the heal's approval progress (see approval.go).
	ap approvalState
}

// shed drops the alert's generator URL, labels and annotations once the held-back record that
// holds them is queued for the store: every target may hold a parked decision, and those maps
// with their separately allocated strings were a fifth of the heap with 100,000 targets.
// Deciding again (the gates) does not read them; unpark reads them back before the decision
// goes on.
func (d *decision) shed() {
	d.alert.GeneratorURL, d.alert.Labels, d.alert.Annotations = "", nil, nil
	d.stored = true
}

// verdict is a stage's answer: go on (zero value) or stop with an outcome.
type verdict struct {
	stop bool
	// outcome is one of the outcome constants below.
	outcome string
	// reason is the suppression reason (remediator_heals_suppressed_total) or a text for logs.
	reason string
	detail string
	// stage names the stage that stopped the decision (set by runStages).
	stage string
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

// stage is one step of the decision about an alert: it lets the decision go on or stops it, and
// may note on d what it found (the playbook, the target, dry run). A stage holds only what it
// was built with (see buildStages); its phase says whether it may block (beforeAct) or must not.
type stage interface {
	decide(ctx context.Context, d *decision) verdict
}
