package action

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSettingsWithDefaults(t *testing.T) {
	got := Settings{}.WithDefaults(time.Minute)
	if got.OptInLabel != DefaultOptInLabel || got.ProtectedLabel != DefaultProtectedLabel || got.Timeout != time.Minute || got.Logger == nil {
		t.Errorf("empty settings became %+v, want the shared labels, the given timeout and a logger", got)
	}
	set := Settings{OptInLabel: "heal", ProtectedLabel: "keep", Timeout: time.Second}
	if got := set.WithDefaults(time.Minute); got.OptInLabel != "heal" || got.ProtectedLabel != "keep" || got.Timeout != time.Second {
		t.Errorf("settings given became %+v, want them kept", got)
	}
}

func TestRefusalSurvivesWrapping(t *testing.T) {
	err := fmt.Errorf("resolve target: %w", Refuse(RefusedProtected, "%s carries %s", "api", DefaultProtectedLabel))
	var r *Refusal
	if !IsRefusal(err) || !errors.As(err, &r) || r.Kind != RefusedProtected || r.Error() != "api carries remediator.protected" {
		t.Errorf("wrapped refusal: %v (%+v), want a protected refusal with its reason", err, r)
	}
	if IsRefusal(errors.New("connection refused")) {
		t.Error("a plain error counts as a refusal")
	}
}
