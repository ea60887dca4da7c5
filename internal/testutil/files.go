package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// ReadFile returns the content of the file at path, failing the test when it cannot be read.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Testdata returns the content of testdata/name, a fixture of the package under test.
func Testdata(t testing.TB, name string) string {
	t.Helper()
	return ReadFile(t, filepath.Join("testdata", name))
}

// WriteFile writes content to dir/name, readable by the owner only (it may hold a token), and
// returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
