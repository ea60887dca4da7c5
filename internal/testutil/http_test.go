package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestDoSendsJSONWithBearer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method, "auth": r.Header.Get("Authorization"),
			"type": r.Header.Get("Content-Type"), "body": string(b),
		})
	}))
	defer srv.Close()

	code, body := DoJSON(t, http.MethodPut, srv.URL, map[string]int{"n": 1}, Bearer("t0ken"))
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusOK {
		t.Fatalf("answer %d %q: %v", code, body, err)
	}
	want := map[string]string{"method": "PUT", "auth": "Bearer t0ken", "type": "application/json", "body": `{"n":1}`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	got = nil
	GetJSON(t, srv.URL, &got)
	if got["method"] != "GET" || got["auth"] != "" || got["type"] != "" || got["body"] != "" {
		t.Errorf("GET without body or token sent %v", got)
	}
	if Bearer("") != nil {
		t.Error("an empty token makes an Authorization header")
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if !Poll(time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Poll stopped after %d checks, want 3 and true", n)
	}
	start := time.Now()
	if Poll(50*time.Millisecond, 10*time.Millisecond, func() bool { return false }) {
		t.Error("Poll reported a condition that never held")
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Poll gave up after %s, before its timeout", d)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	seen := map[int]bool{}
	// Across calls too: the ports of one call are closed when it returns, and the kernel would
	// offer them again.
	for range 50 {
		for _, p := range FreePorts(t, 8) {
			if seen[p] || p == 0 {
				t.Fatalf("port %d repeated or zero", p)
			}
			seen[p] = true
		}
	}
}

func TestProcessOutputAndExit(t *testing.T) {
	p := StartProcess(t, "sh", []string{"GREETING=hello"}, LookPath(t, "sh"), "-c", `echo "$GREETING"; echo two; echo three >&2`)
	if !Poll(10*time.Second, 10*time.Millisecond, p.Exited) {
		t.Fatal("sh did not exit")
	}
	if got := p.Output(); got != "hello\ntwo\nthree\n" {
		t.Errorf("output %q", got)
	}
	if got := p.Tail(2); got != "two\nthree" {
		t.Errorf("tail %q", got)
	}
}
