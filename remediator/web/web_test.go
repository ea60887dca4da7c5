package web

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/store"
)

// history is a heal history held in memory, newest first, filtered as the store does.
type history struct {
	heals []store.Heal
	err   error
}

func (h history) Heals(f store.HealFilter) ([]store.Heal, error) {
	out := []store.Heal{}
	for _, x := range h.heals {
		if len(out) < f.Limit && (f.Target == "" || x.Target == f.Target) {
			out = append(out, x)
		}
	}
	return out, h.err
}

func serve(t *testing.T, h HealLister, path string) (int, string) {
	t.Helper()
	mux := http.NewServeMux()
	if err := Register(mux, Options{Heals: h, Version: "test"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func sample() []store.Heal {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []store.Heal{
		{ID: "3", Target: "ledger", Playbook: "restart", Result: store.HealFailed, Started: t0, Ended: t0.Add(2 * time.Second),
			Alert: store.AlertRef{Name: "Down", Annotations: map[string]string{"summary": `<script>alert("x")</script>`},
				Labels: map[string]string{"note": `"><img src=x onerror=alert(1)>`}},
			Steps: []store.StepRecord{{Name: "restart", Action: "docker", Outcome: store.StepFailed, Error: "exit 1",
				Evidence: &action.Evidence{Object: "container ledger", State: map[string]string{"exit_code": "137", "oom_killed": "true"},
					Log: strings.Repeat("older line\n", 50) + "last words\n"}}}},
		{ID: "2", Target: "checkout", Playbook: "flush", Result: store.HealHealed, Started: t0, Ended: t0.Add(time.Second),
			Relapse: &store.Relapse{At: t0.Add(time.Minute), Alert: store.AlertRef{Name: "MemoryHigh"}},
			Steps:   []store.StepRecord{{Name: "flush", Action: "http", Outcome: store.StepSucceeded}}},
		{ID: "1", Target: "checkout", Playbook: "flush", Result: store.HealHealed, Started: t0},
	}
}

func TestHealsPage(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		status     int
		want, not  []string
	}{
		{name: "all", path: "/heals", status: 200,
			want: []string{`id="heal-3"`, `id="heal-2"`, `id="heal-1"`, "3 heals", "exit_code: 137", "last words", "relapsed"}},
		{name: "alert content is escaped", path: "/heals", status: 200,
			want: []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;"},
			not:  []string{"<script>", "<img"}},
		{name: "the log is cut to its last lines", path: "/heals", status: 200,
			want: []string{strings.Repeat("older line\n", evidenceLines-1) + "last words</pre>"},
			not:  []string{strings.Repeat("older line\n", evidenceLines) + "last words"}},
		{name: "by target", path: "/heals?target=checkout", status: 200,
			want: []string{`id="heal-2"`, `id="heal-1"`, "of target <b>checkout</b>"}, not: []string{`id="heal-3"`}},
		{name: "by result", path: "/heals?result=failed", status: 200,
			want: []string{`id="heal-3"`, "1 heal with result", `<option value="failed" selected>`}, not: []string{`id="heal-2"`}},
		{name: "relapsed", path: "/heals?result=relapsed", status: 200,
			want: []string{`id="heal-2"`}, not: []string{`id="heal-1"`, `id="heal-3"`}},
		{name: "limit", path: "/heals?limit=1", status: 200,
			want: []string{`id="heal-3"`, "older ones exist"}, not: []string{`id="heal-2"`}},
		{name: "nothing matches", path: "/heals?target=nobody", status: 200, want: []string{"No heals match."}},
		{name: "bad limit", path: "/heals?limit=0", status: 400, want: []string{"limit must be a number from 1 to 500"}},
		{name: "bad result", path: "/heals?result=%3Cb%3E", status: 400,
			want: []string{`unknown result &#34;&lt;b&gt;&#34;: choose one of healed, failed`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := serve(t, history{heals: sample()}, tc.path)
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("page has %q", n)
				}
			}
		})
	}
}

func TestHealsPageStoreError(t *testing.T) {
	status, body := serve(t, history{err: errors.New("disk gone")}, "/heals")
	if status != http.StatusInternalServerError || !strings.Contains(body, "reading the heal history failed: disk gone") {
		t.Errorf("got %d %s", status, body)
	}
}

func TestLandingPage(t *testing.T) {
	status, body := serve(t, history{}, "/")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	for _, w := range []string{`href="/heals"`, `href="/metrics"`, `href="/api/v1/targets"`, DocsURL, "Version: test"} {
		if !strings.Contains(body, w) {
			t.Errorf("landing page lacks %q:\n%s", w, body)
		}
	}
	if strings.Contains(body, "debug/pprof") {
		t.Error("landing page links profiles the remediator does not serve")
	}
	if status, _ := serve(t, history{}, "/nothing"); status != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", status)
	}
}
