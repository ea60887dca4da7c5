package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/store"
)

// guards stops heals that must not run now: a global or per-target pause, too many of the
// playbook's targets failing at once (a shared cause), and time windows. It also marks dry-run
// decisions. PromQL preconditions need the network, so they are a stage of their own that runs
// in the heal's goroutine, just before acting (see preconditions).
type guards struct {
	// global is the pipeline's global pause, which Pause and Resume change in place.
	global  *store.Pause
	targets targetSet
	blast   blastMemory
	// dryRun is the global dry_run setting.
	dryRun bool
}

func newGuards(global *store.Pause, targets targetSet, blast blastMemory, dryRun bool) guards {
	return guards{global: global, targets: targets, blast: blast, dryRun: dryRun}
}

func (s guards) decide(_ context.Context, d *decision) verdict {
	if s.global.In(d.now) {
		return suppress(ReasonPaused, "healing is paused globally")
	}
	if t := s.targets[d.target]; t != nil && t.Pause.In(d.now) {
		return suppress(ReasonPaused, "target is paused")
	}
	if !d.playbook.InTimeWindow(d.now) {
		return suppress(ReasonTimeWindow, "outside the playbook's time windows")
	}
	if v := blastRadius(s.blast, d); v.stop {
		return v
	}
	d.dryRun = s.dryRun || d.playbook.DryRun
	return proceed()
}

// blastRadius counts the playbook's targets with an alert received inside the window.
func blastRadius(blast blastMemory, d *decision) verdict {
	br := d.playbook.BlastRadius
	if br.MaxTargets <= 0 && br.MaxRatio <= 0 {
		return proceed()
	}
	window := time.Duration(br.Window)
	if window <= 0 {
		window = time.Duration(config.DefaultDefaults().BlastRadius.Window)
	}
	seen := blast[d.playbook.Name]
	failing := 0
	for _, at := range seen {
		if d.now.Sub(at) <= window {
			failing++
		}
	}
	if br.MaxTargets > 0 && failing > br.MaxTargets {
		return suppress(ReasonBlastRadius, fmt.Sprintf("%d targets of playbook %s failing at once (max %d)", failing, d.playbook.Name, br.MaxTargets))
	}
	// A ratio over two or three targets says little (two of two failing is common and
	// independent); it only counts from minRatioTargets failing targets on.
	if br.MaxRatio > 0 && failing >= minRatioTargets {
		ratio := float64(failing) / float64(len(seen))
		if ratio > br.MaxRatio {
			return suppress(ReasonBlastRadius, fmt.Sprintf("%.0f%% of playbook %s's targets failing at once (max %.0f%%)", ratio*100, d.playbook.Name, br.MaxRatio*100))
		}
	}
	return proceed()
}

// minRatioTargets is the number of failing targets from which blast_radius.max_ratio applies.
const minRatioTargets = 3
