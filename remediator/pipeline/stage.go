package pipeline

import (
	"context"
	"encoding/json"
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
	// packed holds the alert's generator URL, labels and annotations while the decision is
	// parked (see pack); the alert has none of them then.
	packed []byte
	// ap is the heal's approval progress (see approval.go).
	ap approvalState
}

// parkedAlert is what pack keeps of a parked decision's alert, encoded.
type parkedAlert struct {
	GeneratorURL string      `json:"g,omitempty"`
	Labels       template.KV `json:"l"`
	Annotations  template.KV `json:"a"`
}

// pack encodes the alert's generator URL, labels and annotations while the decision is parked:
// every target may hold a parked decision, and the two decoded maps with their separately
// allocated strings are about three times the size of their JSON. Deciding again (the gates)
// does not read them; unpack restores them before the decision goes on.
func (d *decision) pack() {
	if d.packed != nil {
		return
	}
	a := &d.alert
	buf, err := json.Marshal(parkedAlert{GeneratorURL: a.GeneratorURL, Labels: a.Labels, Annotations: a.Annotations})
	if err != nil {
		return // strings always encode; should one not, the decision keeps its maps
	}
	d.packed = buf
	a.GeneratorURL, a.Labels, a.Annotations = "", nil, nil
}

// unpack undoes pack.
func (d *decision) unpack() {
	d.alert, d.packed = d.fullAlert(), nil
}

// fullAlert is the alert with what pack took out of it.
func (d *decision) fullAlert() template.Alert {
	a := d.alert
	if d.packed != nil {
		var pa parkedAlert
		_ = json.Unmarshal(d.packed, &pa) // what json.Marshal wrote always decodes
		a.GeneratorURL, a.Labels, a.Annotations = pa.GeneratorURL, pa.Labels, pa.Annotations
	}
	return a
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
