package verify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// stepClock is a fake clock whose every wait passes at once, moving its time on by the wait: a
// hold of minutes runs in microseconds, and what the querier answers depends on that time.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	c.mu.Unlock()
	return ch
}

// timeline answers queries by the hold's elapsed time: alert says what ALERTS holds for the
// alert then ("", "firing", "pending"), up whether the target's up series is there.
type timeline struct {
	clock *stepClock
	start time.Time
	alert func(elapsed time.Duration) string
	up    func(elapsed time.Duration) bool
	looks []time.Duration
}

func (tl *timeline) Query(_ context.Context, q string) (model.Vector, error) {
	el := tl.clock.Now().Sub(tl.start)
	if strings.HasPrefix(q, "ALERTS") {
		tl.looks = append(tl.looks, el)
		if st := tl.alert(el); st != "" {
			return model.Vector{&model.Sample{Metric: model.Metric{"alertname": "ServiceMemoryHigh", "container": "c1", "alertstate": model.LabelValue(st)}}}, nil
		}
		return nil, nil
	}
	if tl.up(el) {
		return model.Vector{&model.Sample{Metric: model.Metric{"__name__": "up"}, Value: 1}}, nil
	}
	return nil, nil
}

func quiet(time.Duration) string { return "" }
func always(time.Duration) bool  { return true }

// between is true from a to b (exclusive), given in seconds.
func between(a, b int) func(time.Duration) bool {
	return func(el time.Duration) bool {
		return el >= time.Duration(a)*time.Second && el < time.Duration(b)*time.Second
	}
}

func TestHold(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name  string
		alert func(time.Duration) string
		up    func(time.Duration) bool
		For   time.Duration
		// want is the error text ("" for held), took the fake time the hold took.
		want string
		took time.Duration
	}{
		{"healthy throughout", quiet, always, 20 * s, "", 20 * s},
		{"no hold still needs one healthy look", quiet, always, 0, "", 0},
		// The target's series vanishes at 10s and 15s (a restart's scrape gap): the hold starts
		// again at 20s, when it is back.
		{"scrape gap restarts the hold", quiet, func(el time.Duration) bool { return !between(10, 20)(el) }, 20 * s, "", 40 * s},
		{"series never there", quiet, func(time.Duration) bool { return false }, 20 * s, "not stable: the target was not observed healthy for 20s in a row within 50s: up == 1 returned no samples", 50 * s},
		{"alert pending again", func(el time.Duration) string {
			if el >= 10*s {
				return "pending"
			}
			return ""
		}, always, 20 * s, "flapped: alert ServiceMemoryHigh is pending again 10s into the hold", 10 * s},
		{"alert firing again", func(el time.Duration) string {
			if el >= 15*s {
				return "firing"
			}
			return ""
		}, always, 20 * s, "flapped: alert ServiceMemoryHigh is firing again 15s into the hold", 15 * s},
		// Pending from before the step (no scrape since the action yet): not healthy, no flap.
		{"still pending from before, then gone", func(el time.Duration) string {
			if el < 10*s {
				return "pending"
			}
			return ""
		}, always, 20 * s, "", 30 * s},
		{"still pending from before, then firing", func(el time.Duration) string {
			if el < 10*s {
				return "pending"
			}
			return "firing"
		}, always, 20 * s, "flapped: alert ServiceMemoryHigh is firing again 10s into the hold", 10 * s},
		{"pending throughout", func(time.Duration) string { return "pending" }, always, 20 * s,
			"not stable: the target was not observed healthy for 20s in a row within 50s: alert ServiceMemoryHigh still pending from before the hold", 50 * s},
		// Missing, then healthy only for a moment, then missing: never 20s in a row.
		{"healthy too briefly", quiet, between(5, 15), 20 * s, "not stable: the target was not observed healthy for 20s in a row within 50s: up == 1 returned no samples", 50 * s},
		{"healthy too late", quiet, between(40, 100), 20 * s, "healthy for only 10s, after up == 1 returned no samples", 50 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &stepClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			tl := &timeline{clock: clock, start: clock.now, alert: tc.alert, up: tc.up}
			err := New(tl).Hold(context.Background(), Hold{
				Alert: firingAlert, For: tc.For, Timeout: 30 * s, Interval: 5 * s, HealthyQuery: "up == 1", Clock: clock,
			})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("not held: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if took := clock.Now().Sub(tl.start); took != tc.took {
				t.Errorf("hold took %s, want %s (looks at %v)", took, tc.took, tl.looks)
			}
		})
	}
}

func TestHoldErrors(t *testing.T) {
	clock := &stepClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	down := querierFunc(func(string) (model.Vector, error) { return nil, errors.New("connection refused") })
	err := New(down).Hold(context.Background(), Hold{Alert: firingAlert, For: time.Minute, Timeout: time.Minute, Interval: 5 * time.Second, Clock: clock})
	if !errors.Is(err, ErrNotStable) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("prometheus down: %v, want not stable saying why", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	quietProm := querierFunc(func(string) (model.Vector, error) { return nil, nil })
	if err := New(quietProm).Hold(ctx, Hold{Alert: firingAlert, For: time.Minute, Clock: clock}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled hold: %v", err)
	}
}

// Without Prometheus the hold has only Alertmanager's notifications: the resolved one must have
// come, and no new firing one.
func TestHoldWithoutPrometheus(t *testing.T) {
	clock := &stepClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	v := New(nil)
	h := Hold{Alert: firingAlert, For: 20 * time.Second, Timeout: 10 * time.Second, Interval: 5 * time.Second, Clock: clock}
	if err := v.Hold(context.Background(), h); !errors.Is(err, ErrNotStable) {
		t.Fatalf("no resolved notification: %v, want not stable", err)
	}
	v.Resolved(EpisodeKey(firingAlert), clock.Now())
	if err := v.Hold(context.Background(), h); err != nil {
		t.Fatalf("resolved, nothing new: %v", err)
	}
	start, looks := clock.Now(), 0
	h.Refired = func() bool { looks++; return clock.Now().Sub(start) >= 10*time.Second }
	if err := v.Hold(context.Background(), h); !errors.Is(err, ErrFlapped) || looks != 3 {
		t.Fatalf("fired again at 10s: %v after %d looks, want flapped at the third", err, looks)
	}
}
