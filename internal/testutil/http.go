package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// client bounds every helper request, so a server that hangs fails its test instead of the run.
var client = &http.Client{Timeout: 30 * time.Second}

// Bearer is the Authorization header for token; none for an empty token.
func Bearer(token string) map[string]string {
	if token == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + token}
}

// Do sends one request and returns the status and the body without surrounding white space. A
// non-empty body is sent as JSON, the way Alertmanager and the remediator's API clients send it.
func Do(t testing.TB, method, url, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// DoJSON is Do with v marshalled as the body; a nil v sends none.
func DoJSON(t testing.TB, method, url string, v any, header map[string]string) (int, string) {
	t.Helper()
	if v == nil {
		return Do(t, method, url, "", header)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s %s: encode the body: %v", method, url, err)
	}
	return Do(t, method, url, string(b), header)
}

// Call sends a request without a body, such as a demo service's chaos or recovery call, and
// fails the test unless the answer is 200 OK.
func Call(t testing.TB, method, url string) string {
	t.Helper()
	code, body := Do(t, method, url, "", nil)
	if code != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, url, code, body)
	}
	return body
}

// GetText returns the body of GET url whatever its status, e.g. a /metrics page to search.
func GetText(t testing.TB, url string) string {
	t.Helper()
	_, body := Do(t, http.MethodGet, url, "", nil)
	return body
}

// GetJSON decodes the answer of GET url into v, failing the test unless it is 200 OK and JSON.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	code, body := Do(t, http.MethodGet, url, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %.300s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: decode: %v: %.300s", url, err, body)
	}
}

// Poll checks cond every interval until it holds (true) or timeout has passed (false). It is
// for tests that explain a timeout themselves; Eventually fails the test instead.
func Poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// Eventually fails the test unless cond holds within timeout, checked every 100ms; what says
// what was awaited.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, 100*time.Millisecond, cond) {
		t.Fatalf("not within %s: %s", timeout, what)
	}
}
