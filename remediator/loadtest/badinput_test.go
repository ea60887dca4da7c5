package loadtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/selfheal/selfheal/internal/testutil"
)

func goodAlert(target string) Alert {
	return Alert{Name: "ServiceMemoryHigh", Target: target, Severity: "critical", StartsAt: time.Now().Add(-time.Minute)}
}

// TestBadInputHTTP sends what a broken or hostile client sends, through the real HTTP server, and
// expects a clear 4xx (never a panic, never a hang) and nothing accepted.
func TestBadInputHTTP(t *testing.T) {
	rem := startRemediator(t, Options{Dir: t.TempDir(), Playbooks: testutil.Testdata(t, "bad-input-playbooks.yml"), Token: "bad-token"})
	defer stopRemediator(t, rem)
	good := Notification("g", goodAlert("api-1"))
	huge := strings.Repeat("x", 100<<10)
	hugeLabel := Notification("g", Alert{Name: "ServiceMemoryHigh", Target: "api-2", Severity: "critical",
		StartsAt: time.Now(), Extra: map[string]string{"pod": huge}})
	hugeAndGood := bytes.Replace(hugeLabel, []byte(`"alerts":[`), append([]byte(`"alerts":[`), alertJSON(goodAlert("api-3"))...), 1)
	manyLabels := map[string]string{}
	for i := range 5000 {
		manyLabels[fmt.Sprintf("l%04d", i)] = "v"
	}
	deep := func(n int, where string) []byte {
		nest := strings.Repeat("[", n) + strings.Repeat("]", n)
		return []byte(strings.Replace(where, "NEST", nest, 1))
	}

	cases := []struct {
		name        string
		contentType string
		body        []byte
		chunked     bool // no Content-Length: the limit must hold while reading
		want        int
		wantText    string
		accepted    int
	}{
		{name: "good", body: good, want: 202, accepted: 1},
		{name: "deep nesting in a label", body: deep(100000, `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":NEST}}]}`),
			want: 400, wantText: "malformed JSON"},
		{name: "deep nesting in an unknown field", body: deep(200000, `{"version":"4","status":"firing","x":NEST,"alerts":[]}`),
			want: 400, wantText: "malformed JSON"},
		{name: "deep nesting of objects", body: []byte(`{"version":"4","x":` + strings.Repeat(`{"a":`, 100000) + `1` + strings.Repeat("}", 100000) + `}`),
			want: 400, wantText: "malformed JSON"},
		{name: "huge label value, only alert", body: hugeLabel, want: 400, wantText: "longer than 4096 bytes"},
		{name: "huge label value next to a good alert", body: hugeAndGood, want: 202, wantText: "longer than 4096 bytes", accepted: 1},
		{name: "five thousand labels", body: Notification("g", Alert{Name: "ServiceMemoryHigh", Target: "api-4", Severity: "critical", StartsAt: time.Now(), Extra: manyLabels}),
			want: 202, accepted: 1},
		{name: "wrong content type", contentType: "text/plain", body: good, want: 415, wantText: "application/json"},
		{name: "form content type", contentType: "application/x-www-form-urlencoded", body: good, want: 415},
		{name: "no content type", contentType: "-", body: good, want: 415},
		{name: "oversize body with length", body: bytes.Repeat([]byte(" "), 2<<20), want: 413, wantText: "larger than"},
		{name: "oversize body chunked", body: append(append([]byte(nil), good[:len(good)-1]...), bytes.Repeat([]byte(" "), 2<<20)...), chunked: true, want: 413, wantText: "larger than"},
		{name: "truncated JSON", body: good[:len(good)/2], want: 400, wantText: "malformed JSON"},
		{name: "two documents", body: append(append([]byte(nil), good...), good...), want: 400, wantText: "trailing data"},
		{name: "wrong version", body: bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"3"`), 1), want: 400, wantText: "version"},
		{name: "NUL bytes", body: []byte("\x00\x00\x00"), want: 400, wantText: "malformed JSON"},
	}
	c := Client(1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length, so the client sends it chunked
			}
			req, _ := http.NewRequest(http.MethodPost, rem.URL+"/webhook", body)
			switch tc.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.contentType)
			}
			req.Header.Set("Authorization", "Bearer "+rem.Token)
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.want, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("answer is %q, want a JSON error", ct)
			}
			if !strings.Contains(string(b), tc.wantText) {
				t.Errorf("answer %s does not say %q", b, tc.wantText)
			}
			if tc.accepted > 0 && !strings.Contains(string(b), fmt.Sprintf(`"accepted":%d`, tc.accepted)) {
				t.Errorf("answer %s, want %d accepted", b, tc.accepted)
			}
			if took > 2*time.Second {
				t.Errorf("answered after %s", took)
			}
		})
	}
	// The remediator is still healthy after all of it.
	if code, body, err := rem.Post(c, Notification("g", goodAlert("api-5"))); err != nil || code != 202 {
		t.Fatalf("after the bad input a good notification got %d %s %v", code, body, err)
	}
}

// alertJSON is one alert object followed by a comma, to splice into a notification.
func alertJSON(a Alert) []byte {
	b, err := json.Marshal(notificationData("g", []Alert{a}).Alerts[0])
	if err != nil {
		panic(err)
	}
	return append(b, ',')
}

// TestSlowClients holds connections open the way slowloris does, and sends a body a byte at a
// time: the server's header and read timeouts must cut them, and while they hang on, a
// well-behaved client (Alertmanager) is still served at once.
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's timeouts")
	}
	const (
		headerTimeout = 500 * time.Millisecond
		readTimeout   = 2 * time.Second
		maxRequests   = 4
	)
	rem := startRemediator(t, Options{Dir: t.TempDir(), Playbooks: testutil.Testdata(t, "bad-input-playbooks.yml"), Token: "slow-token",
		ReadHeaderTimeout: headerTimeout, ReadTimeout: readTimeout, MaxRequests: maxRequests})
	defer stopRemediator(t, rem)
	addr := strings.TrimPrefix(rem.URL, "http://")
	body := Notification("g", goodAlert("api-1"))

	t.Run("slow headers are cut by the header timeout", func(t *testing.T) {
		// More slow connections than request slots: they must not take any slot.
		var wg sync.WaitGroup
		closedAfter := make(chan time.Duration, 3*maxRequests)
		for range 3 * maxRequests {
			wg.Go(func() {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Error(err)
					return
				}
				defer conn.Close()
				start := time.Now()
				_, _ = io.WriteString(conn, "POST /webhook HTTP/1.1\r\nHost: remediator\r\n")
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(conn, "X-Slow-%d: 1\r\n", i); err != nil {
						break
					}
					_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
						break // closed by the server
					}
					if time.Since(start) > 10*time.Second {
						break
					}
				}
				closedAfter <- time.Since(start)
			})
		}
		time.Sleep(100 * time.Millisecond)
		postStart := time.Now()
		code, answer, err := rem.Post(Client(1), body)
		if err != nil || code != 202 {
			t.Errorf("with slow-header connections open, a notification got %d %s %v", code, answer, err)
		}
		if took := time.Since(postStart); took > 250*time.Millisecond {
			t.Errorf("with slow-header connections open, a notification took %s", took)
		}
		wg.Wait()
		close(closedAfter)
		for d := range closedAfter {
			if d > headerTimeout+time.Second {
				t.Errorf("a slow-header connection lived %s, the header timeout is %s", d, headerTimeout)
			}
		}
	})

	t.Run("slow body is cut by the read timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: remediator\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", rem.Token, len(body))
		status := make(chan string, 1)
		go func() {
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				line = "closed: " + err.Error()
			}
			status <- strings.TrimSpace(line)
		}()
		var got string
	feed:
		for i := 0; i < len(body)-1; i++ {
			select {
			case got = <-status:
				break feed
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write(body[i : i+1]); err != nil {
				got = "closed: " + err.Error()
				break
			}
		}
		took := time.Since(start)
		t.Logf("slow body: %q after %s", got, took.Round(time.Millisecond))
		if got == "" || strings.Contains(got, "202") {
			t.Errorf("a body sent a byte per 100ms was not cut: %q", got)
		}
		if took > readTimeout+time.Second {
			t.Errorf("the slow body was cut after %s, the read timeout is %s", took, readTimeout)
		}
	})

	t.Run("a flood gets 503 instead of queueing", func(t *testing.T) {
		// Hold every request slot with bodies that never finish.
		for range maxRequests {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /webhook HTTP/1.1\r\nHost: remediator\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n{", rem.Token, len(body))
		}
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, rem.URL+"/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+rem.Token)
		resp, err := Client(1).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		took := time.Since(start)
		t.Logf("with %d slots held: %d %s after %s", maxRequests, resp.StatusCode, strings.TrimSpace(string(b)), took.Round(time.Millisecond))
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("status %d, want 503 or 429 while every slot is held", resp.StatusCode)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After on the refusal")
		}
		if took > 2*time.Second {
			t.Errorf("the refusal took %s, want it prompt", took)
		}
		// Probes and scrapes are outside the limit: they answer at once while the flood lasts.
		for _, path := range []string{"/-/healthy", "/-/ready", "/metrics"} {
			hs := time.Now()
			resp, err := Client(1).Get(rem.URL + path)
			if err != nil {
				t.Errorf("GET %s while every slot is held: %v", path, err)
				continue
			}
			_ = resp.Body.Close()
			if took := time.Since(hs); resp.StatusCode != http.StatusOK || took > 500*time.Millisecond {
				t.Errorf("GET %s while every slot is held: %d after %s, want 200 at once", path, resp.StatusCode, took.Round(time.Millisecond))
			}
		}
		// The read timeout frees the slots; then deliveries go through again.
		deadline := time.Now().Add(readTimeout + 2*time.Second)
		for {
			code, _, err := rem.Post(Client(1), body)
			if err == nil && code == 202 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slots still held %s after the read timeout: %d %v", time.Since(start), code, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
