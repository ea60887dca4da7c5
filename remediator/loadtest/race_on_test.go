//go:build race

package loadtest

// raceEnabled: the race detector slows everything down several times, so wall-clock budgets
// are reported but not enforced.
const raceEnabled = true
