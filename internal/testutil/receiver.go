package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Notification is the part of an Alertmanager webhook notification that tests read, with when
// it arrived and the Authorization header it came with.
type Notification struct {
	Receiver string          `json:"receiver"`
	Status   string          `json:"status"`
	Alerts   []NotifiedAlert `json:"alerts"`

	At            time.Time `json:"-"`
	Authorization string    `json:"-"`
}

// NotifiedAlert is one alert of a Notification.
type NotifiedAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Receiver stands in for a webhook receiver of Alertmanager (the remediator, a human's pager)
// and keeps every notification it is sent. A body that is no notification is answered 400 and
// reported when a wait fails.
type Receiver struct {
	URL string

	mu   sync.Mutex
	got  []Notification
	errs []string
}

// StartReceiver serves a Receiver on a loopback port until the test ends.
func StartReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		var n Notification
		if err := json.Unmarshal(body, &n); err != nil {
			r.errs = append(r.errs, fmt.Sprintf("undecodable notification: %v: %s", err, body))
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.At = time.Now()
		n.Authorization = req.Header.Get("Authorization")
		r.got = append(r.got, n)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Notifications returns what the receiver was sent so far, oldest first.
func (r *Receiver) Notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.got...)
}

// WaitFor returns the first notification that satisfies ok, or fails the test after timeout
// with what was sent instead.
func (r *Receiver) WaitFor(t testing.TB, what string, timeout time.Duration, ok func(Notification) bool) Notification {
	t.Helper()
	var found Notification
	if Poll(timeout, 100*time.Millisecond, func() bool {
		for _, n := range r.Notifications() {
			if ok(n) {
				found = n
				return true
			}
		}
		return false
	}) {
		return found
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no notification %s within %s; got %+v; errors %v", what, timeout, r.got, r.errs)
	return Notification{}
}

// FirstFiring returns the first notification holding a firing alert whose labels include match.
func (r *Receiver) FirstFiring(match map[string]string) (Notification, bool) {
	n, _, ok := r.firstFiring(match)
	return n, ok
}

// FiringAlert returns the first firing alert sent whose labels include match, and when it came.
func (r *Receiver) FiringAlert(match map[string]string) (time.Time, NotifiedAlert, bool) {
	n, a, ok := r.firstFiring(match)
	return n.At, a, ok
}

func (r *Receiver) firstFiring(match map[string]string) (Notification, NotifiedAlert, bool) {
	for _, n := range r.Notifications() {
		if a, ok := n.firing(match); ok {
			return n, a, true
		}
	}
	return Notification{}, NotifiedAlert{}, false
}

// FiringSince returns, oldest first, the notifications to receiver that arrived at or after
// since and hold a firing alert whose labels include match.
func (r *Receiver) FiringSince(since time.Time, receiver string, match map[string]string) []Notification {
	var out []Notification
	for _, n := range r.Notifications() {
		if _, ok := n.firing(match); ok && n.Receiver == receiver && !n.At.Before(since) {
			out = append(out, n)
		}
	}
	return out
}

// firing returns the notification's first firing alert whose labels include match.
func (n Notification) firing(match map[string]string) (NotifiedAlert, bool) {
alerts:
	for _, a := range n.Alerts {
		if a.Status != "firing" {
			continue
		}
		for k, v := range match {
			if a.Labels[k] != v {
				continue alerts
			}
		}
		return a, true
	}
	return NotifiedAlert{}, false
}
