package intake

import (
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bodies to the webhook's decoding: it must never panic, and what it
// accepts must make valid inbox entries.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(goodBody))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"resolved","labels":{"alertname":"A"},"startsAt":"2026-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"":"x"}}]}`))
	f.Add([]byte(`{"version":"4","alerts":null}`))
	f.Add([]byte(`{"version":4}`))
	f.Add([]byte(`[[[[[[]]]]]]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Decode(body)
		if err != nil {
			return
		}
		entries, _ := Entries(m, time.Now())
		for _, e := range entries {
			if e.Key == "" || e.EpisodeKey == "" || e.Alert.Fingerprint == "" || e.Alert.Labels["alertname"] == "" {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
