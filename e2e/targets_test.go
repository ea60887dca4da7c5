package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// targetView is one entry of the remediator's GET /api/v1/targets.
type targetView struct {
	Name          string     `json:"name"`
	State         string     `json:"state"`
	AttemptsUsed  int        `json:"attempts_used"`
	AttemptsLeft  *int       `json:"attempts_left"`
	Suspended     bool       `json:"suspended"`
	CooldownUntil *time.Time `json:"cooldown_until"`
	Paused        bool       `json:"paused"`
	Firing        []string   `json:"firing"`
}

// targetWatch polls the remediator's targets: the first moment a target shows a firing alert is
// when the remediator demonstrably received the webhook.
type targetWatch struct {
	mu      sync.Mutex
	changes map[string][]targetChange
}

type targetChange struct {
	At     time.Time
	State  string
	Firing int
}

func decodeTargets(b []byte) ([]targetView, error) {
	var ts []targetView
	if err := json.Unmarshal(b, &ts); err == nil {
		return ts, nil
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, err
	}
	for _, k := range []string{"targets", "data", "items"} {
		if raw, ok := env[k]; ok {
			err := json.Unmarshal(raw, &ts)
			return ts, err
		}
	}
	return nil, nil
}

func fetchTargets(ctx context.Context, base string) ([]targetView, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/targets", nil)
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, &httpError{resp.Status, string(b)}
	}
	return decodeTargets(b)
}

type httpError struct{ status, body string }

func (e *httpError) Error() string { return e.status + ": " + e.body }

func watchTargets(t *testing.T, base string) *targetWatch {
	w := &targetWatch{changes: map[string][]targetChange{}}
	watch(t, func(ctx context.Context) {
		ts, err := fetchTargets(ctx, base)
		if err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, tv := range ts {
			ch := w.changes[tv.Name]
			if n := len(ch); n == 0 || ch[n-1].State != tv.State || ch[n-1].Firing != len(tv.Firing) {
				w.changes[tv.Name] = append(ch, targetChange{At: now, State: tv.State, Firing: len(tv.Firing)})
			}
		}
	})
	return w
}

// firstFiring returns the first moment after since that the remediator showed target with a
// firing alert.
func (w *targetWatch) firstFiring(target string, since time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.changes[target] {
		if !c.At.Before(since) && c.Firing > 0 {
			return c.At
		}
	}
	return time.Time{}
}

// target returns the remediator's current view of one target.
func (s *stack) target(t *testing.T, name string) (targetView, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ts, err := fetchTargets(ctx, s.remURL)
	if err != nil {
		t.Fatalf("GET /api/v1/targets: %v", err)
	}
	for _, tv := range ts {
		if tv.Name == name {
			return tv, true
		}
	}
	return targetView{}, false
}
