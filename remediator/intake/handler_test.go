package intake

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/selfheal/selfheal/remediator/store"
)

const goodBody = `{"version":"4","groupKey":"{}:{alertname=\"ServiceMemoryHigh\"}","truncatedAlerts":0,"status":"firing","receiver":"remediator",
"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am",
"alerts":[{"status":"firing","labels":{"alertname":"ServiceMemoryHigh","container":"c1"},"annotations":{},
"startsAt":"2026-01-02T03:04:05Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"abc"}]}`

type sink struct{ got []store.InboxEntry }

func (s *sink) submit(e []store.InboxEntry) { s.got = append(s.got, e...) }

func newTestHandler(t *testing.T, auth *Auth) (*Handler, *sink, *prometheus.CounterVec) {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "a"}, []string{"outcome"})
	s := &sink{}
	return New(Options{Store: st, Submit: s.submit, Alerts: alerts, Auth: auth, MaxBodyBytes: 4096}), s, alerts
}

func TestWebhookBadInput(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := LoadAuth(tokenFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	tests := []struct {
		name        string
		method      string
		contentType string
		token       string
		body        string
		status      int
		reason      string
		errContains string
		accepted    int
	}{
		{"good", "POST", "application/json", "s3cret", goodBody, 202, "", "", 1},
		{"charset allowed", "POST", "application/json; charset=utf-8", "s3cret", goodBody, 202, "", "", 0},
		{"no token", "POST", "application/json", "", goodBody, 401, "unauthorized", "credentials", 0},
		{"wrong token", "POST", "application/json", "s3cret2", goodBody, 401, "unauthorized", "credentials", 0},
		{"wrong method", "GET", "application/json", "s3cret", "", 405, "method", "POST", 0},
		{"wrong content type", "POST", "text/plain", "s3cret", goodBody, 415, "content_type", "application/json", 0},
		{"no content type", "POST", "", "s3cret", goodBody, 415, "content_type", "application/json", 0},
		{"malformed", "POST", "application/json", "s3cret", `{"version":"4",`, 400, "malformed", "malformed JSON", 0},
		{"trailing garbage", "POST", "application/json", "s3cret", goodBody + "x", 400, "malformed", "malformed JSON", 0},
		{"deep nesting", "POST", "application/json", "s3cret", `{"alerts":` + deep + `}`, 413, "too_large", "limit", 0},
		{"wrong version", "POST", "application/json", "s3cret", strings.Replace(goodBody, `"version":"4"`, `"version":"3"`, 1), 400, "version", "version", 0},
		{"no version", "POST", "application/json", "s3cret", strings.Replace(goodBody, `"version":"4",`, ``, 1), 400, "version", "version", 0},
		{"too large", "POST", "application/json", "s3cret", goodBody + strings.Repeat(" ", 5000), 413, "too_large", "limit", 0},
		{"no alerts", "POST", "application/json", "s3cret", `{"version":"4","alerts":[]}`, 400, "no_usable_alerts", "no alerts", 0},
		{"only unusable alert", "POST", "application/json", "s3cret", `{"version":"4","alerts":[{"status":"firing","labels":{"x":"y"}}]}`, 400, "no_usable_alerts", "alertname", 0},
		{"json null", "POST", "application/json", "s3cret", `null`, 400, "malformed", "empty", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, s, _ := newTestHandler(t, auth)
			req := httptest.NewRequest(tc.method, "/webhook", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("content type %q", rec.Header().Get("Content-Type"))
			}
			if tc.status >= 400 {
				if !strings.Contains(rec.Body.String(), `"error":`) || !strings.Contains(rec.Body.String(), tc.errContains) {
					t.Errorf("body %s, want an error containing %q", rec.Body, tc.errContains)
				}
				if got := testutil.ToFloat64(h.rejected.WithLabelValues(tc.reason)); got != 1 {
					t.Errorf("rejected{reason=%q} = %v, want 1", tc.reason, got)
				}
				if len(s.got) != 0 {
					t.Errorf("a rejected notification reached the pipeline")
				}
			}
			if tc.accepted > 0 && len(s.got) != tc.accepted {
				t.Errorf("pipeline got %d alerts, want %d", len(s.got), tc.accepted)
			}
		})
	}
}

func TestWebhookGoodAlertsSurviveABadOne(t *testing.T) {
	h, s, alerts := newTestHandler(t, nil)
	body := `{"version":"4","alerts":[
{"status":"firing","labels":{"alertname":"A","container":"c1"},"startsAt":"2026-01-02T03:04:05Z"},
{"status":"bogus","labels":{"alertname":"B"},"startsAt":"2026-01-02T03:04:05Z"},
{"status":"firing","labels":{"alertname":"C","":"x"},"startsAt":"2026-01-02T03:04:05Z"},
{"status":"resolved","labels":{"alertname":"D","container":"c2"},"startsAt":"2026-01-02T03:04:05Z"}]}`
	req := httptest.NewRequest("POST", "/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if len(s.got) != 2 || s.got[0].Alert.Fingerprint == "" {
		t.Fatalf("got %+v", s.got)
	}
	for outcome, want := range map[string]float64{"accepted": 1, "resolved": 1, "rejected": 2} {
		if got := testutil.ToFloat64(alerts.WithLabelValues(outcome)); got != want {
			t.Errorf("alerts{%s} = %v, want %v", outcome, got, want)
		}
	}
	// The same notification again: all deduplicated, nothing new for the pipeline.
	req = httptest.NewRequest("POST", "/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if len(s.got) != 2 || testutil.ToFloat64(alerts.WithLabelValues("deduplicated")) != 2 {
		t.Fatalf("repeat delivery not deduplicated: %d entries", len(s.got))
	}
}

func TestBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAuth("", "am", pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{{"am", "hunter2", true}, {"am", "hunter3", false}, {"bm", "hunter2", false}} {
		r := httptest.NewRequest("POST", "/", nil)
		r.SetBasicAuth(tc.user, tc.pass)
		if a.Allow(r) != tc.ok {
			t.Errorf("%s:%s allowed=%v", tc.user, tc.pass, !tc.ok)
		}
	}
	if _, err := LoadAuth("", "am", ""); err == nil {
		t.Error("user without password file accepted")
	}
	if _, err := LoadAuth(filepath.Join(dir, "missing"), "", ""); err == nil {
		t.Error("missing token file accepted")
	}
}

func TestSlowClientIsBoundedByServerTimeouts(t *testing.T) {
	// The handler reads the whole body; the server's ReadTimeout (set in server.Serve) is what
	// bounds a client that trickles it. Here: a body reader that never ends is cut by the limit.
	h, _, _ := newTestHandler(t, nil)
	req := httptest.NewRequest("POST", "/webhook", endless{})
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(rec, req); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("endless body not cut off")
	}
	if rec.Code != 413 {
		t.Fatalf("status %d", rec.Code)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
