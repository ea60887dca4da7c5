package action

import (
	"errors"
	"fmt"
	"testing"
)

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
