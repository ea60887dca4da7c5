package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	bolt "go.etcd.io/bbolt"
)

// The guards' windows survive closing and opening the file again; a state file without them
// (an older version's) reads as empty windows, and one unreadable record is dropped alone.
func TestGuardWindowsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := s.GuardWindows(); err != nil || len(w.HealStarts) != 0 || len(w.Seen) != 0 {
		t.Fatalf("fresh store windows %+v, %v", w, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	starts := []time.Time{t0, t0.Add(time.Second)}
	if err := <-s.SaveGuardsLater(GuardsChange{HealStarts: starts, Seen: []TargetSeen{
		{Playbook: "memory-high", Target: "c1", At: t0},
		{Playbook: "memory-high", Target: "c2", At: t0.Add(time.Minute)},
		{Playbook: "disk", Target: "c1", At: t0},
	}}); err != nil {
		t.Fatal(err)
	}
	// Seen without starts leaves the starts alone; Forget drops a target.
	if err := <-s.SaveGuardsLater(GuardsChange{
		Seen:   []TargetSeen{{Playbook: "memory-high", Target: "c2", At: t0.Add(2 * time.Minute)}},
		Forget: []TargetSeen{{Playbook: "disk", Target: "c1"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlastRadius).Put([]byte("broken"), []byte("not a time"))
	}); err != nil {
		t.Fatal(err)
	}
	s = reopenStore(t, s)
	w, err := s.GuardWindows()
	if err != nil {
		t.Fatal(err)
	}
	want := GuardWindows{HealStarts: starts, Seen: []TargetSeen{
		{Playbook: "memory-high", Target: "c1", At: t0},
		{Playbook: "memory-high", Target: "c2", At: t0.Add(2 * time.Minute)},
	}}
	if !reflect.DeepEqual(w, want) {
		t.Fatalf("windows after reopening\n got %+v\nwant %+v", w, want)
	}
}

// Held-back alerts survive reopening; a release drops one, a new hold replaces the target's.
func TestHeldBackSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := func(target, episode string) HeldBack {
		return HeldBack{Target: target, InboxKey: episode, EpisodeKey: episode, BlockedBy: "cooldown",
			Alert: template.Alert{Status: "firing", Labels: template.KV{"alertname": "ServiceMemoryHigh", "container": target}}}
	}
	if err := <-s.SaveGuardsLater(GuardsChange{Hold: []HeldBack{held("c1", "e1"), held("c2", "e2"), held("c3", "e3")}}); err != nil {
		t.Fatal(err)
	}
	if err := <-s.SaveGuardsLater(GuardsChange{Hold: []HeldBack{held("c1", "e4")}, Release: []string{"c2"}}); err != nil {
		t.Fatal(err)
	}
	s = reopenStore(t, s)
	got, err := s.HeldBack()
	if err != nil {
		t.Fatal(err)
	}
	if want := []HeldBack{held("c1", "e4"), held("c3", "e3")}; !reflect.DeepEqual(got, want) {
		t.Fatalf("held back after reopening\n got %+v\nwant %+v", got, want)
	}
}

// reopenStore closes s and opens its folder again, to be closed with the test.
func reopenStore(t *testing.T, s *Store) *Store {
	t.Helper()
	s.Close()
	s, _ = reopen(t, filepath.Dir(s.Path()))
	return s
}
