package action

import (
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
