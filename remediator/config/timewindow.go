package config

import (
	"fmt"
	"strings"
	"time"

	_ "time/tzdata" // the image is FROM scratch: no zoneinfo on disk
)

var weekdayNames = map[string]time.Weekday{
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// parseWeekdays reads Alertmanager-style weekdays: names or ranges such as "monday:friday".
// No weekdays means every day.
func parseWeekdays(in []string) ([7]bool, error) {
	var days [7]bool
	if len(in) == 0 {
		for i := range days {
			days[i] = true
		}
		return days, nil
	}
	for _, w := range in {
		from, to, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(w)), ":")
		a, ok := weekdayNames[from]
		if !ok {
			return days, fmt.Errorf("unknown weekday %q", from)
		}
		b := a
		if isRange {
			if b, ok = weekdayNames[to]; !ok {
				return days, fmt.Errorf("unknown weekday %q", to)
			}
		}
		for d := a; ; d = (d + 1) % 7 {
			days[d] = true
			if d == b {
				break
			}
		}
	}
	return days, nil
}

// parseClock reads "HH:MM" (24h) as minutes after midnight; "24:00" ends a day.
func parseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	if h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("time %q is out of range 00:00-24:00", s)
	}
	return h*60 + m, nil
}

// compile fills the parsed fields; each error names the key that is wrong.
func (w *TimeWindow) compile() (key string, err error) {
	if w.days, err = parseWeekdays(w.Weekdays); err != nil {
		return "weekdays", err
	}
	start, end := w.Start, w.End
	if start == "" {
		start = "00:00"
	}
	if end == "" {
		end = "24:00"
	}
	if w.startMin, err = parseClock(start); err != nil {
		return "start", err
	}
	if w.endMin, err = parseClock(end); err != nil {
		return "end", err
	}
	if w.startMin == w.endMin {
		return "end", fmt.Errorf("start and end are both %s, an empty window", start)
	}
	w.loc = time.UTC
	if w.Location != "" {
		if w.loc, err = time.LoadLocation(w.Location); err != nil {
			return "location", fmt.Errorf("unknown location %q", w.Location)
		}
	}
	w.validated = true
	return "", nil
}

// Contains reports whether t falls in the window. A window whose end is before its start runs
// over midnight and belongs to the weekday it starts on.
func (w *TimeWindow) Contains(t time.Time) bool {
	if !w.validated { // built by hand, not by Parse: compile a copy, never race on w
		c := *w
		if _, err := c.compile(); err != nil {
			return false
		}
		return c.Contains(t)
	}
	t = t.In(w.loc)
	min := t.Hour()*60 + t.Minute()
	if w.startMin < w.endMin {
		return w.days[t.Weekday()] && min >= w.startMin && min < w.endMin
	}
	if min >= w.startMin {
		return w.days[t.Weekday()]
	}
	return min < w.endMin && w.days[(t.Weekday()+6)%7]
}

// InTimeWindow reports whether the playbook may heal at t: always when it has no time windows,
// else when any window contains t.
func (p *Playbook) InTimeWindow(t time.Time) bool {
	if len(p.TimeWindows) == 0 {
		return true
	}
	for i := range p.TimeWindows {
		if p.TimeWindows[i].Contains(t) {
			return true
		}
	}
	return false
}
