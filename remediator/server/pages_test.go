package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// TestPagesFollowReadAuth: the heal history page shows what GET /api/v1/heals shows, so it asks
// for the same credentials when --web.api.read-auth is set; the landing page holds nothing.
func TestPagesFollowReadAuth(t *testing.T) {
	for _, readAuth := range []bool{false, true} {
		dir := t.TempDir()
		tok := testutil.WriteFile(t, dir, "token", "t0ken")
		ts := newTestServer(t, dir, testutil.Testdata(t, "playbooks.yml"),
			Options{WebhookTokenFile: tok, ReadAuth: readAuth, Runner: &recordingRunner{}}, false)
		e := &env{testServer: ts}
		closed := http.StatusOK
		if readAuth {
			closed = http.StatusUnauthorized
		}
		for _, tc := range []struct {
			path, token string
			want        int
		}{
			{"/", "", http.StatusOK},
			{"/heals", "t0ken", http.StatusOK},
			{"/heals", "", closed},
			{"/heals", "wrong", closed},
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
