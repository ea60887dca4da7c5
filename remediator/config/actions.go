package config

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// The values a step may ask for. Each table lives here once: the loader accepts what is in it
// and the actuators act on exactly that, so a file that passes --config.check runs.

// stepKind is one kind of step: the key it is written under and whether a step is of it.
type stepKind struct {
	key string
	is  func(*Step) bool
}

// stepKinds lists the kinds of step, in the order messages name them. A new actuator adds its
// field to Step and a row here.
var stepKinds = []stepKind{
	{"http", func(s *Step) bool { return s.HTTP != nil }},
	{"docker", func(s *Step) bool { return s.Docker != nil }},
	{"kubernetes", func(s *Step) bool { return s.Kubernetes != nil }},
	{"command", func(s *Step) bool { return s.Command != nil }},
	{"swarm", func(s *Step) bool { return s.Swarm != nil }},
	{"wait", func(s *Step) bool { return s.Wait != nil }},
}

// StepKinds are the keys a step's action may be written under.
func StepKinds() []string {
	keys := make([]string, len(stepKinds))
	for i, k := range stepKinds {
		keys[i] = k.key
	}
	return keys
}

// DefaultStepName names a step the file leaves unnamed, from its position (0-based) and kind:
// "2-docker".
func DefaultStepName(i int, kind string) string { return strconv.Itoa(i+1) + "-" + kind }

// DefaultHTTPMethod is an http step's method when none is given.
const DefaultHTTPMethod = http.MethodPost

// httpMethods are the methods an http step may use.
var httpMethods = map[string]bool{
	http.MethodGet: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodHead: true, http.MethodOptions: true,
}

// DockerActions are the operations a docker step may ask for.
var DockerActions = []string{"restart", "stop", "start", "kill", "recreate"}

// DefaultSignal is what a docker kill step sends when it names no signal, as `docker kill` does.
const DefaultSignal = "SIGKILL"

// Signals are the signals a docker kill step may send, by name, with their Linux numbers: a
// step may give either. Only signals in this table pass the loader, and the Docker actuator
// sends exactly these.
var Signals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGTRAP": 5, "SIGABRT": 6, "SIGKILL": 9, "SIGUSR1": 10,
	"SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGCONT": 18, "SIGSTOP": 19,
	"SIGTSTP": 20, "SIGWINCH": 28, "SIGPWR": 30, "SIGSYS": 31,
}

// ParseSignal returns the name in Signals ("SIGKILL") of a signal given as KILL, SIGKILL,
// sigkill or 9.
func ParseSignal(s string) (string, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(s); err == nil {
		for name, num := range Signals {
			if num == n {
				return name, true
			}
		}
		return "", false
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	_, ok := Signals[s]
	return s, ok
}

// SignalNames lists Signals' names in number order, for messages.
func SignalNames() []string {
	names := make([]string, 0, len(Signals))
	for n := range Signals {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return Signals[names[i]] < Signals[names[j]] })
	return names
}
