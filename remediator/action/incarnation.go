package action

import (
	"context"
	"fmt"
	"time"
)

// An IncarnationReporter tells which run of a target's process is current. A heal compares the
// run it started with to the one it ends with: a run that none of its own steps started (a
// restart policy after an OOM kill or a crash, a person, another tool) means the recovery was
// not the heal's doing.
type IncarnationReporter interface {
	Incarnation(ctx context.Context, req Request) (Incarnation, error)
}

// Incarnation is one run of an acted-on object: for Docker, a container's id with its start
// time and restart count. Any of them changing means the process was replaced.
type Incarnation struct {
	// Object names the object as Evidence does.
	Object string `json:"object"`
	// ID is the object's identity: another ID is another object, even under the same name.
	ID string `json:"id"`
	// Started is when the current (or, when stopped, the last) process started.
	Started time.Time `json:"started"`
	// Restarts counts the platform's own restarts of the object (its restart policy).
	Restarts int  `json:"restarts"`
	Running  bool `json:"running"`
	// Finished, ExitCode and OOMKilled say when and how the previous process ended, as far as
	// the platform still tells: Docker keeps them across a restart by its policy.
	Finished  time.Time `json:"finished,omitzero"`
	ExitCode  int       `json:"exit_code,omitempty"`
	OOMKilled bool      `json:"oom_killed,omitempty"`
}

// Same reports whether o is the same run as i.
func (i Incarnation) Same(o Incarnation) bool {
	return i.ID == o.ID && i.Started.Equal(o.Started) && i.Restarts == o.Restarts && i.Running == o.Running
}

// ChangeSince says what happened between the run before and this one, in a sentence for the heal
// record; empty when they are the same run.
func (i Incarnation) ChangeSince(before Incarnation) string {
	switch {
	case i.Same(before):
		return ""
	case i.ID != before.ID:
		return fmt.Sprintf("%s was replaced by %s, started %s", before.Object, i.Object, stamp(i.Started))
	case i.Restarts > before.Restarts:
		s := fmt.Sprintf("%s was restarted by its restart policy (restarts %d -> %d), last at %s", i.Object, before.Restarts, i.Restarts, stamp(i.Started))
		switch {
		case i.OOMKilled:
			s += fmt.Sprintf(", after the kernel killed it for lack of memory (OOMKilled) at %s", stamp(i.Finished))
		case !i.Finished.IsZero():
			s += fmt.Sprintf(", after its process ended at %s", stamp(i.Finished))
		}
		if !i.Running {
			s += "; it is not running now"
		}
		return s
	case before.Running && !i.Running:
		s := fmt.Sprintf("%s stopped at %s with exit code %d", i.Object, stamp(i.Finished), i.ExitCode)
		if i.OOMKilled {
			s += ", killed by the kernel for lack of memory (OOMKilled)"
		}
		return s
	}
	return fmt.Sprintf("%s was started again at %s, not by its restart policy: by a person or another tool", i.Object, stamp(i.Started))
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
