package loadtest

import (
	"testing"
)

// startRemediator starts a remediator for a test, which defers stopRemediator: a deferred stop
// runs before the test's other cleanups, such as closing the endpoints its heals call.
func startRemediator(t *testing.T, o Options) *Remediator {
	t.Helper()
	r, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func stopRemediator(t *testing.T, r *Remediator) {
	t.Helper()
	if err := r.Stop(); err != nil {
		t.Error(err)
	}
}
