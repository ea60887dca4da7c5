package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

// row writes one table row; cells are cleaned, since most come from alerts.
func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		cells[i] = cell(c)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// cell makes one line of a text: labels, annotations, logs and errors come from alerts and the
// targets' own output, and must not move the table's columns or drive the terminal (escape
// sequences). Empty is "-".
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// text keeps line breaks (a log) but nothing else that drives a terminal.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func targetTable(w io.Writer, ts []pipeline.TargetView, now time.Time) error {
	tw := newTable(w)
	row(tw, "TARGET", "STATE", "PLAYBOOK", "BUDGET", "COOLDOWN", "PAUSED", "FIRING", "LAST HEAL")
	for _, t := range ts {
		budget := fmt.Sprintf("%d used", t.AttemptsUsed)
		if t.AttemptsLeft != nil {
			budget = fmt.Sprintf("%d used, %d left", t.AttemptsUsed, *t.AttemptsLeft)
			if t.BudgetWindow != "" {
				budget += " /" + t.BudgetWindow
			}
		}
		if t.Suspended {
			budget += " (suspended)"
		}
		cooldown := ""
		if t.CooldownUntil != nil {
			cooldown = "until " + stamp(*t.CooldownUntil)
		}
		paused := "no"
		if t.Paused {
			paused = "yes"
			if t.PausedUntil != nil {
				paused = "until " + stamp(*t.PausedUntil)
			}
		}
		last := ""
		if t.LastHeal != nil {
			last = t.LastHeal.ID + " " + t.LastHeal.Result + " " + stamp(t.LastHeal.Started)
		}
		row(tw, t.Name, t.State, t.Playbook, budget, cooldown, paused, strings.Join(t.Firing, ","), last)
	}
	return tw.Flush()
}

func healTable(w io.Writer, hs []store.Heal) error {
	tw := newTable(w)
	row(tw, "ID", "STARTED", "TARGET", "PLAYBOOK", "ALERT", "RESULT", "STEPS", "DURATION")
	for _, h := range hs {
		steps := make([]string, 0, len(h.Steps))
		for _, s := range h.Steps {
			steps = append(steps, s.Name+":"+s.Outcome)
		}
		row(tw, h.ID, stamp(h.Started), h.Target, h.Playbook, h.Alert.Name, h.Result, strings.Join(steps, " "), duration(h.Started, h.Ended))
	}
	return tw.Flush()
}

func duration(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return ""
	}
	return to.Sub(from).Round(time.Millisecond).String()
}

// healDetail shows one heal whole: the heal, its steps as a table, then each step's evidence
// and errors.
func healDetail(w io.Writer, h store.Heal) error {
	tw := newTable(w)
	row(tw, "Heal:", h.ID)
	row(tw, "Target:", h.Target)
	row(tw, "Playbook:", h.Playbook)
	row(tw, "Alert:", h.Alert.Name+" (fingerprint "+h.Alert.Fingerprint+", since "+stamp(h.Alert.StartsAt)+")")
	row(tw, "Result:", h.Result)
	if h.Reason != "" {
		row(tw, "Reason:", h.Reason)
	}
	row(tw, "Started:", stamp(h.Started))
	row(tw, "Ended:", stamp(h.Ended))
	if h.OutsideRestart != nil {
		row(tw, "Outside restart:", h.OutsideRestart.What)
	}
	if h.Relapse != nil {
		row(tw, "Relapsed:", stamp(h.Relapse.At)+" ("+h.Relapse.Alert.Name+" came back)")
	}
	if len(h.Alert.Labels) > 0 {
		row(tw, "Labels:", pairs(h.Alert.Labels))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	row(tw, "STEP", "ACTION", "OUTCOME", "STARTED", "DURATION", "REASON", "ERROR")
	for _, s := range h.Steps {
		row(tw, s.Name, s.Action, s.Outcome, stamp(s.Start), duration(s.Start, s.End), s.Reason, s.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range h.Steps {
		if s.Detail == "" && s.Evidence == nil && s.EvidenceError == "" {
			continue
		}
		fmt.Fprintf(w, "\nStep %s:\n", cell(s.Name))
		if s.Detail != "" {
			fmt.Fprintf(w, "  Detail: %s\n", cell(s.Detail))
		}
		if s.EvidenceError != "" {
			fmt.Fprintf(w, "  No evidence: %s\n", cell(s.EvidenceError))
		}
		if ev := s.Evidence; ev != nil {
			fmt.Fprintf(w, "  Evidence of %s, captured %s\n", cell(ev.Object), stamp(ev.Captured))
			if len(ev.State) > 0 {
				fmt.Fprintf(w, "  State: %s\n", cell(pairs(ev.State)))
			}
			for _, e := range ev.Events {
				fmt.Fprintf(w, "  Event: %s\n", cell(e))
			}
			if ev.Log != "" {
				fmt.Fprintln(w, "  Log:")
				for _, l := range strings.Split(strings.TrimRight(text(ev.Log), "\n"), "\n") {
					fmt.Fprintln(w, "    "+l)
				}
			}
		}
	}
	return nil
}

// pairs is k=v, sorted by key.
func pairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + m[k]
	}
	return strings.Join(out, " ")
}
