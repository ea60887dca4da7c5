//go:build race

package demo_test

// With -race, the service processes are built with the race detector too.
func init() { buildFlags = append(buildFlags, "-race") }
