package pipeline

import (
	"context"
	"time"
)

// job is a decided heal waiting for its turn or running.
type job struct {
	d *decision
	// resolved is set (under the pipeline lock) when the alert resolved: a waiting job is
	// dropped, a running one stops at its next wait or between steps; d.resolved is closed then.
	resolved bool
	// rateLimited is set once this job was held back by the global rate limit, so it is counted
	// once.
	rateLimited bool
}

// serialize queues decided heals: at most max_concurrent_heals in flight, at most one per
// target, and heal starts limited by the global rate limit. Waiting work is coalesced per target
// (a newer alert replaces the older waiting one), so the queue is bounded by the number of
// targets, however many notifications arrive.
func (p *Pipeline) enqueue(d *decision) {
	d.resolved = make(chan struct{})
	j := &job{d: d}
	if old, ok := p.waiting[d.target]; ok {
		delete(p.byEpisode, old.d.episode)
		p.m.alerts.WithLabelValues(outcomeDeduplicated).Inc()
		p.closeDecision(old.d, outcomeDeduplicated, superseded)
	} else {
		p.waitOrder = append(p.waitOrder, d.target)
	}
	p.waiting[d.target] = j
	p.byEpisode[d.episode] = j
	p.m.waiting.Set(float64(len(p.waiting)))
	p.kickDispatcher()
}

func (p *Pipeline) kickDispatcher() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// dispatch starts waiting heals while there is room; it runs in its own goroutine.
func (p *Pipeline) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wake := p.startWaiting(ctx)
		if wake > 0 {
			timer.Reset(wake)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

// startWaiting starts what it may and returns when to look again for rate-limited work (0: on
// the next kick).
func (p *Pipeline) startWaiting(ctx context.Context) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.flushWrites()
	for len(p.inFlight) < p.maxConcurrent() {
		idx := -1
		for i, target := range p.waitOrder {
			if _, busy := p.inFlight[target]; !busy {
				idx = i
				break
			}
		}
		if idx < 0 {
			return 0
		}
		target := p.waitOrder[idx]
		j := p.waiting[target]
		now := p.now()
		j.d.now = now
		// The world may have changed while the job waited (a heal of the same target ended and
		// started its cooldown, the budget ran out, someone paused): decide again.
		if v := p.gate(ctx, j.d); v.stop {
			p.removeWaiting(idx)
			p.finishDecision(j.d, v)
			continue
		}
		if !j.d.dryRun {
			r := p.limiter.ReserveN(now, 1)
			if delay := r.DelayFrom(now); delay > 0 {
				r.CancelAt(now)
				if !j.rateLimited {
					j.rateLimited = true
					p.m.deferred.WithLabelValues(ReasonRateLimit).Inc()
				}
				return delay
			}
			p.noteHealStart(now)
		}
		p.removeWaiting(idx)
		p.inFlight[target] = j
		p.m.inFlight.Set(float64(len(p.inFlight)))
		p.publish(p.target(target))
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.heal(ctx, j)
		}()
	}
	return 0
}

func (p *Pipeline) removeWaiting(idx int) {
	target := p.waitOrder[idx]
	p.waitOrder = append(p.waitOrder[:idx], p.waitOrder[idx+1:]...)
	delete(p.waiting, target)
	p.m.waiting.Set(float64(len(p.waiting)))
}

// dropWaitingEpisode removes a waiting job whose alert resolved.
func (p *Pipeline) dropWaitingEpisode(episode string) *job {
	j, ok := p.byEpisode[episode]
	if !ok {
		return nil
	}
	if !j.resolved {
		j.resolved = true
		close(j.d.resolved)
	}
	for i, target := range p.waitOrder {
		if p.waiting[target] == j {
			p.removeWaiting(i)
			delete(p.byEpisode, episode)
			return j
		}
	}
	return nil // running: it stops at its next wait or before its next step
}
