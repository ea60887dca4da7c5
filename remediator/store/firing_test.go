package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/selfheal/selfheal/remediator/verify"
)

func TestFiringSetKeys(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 14, 9, 123456789, time.UTC)
	intake := verify.EpisodeKey(template.Alert{Fingerprint: "7d3a0c5e9b1f2468", StartsAt: at})
	if _, ok := parseEpisode(intake); !ok {
		t.Fatalf("the intake's episode key %q is not held compactly", intake)
	}
	keys := map[string]Firing{
		intake: {Alertname: "A", Severity: "critical", Since: at},
		verify.EpisodeKey(template.Alert{Fingerprint: "0000000000000001", StartsAt: at.Truncate(time.Second)}): {Alertname: "B", Since: at.Truncate(time.Second)},
		// Other forms are kept as they are.
		"x":                                     {Alertname: "C", Since: at},
		"7D3A0C5E9B1F2468@2026-11-25T19:14:09Z": {Alertname: "D", Since: at},
		"7d3a0c5e9b1f2468@2026-11-25T20:14:09+01:00":                       {Alertname: "E", Since: at},
		"fp@" + at.Format(time.RFC3339Nano):                                {Alertname: "F", Since: at},
		verify.EpisodeKey(template.Alert{Fingerprint: "7d3a0c5e9b1f2468"}): {Alertname: "G"},
		// A since that is not the key's startsAt is kept too.
		verify.EpisodeKey(template.Alert{Fingerprint: "0000000000000002", StartsAt: at}): {Alertname: "H", Since: at.Add(time.Minute)},
	}
	var s FiringSet
	for k, f := range keys {
		s.Set(k, f)
	}
	if s.Len() != len(keys) {
		t.Fatalf("len %d, want %d", s.Len(), len(keys))
	}
	got := maps.Collect(s.All())
	for k, f := range keys {
		if !s.Has(k) {
			t.Errorf("%q missing", k)
		}
		if g := got[k]; g.Alertname != f.Alertname || g.Severity != f.Severity || !g.Since.Equal(f.Since) {
			t.Errorf("%q: %+v, want %+v", k, g, f)
		}
	}
	s.Set(intake, Firing{Alertname: "A", Severity: "warning", Since: at})
	if f := maps.Collect(s.All())[intake]; f.Severity != "warning" || s.Len() != len(keys) {
		t.Errorf("set again: %+v, len %d", f, s.Len())
	}
	for k := range keys {
		s.Delete(k)
		if s.Has(k) {
			t.Errorf("%q still there after delete", k)
		}
	}
	if s.Len() != 0 || !s.IsZero() {
		t.Fatalf("len %d after deleting all", s.Len())
	}
}

func TestFiringSetJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 14, 9, 5000, time.UTC)
	intake := verify.EpisodeKey(template.Alert{Fingerprint: "7d3a0c5e9b1f2468", StartsAt: at})
	var s FiringSet
	s.Set(intake, Firing{Alertname: "A", Severity: "warning", Since: at})
	s.Set("x", Firing{Alertname: "B", Since: at})
	b, err := json.Marshal(Target{Name: "t", Firing: s, State: "degraded"})
	if err != nil {
		t.Fatal(err)
	}
	// The intake's key holds its since; other keys keep theirs.
	want := `{"name":"t","firing":{"` + intake + `":{"alertname":"A","severity":"warning"},"x":{"alertname":"B","since":"2026-11-25T19:14:09.000005Z"}},"state":"degraded"}`
	if string(b) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", b, want)
	}
	// Files written before the set was compact hold a plain map with since everywhere.
	old, _ := json.Marshal(map[string]any{"name": "t", "firing": map[string]Firing{
		intake: {Alertname: "A", Severity: "warning", Since: at}, "x": {Alertname: "B", Since: at}}, "state": "degraded"})
	for _, in := range [][]byte{b, old} {
		var tg Target
		if err := json.Unmarshal(in, &tg); err != nil {
			t.Fatal(err)
		}
		got := maps.Collect(tg.Firing.All())
		if len(got) != 2 || got[intake].Alertname != "A" || got[intake].Severity != "warning" || !got[intake].Since.Equal(at) ||
			got["x"].Alertname != "B" || !got["x"].Since.Equal(at) {
			t.Errorf("decoded %s as %+v", in, got)
		}
		if again, _ := json.Marshal(tg); string(again) != want {
			t.Errorf("re-encoded %s", again)
		}
	}
	var empty Target
	if b, _ := json.Marshal(Target{Name: "t"}); strings.Contains(string(b), "firing") {
		t.Errorf("empty set written: %s", b)
	} else if err := json.Unmarshal(b, &empty); err != nil || empty.Firing.Len() != 0 {
		t.Errorf("empty set read back: %v %d", err, empty.Firing.Len())
	}
}

// The hand-written encoding is encoding/json's, for any name or key an alert may bring.
func TestFiringSetJSONLikeEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 14, 9, 5000, time.UTC)
	var s FiringSet
	odd := []string{"", "plain", `quote " and \ backslash`, "<tag>&amp;", "tab\tnew\nline\r", "\x00\x1f", "\u2028\u2029", "é ✓ 🚀", "bad \xff utf8"}
	for i, v := range odd {
		s.Set(v+"-key", Firing{Alertname: v, Severity: odd[len(odd)-1-i], Since: at.Add(time.Duration(i))})
	}
	s.Set(verify.EpisodeKey(template.Alert{Fingerprint: "7d3a0c5e9b1f2468", StartsAt: at}), Firing{Alertname: "A", Since: at})
	got, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]firingRecord{}
	for k, f := range s.All() {
		r := firingRecord{Alertname: f.Alertname, Severity: f.Severity}
		if _, ok := parseEpisode(k); !ok {
			r.Since = &f.Since
		}
		m[k] = r
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("encoded\n%s\nencoding/json\n%s", got, want)
	}
}

func BenchmarkFiringSetJSON(b *testing.B) {
	var s FiringSet
	at := time.Date(2026, 11, 25, 19, 14, 9, 0, time.UTC)
	for i := range 40 {
		fp := fmt.Sprintf("%016x", i*7919)
		s.Set(verify.EpisodeKey(template.Alert{Fingerprint: fp, StartsAt: at}), Firing{Alertname: "BenchMemoryHigh", Severity: "warning", Since: at})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(Target{Name: "bench-0001", Firing: s, State: "degraded"}); err != nil {
			b.Fatal(err)
		}
	}
}

// A set holds a few alerts in a slice and more in a map: whatever its size, and across the
// change, it answers as a map of its keys would.
func TestFiringSetAcrossItsSizes(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 14, 9, 0, time.UTC)
	key := func(i int) string {
		return verify.EpisodeKey(template.Alert{Fingerprint: fmt.Sprintf("%016x", i), StartsAt: at.Add(time.Duration(i) * time.Second)})
	}
	for _, n := range []int{1, fewFiring - 1, fewFiring, fewFiring + 1, 3 * fewFiring} {
		var s FiringSet
		want := map[string]Firing{}
		for i := range n {
			f := Firing{Alertname: fmt.Sprint("A", i%3), Severity: "warning", Since: at.Add(time.Duration(i) * time.Second)}
			s.Set(key(i), f)
			want[key(i)] = f
		}
		// Set again (a new severity), delete every third, and delete one never set.
		for i := 0; i < n; i += 2 {
			f := want[key(i)]
			f.Severity = "critical"
			s.Set(key(i), f)
			want[key(i)] = f
		}
		for i := 0; i < n; i += 3 {
			s.Delete(key(i))
			delete(want, key(i))
		}
		s.Delete(key(n + 1))
		got := maps.Collect(s.All())
		if s.Len() != len(want) || !maps.Equal(got, want) {
			t.Fatalf("%d alerts: len %d, holds %v; want %v", n, s.Len(), got, want)
		}
		for i := range n + 2 {
			if _, ok := want[key(i)]; s.Has(key(i)) != ok {
				t.Errorf("%d alerts: Has(%d) = %v, want %v", n, i, !ok, ok)
			}
		}
		buf, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back FiringSet
		if err := json.Unmarshal(buf, &back); err != nil || !maps.Equal(maps.Collect(back.All()), want) {
			t.Errorf("%d alerts: JSON round trip %s: %v", n, buf, err)
		}
	}
}

// An alert fires one episode at a time, and the set holds the one delivered last: a later
// startsAt ends the earlier episode, even when its resolved notification never came, and an
// earlier startsAt (Alertmanager merging the alert from two Prometheus servers keeps the
// earliest) takes its place too; only the held episode's resolve removes it. Both in the slice
// and in the map the set moves to past fewFiring.
func TestFiringSetHoldsTheEpisodeDeliveredLast(t *testing.T) {
	at := time.Date(2026, 11, 25, 19, 14, 9, 0, time.UTC)
	key := func(fp int, starts time.Time) string {
		return verify.EpisodeKey(template.Alert{Fingerprint: fmt.Sprintf("%016x", fp), StartsAt: starts})
	}
	for _, others := range []int{0, fewFiring + 1} {
		var s FiringSet
		for i := range others {
			s.Set(key(100+i, at), Firing{Alertname: "Other", Since: at})
		}
		first, later, merged := key(1, at), key(1, at.Add(time.Hour)), key(1, at.Add(-time.Minute))
		s.Set(first, Firing{Alertname: "A", Since: at})
		s.Set(later, Firing{Alertname: "A", Since: at.Add(time.Hour)})
		if s.Has(first) || !s.Has(later) || s.Len() != others+1 {
			t.Fatalf("%d others: after a later episode: has first %v, has later %v, len %d", others, s.Has(first), s.Has(later), s.Len())
		}
		// The resolve of an episode no longer held leaves the held one firing.
		s.Delete(first)
		if !s.Has(later) || s.Len() != others+1 {
			t.Fatalf("%d others: the earlier episode's resolve removed the later one", others)
		}
		s.Set(merged, Firing{Alertname: "A", Since: at.Add(-time.Minute)})
		if s.Has(later) || !s.Has(merged) || s.Len() != others+1 {
			t.Fatalf("%d others: after an earlier startsAt: has later %v, has merged %v, len %d", others, s.Has(later), s.Has(merged), s.Len())
		}
		s.Delete(merged)
		if s.Has(merged) || s.Len() != others {
			t.Fatalf("%d others: after its resolve: has %v, len %d", others, s.Has(merged), s.Len())
		}
	}
}
