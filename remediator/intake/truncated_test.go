package intake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTruncatedAlertsAreCounted: alerts Alertmanager left out of a notification never reach a
// playbook, so they are counted for an alert rule, not only logged.
func TestTruncatedAlertsAreCounted(t *testing.T) {
	h, _, _ := newTestHandler(t, nil)
	if got := testutil.ToFloat64(h.truncated); got != 0 {
		t.Fatalf("truncated before any notification: %v", got)
	}
	for _, n := range []string{"0", "3", "2"} {
		req := httptest.NewRequest("POST", "/webhook", strings.NewReader(strings.Replace(goodBody, `"truncatedAlerts":0`, `"truncatedAlerts":`+n, 1)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	if got := testutil.ToFloat64(h.truncated); got != 5 {
		t.Errorf("remediator_notifications_truncated_alerts_total = %v, want 5", got)
	}
}
