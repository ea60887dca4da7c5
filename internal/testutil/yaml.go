package testutil

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ReadYAML decodes the YAML file at path into v, failing the test with the path on error.
func ReadYAML(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}
