package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPagesFollowReadAuth: the heal history page shows what GET /api/v1/heals shows, so it asks
// for the same credentials when --web.api.read-auth is set; the landing page holds nothing.
func TestPagesFollowReadAuth(t *testing.T) {
	for _, readAuth := range []bool{false, true} {
		dir := t.TempDir()
		cfg, tok := filepath.Join(dir, "playbooks.yml"), filepath.Join(dir, "token")
		if err := os.WriteFile(cfg, []byte(playbooks), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tok, []byte("t0ken"), 0o600); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		srv, err := New(Options{
			ConfigFile: cfg, StoragePath: filepath.Join(dir, "data"), WebhookTokenFile: tok, ReadAuth: readAuth,
			Runner: &recordingRunner{}, Registerer: reg, Gatherer: reg, Tick: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, srv: srv, cancel: func() {}}
		e.http = httptest.NewServer(srv.Handler())
		for _, tc := range []struct {
			path, token string
			want        int
		}{
			{"/", "", http.StatusOK},
			{"/heals", "t0ken", http.StatusOK},
			{"/heals", "", map[bool]int{false: http.StatusOK, true: http.StatusUnauthorized}[readAuth]},
			{"/heals", "wrong", map[bool]int{false: http.StatusOK, true: http.StatusUnauthorized}[readAuth]},
		} {
			code, body := e.do(http.MethodGet, tc.path, tc.token, "")
			if code != tc.want {
				t.Errorf("read auth %v: GET %s with token %q: %d, want %d: %s", readAuth, tc.path, tc.token, code, tc.want, body)
			}
			if code == http.StatusOK && !strings.Contains(body, "<title>remediator") {
				t.Errorf("GET %s is not the page: %s", tc.path, body)
			}
		}
		e.stop()
	}
}
