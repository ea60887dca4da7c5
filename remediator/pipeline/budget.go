package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// budget allows at most N heals of a target per window. A spent budget suspends the target:
// nothing is done for it until a person resets it or the window moves on. This is what stops an
// endless heal loop on something a restart cannot fix.
type budget struct{ targets targetSet }

func newBudget(targets targetSet) budget { return budget{targets: targets} }

func (s budget) decide(_ context.Context, d *decision) verdict {
	t := s.targets.get(d.target)
	used, left := budgetUse(t, d.playbook.Budget, d.now)
	if left == 0 {
		t.Suspended = true
		return suppress(ReasonBudget, fmt.Sprintf("budget spent: %d heals in %s", used, time.Duration(d.playbook.Budget.Window)))
	}
	return proceed()
}

// budgetLeft is budgetUse's attempts left, without changing the target (for the gauges).
func budgetLeft(t *store.Target, b config.Budget, now time.Time) int {
	if b.Attempts <= 0 {
		return -1
	}
	used := len(t.Attempts)
	if b.Window > 0 {
		used = 0
		for _, a := range t.Attempts {
			if now.Sub(a) < time.Duration(b.Window) {
				used++
			}
		}
	}
	return max(b.Attempts-used, 0)
}

// budgetUse drops attempts older than the window and returns attempts used and left (-1:
// unlimited). It lifts a suspension once the window has moved on, but never sets one: a target
// is suspended only when a heal is wanted and refused (the budget stage) or its last allowed
// heal failed (record), so a person is not paged while that last attempt is still running.
func budgetUse(t *store.Target, b config.Budget, now time.Time) (used, left int) {
	if b.Window > 0 {
		kept := t.Attempts[:0]
		for _, a := range t.Attempts {
			if now.Sub(a) < time.Duration(b.Window) {
				kept = append(kept, a)
			}
		}
		t.Attempts = kept
	}
	used = len(t.Attempts)
	if b.Attempts <= 0 {
		t.Suspended = false
		return used, -1
	}
	left = max(b.Attempts-used, 0)
	if left > 0 {
		t.Suspended = false
	}
	return used, left
}
