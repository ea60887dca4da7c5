package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	bolt "go.etcd.io/bbolt"
)

func TestCorruptFileIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(strings.Repeat("not a bolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("open over a corrupt file: %v", err)
	}
	defer s.Close()
	if ts, err := s.Targets(); err != nil || len(ts) != 0 {
		t.Fatalf("targets %v %v", ts, err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, FileName+".corrupt-*"))
	if len(matches) != 1 {
		t.Fatalf("corrupt file not moved aside: %v", matches)
	}
}

func entry(fp string, resolved bool) InboxEntry {
	e := InboxEntry{Key: fp, EpisodeKey: fp, Resolved: resolved, Alert: template.Alert{Fingerprint: fp}, ReceivedAt: time.Now()}
	if resolved {
		e.Key += "|resolved"
	}
	return e
}

func TestAcceptIsIdempotentPerEpisode(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []struct {
		name string
		do   func() error
		e    InboxEntry
		want bool
	}{
		{"first delivery", nil, entry("a", false), true},
		{"repeat while pending", nil, entry("a", false), false},
		{"resolved", nil, entry("a", true), true},
		{"resolved again", nil, entry("a", true), false},
		{"heal done, re-delivered firing is decided anew", func() error { return closeEpisode(s, "b", EpisodeDone) }, entry("b", false), true},
		{"resolved episode never fires again", func() error { return closeEpisode(s, "c", EpisodeResolved) }, entry("c", false), false},
	}
	for _, st := range steps {
		if st.do != nil {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
		}
		fresh, err := s.Accept([]InboxEntry{st.e})
		if err != nil {
			t.Fatal(err)
		}
		if fresh[0] != st.want {
			t.Errorf("%s: fresh=%v, want %v", st.name, fresh[0], st.want)
		}
	}
}

func TestHealsNewestFirstFilteredAndPruned(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	for i, tg := range []string{"a", "b", "a", "a"} {
		h := &Heal{Target: tg, Playbook: "pb", Started: now.Add(time.Duration(i-10) * time.Hour), Result: HealHealed}
		if err := s.NewHeal(h, Target{Name: tg}, "ep"); err != nil {
			t.Fatal(err)
		}
	}
	hs, err := s.Heals(HealFilter{Target: "a"})
	if err != nil || len(hs) != 3 || hs[0].ID != "4" || hs[2].ID != "1" {
		t.Fatalf("heals %+v %v", hs, err)
	}
	n, err := s.Prune(now, 8*time.Hour, 2)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d %v", n, err)
	}
	hs, _ = s.Heals(HealFilter{})
	if len(hs) != 2 || hs[0].ID != "4" {
		t.Fatalf("after prune %+v", hs)
	}
}

// The inbox index is rebuilt from the file: after a reopen, a repeat delivery of an undecided
// alert is still a repeat, closing an entry removes it by its key, and the inbox keeps the
// order of acceptance.
func TestInboxSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{"c", "a", "b"} {
		if _, err := s.Accept([]InboxEntry{entry(fp, false)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fresh, err := s.Accept([]InboxEntry{entry("a", false), entry("d", false)})
	if err != nil || fresh[0] || !fresh[1] {
		t.Fatalf("after reopen: fresh %v %v, want [false true]", fresh, err)
	}
	if err := closeEpisode(s, "a", EpisodeSuppressed); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(nil, []Close{{InboxKey: "b", DropOnly: true}}); err != nil {
		t.Fatal(err)
	}
	if got := inboxKeys(t, s); got != "c d" {
		t.Fatalf("inbox %q, want \"c d\" in acceptance order", got)
	}
	if fresh, err := s.Accept([]InboxEntry{entry("a", false)}); err != nil || !fresh[0] {
		t.Fatalf("closed as suppressed, a new delivery is decided anew: fresh %v %v", fresh, err)
	}
}

// A file written when the inbox was keyed by episode and status is moved to sequence keys at
// Open, oldest first, and its entries can still be found and closed by key. Unreadable entries
// are dropped and logged; the rest of the state stays.
func TestLegacyInboxIsRekeyed(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInbox)
		if err != nil {
			return err
		}
		for i, fp := range []string{"late", "early"} {
			e := entry(fp+"-fingerprint", false)
			e.ReceivedAt = now.Add(-time.Duration(i) * time.Minute)
			buf, _ := json.Marshal(e)
			if err := b.Put([]byte(e.Key), buf); err != nil {
				return err
			}
		}
		// One unreadable entry of each form, and a target that must survive them.
		if err := b.Put([]byte("garbled-fingerprint"), []byte("{not json")); err != nil {
			return err
		}
		if err := b.Put(seqKey(99), []byte("{}")); err != nil {
			return err
		}
		tb, err := tx.CreateBucketIfNotExists(bucketTargets)
		if err != nil {
			return err
		}
		return tb.Put([]byte("payment"), []byte(`{"name":"payment","attempts":["2026-01-01T00:00:00Z"]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	s, err := Open(dir, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := inboxKeys(t, s); got != "early-fingerprint late-fingerprint" {
		t.Fatalf("inbox %q, want oldest first and the unreadable entries dropped", got)
	}
	if n := strings.Count(log.String(), "dropping an unreadable inbox entry"); n != 2 {
		t.Errorf("%d unreadable entries logged, want 2:\n%s", n, log.String())
	}
	if tg, ok, err := s.Target("payment"); err != nil || !ok || len(tg.Attempts) != 1 {
		t.Errorf("target after dropping unreadable inbox entries: %+v %v %v, want it kept", tg, ok, err)
	}
	if fresh, err := s.Accept([]InboxEntry{entry("late-fingerprint", false)}); err != nil || fresh[0] {
		t.Fatalf("repeat of a migrated entry: fresh %v %v, want false", fresh, err)
	}
	if err := s.Apply(nil, []Close{{InboxKey: "early-fingerprint", DropOnly: true}}); err != nil {
		t.Fatal(err)
	}
	if got := inboxKeys(t, s); got != "late-fingerprint" {
		t.Fatalf("inbox %q after dropping the early entry", got)
	}
}

func inboxKeys(t *testing.T, s *Store) string {
	t.Helper()
	in, err := s.Inbox()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range in {
		keys = append(keys, e.Key)
	}
	return strings.Join(keys, " ")
}

// Only the ends of an episode that change later deliveries are kept: acting and resolved. A
// heal that finished leaves no episode record behind, so deciding alerts does not grow the file.
func TestOnlyActingAndResolvedEpisodesAreKept(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Accept([]InboxEntry{entry("a", false), entry("b", false)}); err != nil {
		t.Fatal(err)
	}
	h := &Heal{Target: "t", Started: time.Now(), Result: HealRunning}
	if err := s.NewHeal(h, Target{Name: "t"}, "a"); err != nil {
		t.Fatal(err)
	}
	if ep, ok, err := s.Episode("a"); err != nil || !ok || ep.State != EpisodeActing || ep.HealID != h.ID {
		t.Fatalf("episode after NewHeal: %+v %v %v", ep, ok, err)
	}
	h.Result, h.Ended = HealHealed, time.Now()
	if err := s.FinishHeal(h, Target{Name: "t"}, "a", "a"); err != nil {
		t.Fatal(err)
	}
	if err := closeEpisode(s, "b", EpisodeResolved); err != nil {
		t.Fatal(err)
	}
	if ep, ok, err := s.Episode("a"); err != nil || ok {
		t.Fatalf("episode after its heal finished: %+v %v %v, want no record", ep, ok, err)
	}
	if ep, ok, err := s.Episode("b"); err != nil || !ok || ep.State != EpisodeResolved {
		t.Fatalf("resolved episode: %+v %v %v", ep, ok, err)
	}
	if got := inboxKeys(t, s); got != "" {
		t.Fatalf("inbox %q after both were decided, want empty", got)
	}
}

// closeEpisode ends the episode key (whose firing entry has the same key) as the pipeline does.
func closeEpisode(s *Store, key, state string) error {
	return s.Apply(nil, []Close{{EpisodeKey: key, InboxKey: key, State: state, At: time.Now()}})
}

// A delivery of repeats only (pending, acting or resolved episodes) is answered from the index
// without a commit, with the answer the writer gives; a delivery with anything new, or touching
// a decision not yet on disk, goes through the writer.
func TestRepeatsNeedNoCommit(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Accept([]InboxEntry{entry("pending", false), entry("acting", false), entry("resolved", false)}); err != nil {
		t.Fatal(err)
	}
	if err := s.NewHeal(&Heal{Target: "t", Started: time.Now(), Result: HealRunning}, Target{Name: "t"}, "acting"); err != nil {
		t.Fatal(err)
	}
	if err := closeEpisode(s, "resolved", EpisodeResolved); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	before, beforeSyncs := s.commits.Load(), s.logSyncs.Load()
	for _, tc := range []struct {
		name string
		e    []InboxEntry
	}{
		{"pending", []InboxEntry{entry("pending", false)}},
		{"acting, firing", []InboxEntry{entry("acting", false)}},
		{"resolved, firing", []InboxEntry{entry("resolved", false)}},
		{"resolved, resolved", []InboxEntry{entry("resolved", true)}},
		{"all three", []InboxEntry{entry("pending", false), entry("acting", false), entry("resolved", true)}},
	} {
		fresh, err := s.Accept(tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, f := range fresh {
			if f {
				t.Errorf("%s: alert %d new, want a repeat", tc.name, i)
			}
		}
	}
	if n, m := s.commits.Load()-before, s.logSyncs.Load()-beforeSyncs; n+m != 0 {
		t.Fatalf("repeats cost %d commits and %d log syncs, want none", n, m)
	}

	// The writer decides what is new: an acting episode resolving, and a repeat next to a new alert.
	fresh, err := s.Accept([]InboxEntry{entry("acting", true), entry("pending", false), entry("new", false)})
	if err != nil || !fresh[0] || fresh[1] || !fresh[2] {
		t.Fatalf("mixed delivery: fresh %v %v, want [true false true]", fresh, err)
	}
	if n := s.logSyncs.Load() - beforeSyncs; n != 1 {
		t.Fatalf("mixed delivery: %d log syncs, want 1", n)
	}

	// After Close a repeat is refused like any write.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept([]InboxEntry{entry("pending", false)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("repeat after Close: %v, want ErrClosed", err)
	}
}

// A repeat of an episode whose decision is queued but not on disk waits for it, so it gets the
// answer it would get had the writer taken both in order: after a close, the episode is new.
func TestRepeatWaitsForQueuedDecision(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for round := range 50 {
		key := fmt.Sprintf("a%d", round)
		if _, err := s.Accept([]InboxEntry{entry(key, false)}); err != nil {
			t.Fatal(err)
		}
		done := s.ApplyLater(nil, []Close{{EpisodeKey: key, InboxKey: key, State: EpisodeSuppressed, At: time.Now()}})
		fresh, err := s.Accept([]InboxEntry{entry(key, false)})
		if err != nil || !fresh[0] {
			t.Fatalf("round %d: delivery after the queued close: fresh %v %v, want new", round, fresh, err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Prune drops episodes it finds only inside its transaction: while it is queued, no repeat is
// answered from the index.
func TestPruneHoldsRepeatsBack(t *testing.T) {
	x := newInboxIndex()
	x.states["r"] = episodeResolved
	repeat := []InboxEntry{entry("r", false)}
	if !x.repeats(repeat) {
		t.Fatal("repeat of a resolved episode not answered from the index")
	}
	prune := &writeReq{barrier: true}
	x.unsettle(prune)
	if x.repeats(repeat) {
		t.Fatal("repeat answered from the index while Prune is queued")
	}
	x.end(true, []*writeReq{prune})
	if !x.repeats(repeat) {
		t.Fatal("repeat not answered from the index after Prune committed")
	}
	closing := &writeReq{keys: []string{"r"}}
	x.unsettle(closing)
	if x.repeats(repeat) {
		t.Fatal("repeat answered from the index while a write of its episode is queued")
	}
	x.end(false, []*writeReq{closing})
	if !x.repeats(repeat) {
		t.Fatal("a failed write left its episode unsettled")
	}
}

// A fleet's targets arrive in bursts of neighbouring names; their pages must not be left half
// empty, as bbolt's split at half full would (every page of the file read is resident memory).
func TestTargetRecordsArePacked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for batch := range 20 {
		var ts []Target
		for i := range 500 {
			ts = append(ts, Target{Name: fmt.Sprintf("svc-%05d", batch*500+i), Playbook: "memory-high", State: "firing"})
		}
		if err := s.Apply(ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		st := tx.Bucket(bucketTargets).Stats()
		if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); st.KeyN != 10000 || fill < 0.8 {
			t.Errorf("%d targets on %d leaf pages, %.0f%% of their bytes in use; want at least 80%%", st.KeyN, st.LeafPageN, 100*fill)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
