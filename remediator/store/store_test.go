package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
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
		{"heal done, re-delivered firing is decided anew", func() error { return s.CloseEpisode("b", "b", EpisodeDone, time.Now()) }, entry("b", false), true},
		{"resolved episode never fires again", func() error { return s.CloseEpisode("c", "c", EpisodeResolved, time.Now()) }, entry("c", false), false},
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
