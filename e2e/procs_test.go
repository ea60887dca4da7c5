package e2e

import (
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// need fails the test when something the end-to-end run requires is missing: with E2E set the
// caller asked for the whole stack, so a skip (testutil.Require outside CI) would hide a broken
// machine.
func need(t testing.TB, ok bool, why string) {
	t.Helper()
	if !ok {
		t.Fatalf("e2e needs %s", why)
	}
}

// lookTool finds the first of names as testutil.Find does, or fails the test.
func lookTool(t testing.TB, names ...string) string {
	t.Helper()
	p, ok := testutil.Find(names...)
	need(t, ok, names[0]+" (see .ci/run for the packages)")
	return p
}
