package pager

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestPager(t *testing.T, keep int) (*httptest.Server, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	p, err := New(Config{Receivers: []string{"oncall", "chat"}, Keep: keep, MaxBodyBytes: 4096}, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	return srv, &log
}

func notification(alertname, summary string) string {
	b, _ := json.Marshal(map[string]any{
		"version": "4", "status": "firing", "receiver": "oncall", "groupKey": `{}:{alertname="` + alertname + `"}`,
		"alerts": []map[string]any{{
			"status": "firing", "labels": map[string]string{"alertname": alertname, "severity": "critical", "target": "user-service"},
			"annotations": map[string]string{"summary": summary}, "startsAt": time.Now().UTC().Format(time.RFC3339Nano),
		}},
	})
	return string(b)
}

func post(t *testing.T, url, contentType, body string) int {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func pages(t *testing.T, url string) []Page {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Pages []Page }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return out.Pages
}

func TestPagerLogsAndKeepsTheLatestPages(t *testing.T) {
	srv, log := newTestPager(t, 3)
	// An alert's values are untrusted: a newline in one must not start a forged log line.
	for i, name := range []string{"RemediationFailed", "RemediationDeclined", "RemediatorBudgetExhausted"} {
		if code := post(t, srv.URL+"/oncall", "application/json", notification(name, fmt.Sprintf("page %d\nlevel=ERROR msg=forged", i))); code != http.StatusOK {
			t.Fatalf("POST /oncall: %d", code)
		}
	}
	if code := post(t, srv.URL+"/chat", "application/json", notification("RemediationPerformed", "healed")); code != http.StatusOK {
		t.Fatalf("POST /chat: %d", code)
	}
	got := pages(t, srv.URL+"/api/v1/pages?receiver=oncall")
	if len(got) != 2 || got[0].Alerts[0].Labels["alertname"] != "RemediatorBudgetExhausted" || got[1].Alerts[0].Labels["alertname"] != "RemediationDeclined" {
		t.Fatalf("oncall pages %+v, want its two kept, newest first (three kept in all)", got)
	}
	if all := pages(t, srv.URL+"/api/v1/pages"); len(all) != 3 || all[0].Receiver != "chat" {
		t.Fatalf("all pages %+v, want chat's newest, then oncall's", all)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want one per alert:\n%s", len(lines), log)
	}
	for _, l := range lines {
		if !strings.Contains(l, "msg=page") || strings.HasPrefix(l, "level=ERROR") {
			t.Errorf("log line %q", l)
		}
	}
	if !strings.Contains(lines[0], "receiver=oncall") || !strings.Contains(lines[0], "alertname=RemediationFailed") || !strings.Contains(lines[0], "target=user-service") {
		t.Errorf("first line %q lacks receiver, alertname or target", lines[0])
	}
}

func TestPagerRefusesWhatIsNoNotification(t *testing.T) {
	srv, log := newTestPager(t, 10)
	for _, c := range []struct {
		name, path, contentType, body string
		want                          int
	}{
		{"unknown receiver", "/pagerduty", "application/json", notification("A", "a"), http.StatusNotFound},
		{"not JSON", "/oncall", "text/plain", "hello", http.StatusUnsupportedMediaType},
		{"malformed", "/oncall", "application/json", `{"alerts": [`, http.StatusBadRequest},
		{"too large", "/oncall", "application/json", notification("A", strings.Repeat("x", 5000)), http.StatusRequestEntityTooLarge},
	} {
		if code := post(t, srv.URL+c.path, c.contentType, c.body); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
	if got := pages(t, srv.URL+"/api/v1/pages"); len(got) != 0 || log.Len() != 0 {
		t.Errorf("refused notifications were kept (%+v) or logged (%s)", got, log)
	}
	resp, err := http.Get(srv.URL + "/api/v1/pages?receiver=nobody")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("pages of an unknown receiver: %s, want 404", resp.Status)
	}
}

func TestPagerConfigIsChecked(t *testing.T) {
	for _, c := range []Config{
		{Keep: 1, MaxBodyBytes: 1},
		{Receivers: []string{"on call"}, Keep: 1, MaxBodyBytes: 1},
		{Receivers: []string{"oncall"}, Keep: 0, MaxBodyBytes: 1},
		{Receivers: []string{"oncall"}, Keep: 1},
	} {
		if _, err := New(c, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
