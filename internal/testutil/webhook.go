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

// Notification is what a webhook receiver of Alertmanager is sent (payload version 4), the
// part tests read, with when it arrived and its Authorization header.
type Notification struct {
	At            time.Time       `json:"-"`
	Authorization string          `json:"-"`
	Receiver      string          `json:"receiver"`
	Status        string          `json:"status"`
	Alerts        []NotifiedAlert `json:"alerts"`
}

// NotifiedAlert is one alert of a Notification.
type NotifiedAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// WebhookReceiver stands in for a webhook receiver of Alertmanager (the remediator, a person's
// pager, a chat channel) and keeps every notification it is sent. It stops with the test.
type WebhookReceiver struct {
	URL  string
	mu   sync.Mutex
	got  []Notification
	errs []string
}

// NewWebhookReceiver starts a receiver on a loopback port.
func NewWebhookReceiver(t testing.TB) *WebhookReceiver {
	r := &WebhookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var n Notification
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := json.Unmarshal(body, &n); err != nil {
			r.errs = append(r.errs, fmt.Sprintf("undecodable notification: %v: %s", err, body))
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.At, n.Authorization = time.Now(), req.Header.Get("Authorization")
		r.got = append(r.got, n)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Notifications are the notifications received so far, oldest first.
func (r *WebhookReceiver) Notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.got...)
}

// WaitFor returns the first notification that satisfies ok, or fails the test after timeout.
func (r *WebhookReceiver) WaitFor(t testing.TB, what string, timeout time.Duration, ok func(Notification) bool) Notification {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range r.Notifications() {
			if ok(n) {
				return n
			}
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			got, errs := fmt.Sprintf("%+v", r.got), r.errs
			r.mu.Unlock()
			t.Fatalf("no notification %s within %s; got %s; errors %v", what, timeout, got, errs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FirstFiring returns the first firing alert sent whose labels include labels, and when.
func (r *WebhookReceiver) FirstFiring(labels map[string]string) (time.Time, NotifiedAlert, bool) {
	for _, n := range r.Notifications() {
		for _, a := range n.Alerts {
			if a.Status == "firing" && hasLabels(a.Labels, labels) {
				return n.At, a, true
			}
		}
	}
	return time.Time{}, NotifiedAlert{}, false
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
