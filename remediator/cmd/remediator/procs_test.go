package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/selfheal/selfheal/internal/testutil"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildBinaries builds bin/remediator and bin/demo-service once for this package's tests.
func buildBinaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "remediator-test-bin")
		if buildErr != nil {
			return
		}
		root := testutil.RepoRoot(t)
		for name, pkg := range map[string]string{"remediator": "./remediator/cmd/remediator", "demo-service": "./services/cmd/demo-service"} {
			if buildErr = testutil.BuildStatic(root, pkg, filepath.Join(binDir, name)); buildErr != nil {
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type healJSON struct {
	ID       string `json:"id"`
	Target   string `json:"target"`
	Playbook string `json:"playbook"`
	Result   string `json:"result"`
	Alert    struct {
		Name        string `json:"name"`
		Fingerprint string `json:"fingerprint"`
	} `json:"alert"`
	Silences []string `json:"silences"`
	Steps    []struct {
		Name    string `json:"name"`
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
		Error   string `json:"error"`
	} `json:"steps"`
}

func heals(t *testing.T, base, query string) []healJSON {
	t.Helper()
	var r struct{ Heals []healJSON }
	testutil.GetJSON(t, base+"/api/v1/heals"+query, &r)
	return r.Heals
}

func (h healJSON) stepSummary() string {
	var parts []string
	for _, s := range h.Steps {
		parts = append(parts, s.Name+"="+s.Outcome)
	}
	return strings.Join(parts, ",")
}
