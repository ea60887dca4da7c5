package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a playbooks file, with where it is and how to fix it.
type Error struct {
	File string
	Line int
	Msg  string
	// Hint says what to write instead; empty when the message says it already.
	Hint string
}

func (e Error) Error() string {
	s := fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

// Errors holds every problem found in one file, sorted by line, so an operator fixes them all in
// one round instead of one per reload.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errs collects problems, dropping exact repeats (a bad default is reported once, not per playbook).
type errs struct {
	file string
	list Errors
	seen map[string]bool
}

func (c *errs) add(line int, hint, format string, args ...any) {
	e := Error{File: c.file, Line: line, Msg: fmt.Sprintf(format, args...), Hint: hint}
	k := e.Error()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	if c.seen[k] {
		return
	}
	c.seen[k] = true
	c.list = append(c.list, e)
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	out := append(Errors(nil), c.list...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}
