package pipeline

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// cooldown spaces heals of one target. The pause after a heal grows with consecutive heals and
// resets once the target stayed healthy for reset_after, the way Kubernetes resets a
// CrashLoopBackOff.
type cooldown struct{ targets targetSet }

func newCooldown(targets targetSet) cooldown { return cooldown{targets: targets} }

func (s cooldown) decide(_ context.Context, d *decision) verdict {
	t := s.targets.get(d.target)
	resetCooldownIfHealthy(t, d.playbook.Cooldown, d.now)
	if d.now.Before(t.CooldownUntil) {
		return suppress(ReasonCooldown, fmt.Sprintf("cooldown until %s", t.CooldownUntil.UTC().Format(time.RFC3339)))
	}
	return proceed()
}

func resetCooldownIfHealthy(t *store.Target, c config.Cooldown, now time.Time) {
	if t.Consecutive > 0 && t.Firing.Len() == 0 && !t.HealthySince.IsZero() &&
		now.Sub(t.HealthySince) >= time.Duration(c.ResetAfter) {
		t.Consecutive = 0
	}
}

// cooldownAfter is the cooldown following the n-th consecutive heal (n >= 1).
func cooldownAfter(c config.Cooldown, n int) time.Duration {
	if c.Initial <= 0 || n < 1 {
		return 0
	}
	f := c.Factor
	if f < 1 {
		f = 1
	}
	d := float64(c.Initial) * math.Pow(f, float64(n-1))
	if c.Max > 0 && d > float64(c.Max) {
		return time.Duration(c.Max)
	}
	if d > float64(math.MaxInt64/2) {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(d)
}

// startCooldown records that a heal of t ended at end.
func startCooldown(t *store.Target, c config.Cooldown, end time.Time) {
	t.Consecutive++
	t.CooldownUntil = end.Add(cooldownAfter(c, t.Consecutive))
}
