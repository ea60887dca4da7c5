package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

// The binary is its own client: a subcommand against a running remediator exits 0 with its
// answer, against nothing exits 1 naming the URL, and the default command still serves.
func TestClientSubcommands(t *testing.T) {
	bin := buildBinaries(t) + "/remediator"
	dir := t.TempDir()
	token := testutil.WriteFile(t, dir, "token", "tok")
	p := testutil.StartRemediator(t, bin, dir, testutil.Testdata(t, "playbooks.yml"), "--webhook.token-file="+token)
	client := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "REMEDIATOR_TOKEN=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := client("pause", "--remediator.url", p.URL, "--remediator.token-file", token, "--for", "1m"); code != 0 || !strings.Contains(out, "paused all healing") {
		t.Fatalf("pause: exit %d\n%s", code, out)
	}
	if code, out := client("pause", "--remediator.url", p.URL); code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("pause without a token: exit %d\n%s", code, out)
	}
	if code, out := client("heals", "--remediator.url", p.URL, "-o", "json"); code != 0 || !strings.Contains(out, `"heals": []`) {
		t.Fatalf("heals: exit %d\n%s", code, out)
	}
	closed := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	if code, out := client("targets", "--remediator.url", closed); code != 1 || !strings.Contains(out, "cannot reach the remediator at "+closed) {
		t.Fatalf("targets against nothing: exit %d\n%s", code, out)
	}
}
