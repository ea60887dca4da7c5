package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
)

func TestPendingApprovalsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := PendingApproval{HealID: "7", Step: 1, StepName: "restart", Target: "c1", Playbook: "pb",
		Episode: "ep", InboxKey: "ik", Alert: template.Alert{Labels: template.KV{"alertname": "Down"}},
		Requested: now, Deadline: now.Add(time.Minute)}
	if err := s.PutPendingApproval(a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutPendingApproval(PendingApproval{HealID: "8"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePendingApproval("8"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.PendingApprovals()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].HealID != "7" || got[0].StepName != "restart" || !got[0].Deadline.Equal(a.Deadline) ||
		got[0].Alert.Labels["alertname"] != "Down" {
		t.Errorf("pending approvals after reopen = %+v", got)
	}
}

func TestOverrideHistoryIsBoundedAndFiltered(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	none, err := s.Overrides("c1", false, 0)
	if err != nil || len(none) != 0 {
		t.Fatalf("empty history = %v, %v", none, err)
	}
	for i := range OverridesKept + 5 {
		target := "c1"
		if i%2 == 1 {
			target = ""
		}
		if err := s.RecordOverride(Override{Action: OverridePause, Target: target, Actor: fmt.Sprint("op", i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.Overrides("", true, OverridesKept*2)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != OverridesKept || all[0].Actor != fmt.Sprint("op", OverridesKept+4) || all[len(all)-1].Actor != "op5" {
		t.Errorf("history: %d entries, newest %q, oldest %q", len(all), all[0].Actor, all[len(all)-1].Actor)
	}
	c1, err := s.Overrides("c1", false, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(c1) != 3 || c1[0].Target != "c1" || c1[0].Actor != fmt.Sprint("op", OverridesKept+4) {
		t.Errorf("c1 history = %+v", c1)
	}
	global, err := s.Overrides("", false, 1)
	if err != nil || len(global) != 1 || global[0].Target != "" {
		t.Errorf("global history = %+v, %v", global, err)
	}
}
