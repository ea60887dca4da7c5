package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the image is FROM scratch: no zoneinfo on disk

	"github.com/prometheus/alertmanager/timeinterval"
	yamlv2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// A time window is an Alertmanager time interval, read by Alertmanager's own timeinterval
// package: the keys and values of time_intervals in alertmanager.yml (times, weekdays,
// days_of_month, months, years, location), so an operator writes them once for both. The older
// form (weekdays, start, end, location) still loads; it becomes one interval, or two for a
// window that runs over midnight, which Alertmanager's times cannot.

// olderTimeWindow is the older form's keys, for the schema check.
type olderTimeWindow struct {
	Weekdays []string `yaml:"weekdays"`
	Start    string   `yaml:"start"`
	End      string   `yaml:"end"`
	Location string   `yaml:"location"`
}

var (
	typeTimeWindow      = reflect.TypeOf(TimeWindow{})
	typeOlderTimeWindow = reflect.TypeOf(olderTimeWindow{})
)

// intervalKeys are the keys only Alertmanager's form has.
var intervalKeys = []string{"times", "days_of_month", "months", "years"}

// isOlderForm: a window without Alertmanager's own keys is read the older way, which accepts
// everything Alertmanager's weekdays and location do, and the short day names too.
func isOlderForm(n *yaml.Node) bool {
	v := mappingValues(n)
	for _, k := range intervalKeys {
		if v[k] != nil {
			return false
		}
	}
	return true
}

func (s *schema) timeWindow(n *yaml.Node, path string, depth int) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		s.fail(n.Line, "write it as `key: value` lines", "%s must be a mapping, got %s", s.at(path), kindName(n))
		return
	}
	if isOlderForm(n) {
		// Values are checked by validation, which names the key that is wrong.
		s.mapping(n, typeOlderTimeWindow, path, depth)
		return
	}
	if kn := mappingKey(n, "start"); kn != nil || mappingKey(n, "end") != nil {
		if kn == nil {
			kn = mappingKey(n, "end")
		}
		s.fail(kn.Line, "write times: [{start_time: '08:00', end_time: '18:00'}] instead of start and end",
			"%s: start and end (the older form of a time window) cannot be mixed with %s", s.at(path), strings.Join(intervalKeys, ", "))
		return
	}
	if _, err := loadTimeInterval(n); err != nil {
		s.fail(n.Line, "a time window takes Alertmanager's time_intervals keys: times (start_time, end_time), weekdays, days_of_month, months, years, location",
			"%s: %v", s.at(path), err)
	}
}

func mappingKey(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

// loadTimeInterval reads a node with Alertmanager's parser, strictly: an unknown key is an error.
func loadTimeInterval(n *yaml.Node) (timeinterval.TimeInterval, error) {
	var ti timeinterval.TimeInterval
	b, err := yaml.Marshal(n)
	if err != nil {
		return ti, err
	}
	if err := yamlv2.UnmarshalStrict(b, &ti); err != nil {
		return ti, cleanYAMLv2Error(err)
	}
	return ti, nil
}

// cleanYAMLv2Error drops yaml.v2's line numbers: they count from the time window, which is
// decoded alone, not from the file; the window's own line is reported instead.
func cleanYAMLv2Error(err error) error {
	msgs := []string{err.Error()}
	if te, ok := errors.AsType[*yamlv2.TypeError](err); ok {
		msgs = te.Errors
	}
	for i, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		if strings.HasPrefix(m, "line ") {
			if j := strings.Index(m, ": "); j > 0 {
				m = m[j+2:]
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// UnmarshalYAML reads either form; the schema check has already reported what is wrong.
func (w *TimeWindow) UnmarshalYAML(n *yaml.Node) error {
	*w = TimeWindow{}
	if isOlderForm(n) {
		var o olderTimeWindow
		if err := n.Decode(&o); err != nil {
			return err
		}
		w.Weekdays, w.Start, w.End, w.Location = o.Weekdays, o.Start, o.End, o.Location
		return nil
	}
	ti, err := loadTimeInterval(n)
	if err != nil {
		return err
	}
	w.Intervals = []timeinterval.TimeInterval{ti}
	return nil
}

func (w *TimeWindow) olderForm() bool {
	return w.Start != "" || w.End != "" || len(w.Weekdays) > 0 || w.Location != ""
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

// shortDays are the older form's day names that Alertmanager does not know.
var shortDays = map[string]string{
	"sun": "sunday", "mon": "monday", "tue": "tuesday", "wed": "wednesday", "thu": "thursday", "fri": "friday", "sat": "saturday",
}

// parseWeekdays reads weekdays ("monday:friday", "sat") with Alertmanager's parser.
func parseWeekdays(in []string) ([]timeinterval.WeekdayRange, error) {
	var out []timeinterval.WeekdayRange
	for _, w := range in {
		from, to, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(w)), ":")
		for _, d := range []*string{&from, &to} {
			if long, ok := shortDays[*d]; ok {
				*d = long
			}
		}
		days := []string{from}
		if isRange {
			days = append(days, to)
		}
		for _, d := range days {
			if !validWeekday(d) {
				return nil, fmt.Errorf("unknown weekday %q", d)
			}
		}
		s := strings.Join(days, ":")
		var r timeinterval.WeekdayRange
		if err := yamlv2.Unmarshal([]byte(strconv.Quote(s)), &r); err != nil {
			return nil, fmt.Errorf("weekdays %q: %v", w, cleanYAMLv2Error(err))
		}
		out = append(out, r)
	}
	return out, nil
}

func validWeekday(d string) bool {
	var r timeinterval.WeekdayRange
	return d != "" && yamlv2.Unmarshal([]byte(strconv.Quote(d)), &r) == nil
}

// compile turns the older form into Alertmanager intervals; each error names the key that is
// wrong. A window in Alertmanager's form is complete already.
func (w *TimeWindow) compile() (key string, err error) {
	if !w.olderForm() {
		return "", nil
	}
	days, err := parseWeekdays(w.Weekdays)
	if err != nil {
		return "weekdays", err
	}
	start, end := w.Start, w.End
	if start == "" {
		start = "00:00"
	}
	if end == "" {
		end = "24:00"
	}
	startMin, err := parseClock(start)
	if err != nil {
		return "start", err
	}
	endMin, err := parseClock(end)
	if err != nil {
		return "end", err
	}
	if startMin == endMin {
		return "end", fmt.Errorf("start and end are both %s, an empty window", start)
	}
	loc := time.UTC
	if w.Location != "" {
		if loc, err = time.LoadLocation(w.Location); err != nil {
			return "location", fmt.Errorf("unknown location %q", w.Location)
		}
	}
	at := &timeinterval.Location{Location: loc}
	if startMin < endMin {
		w.Intervals = []timeinterval.TimeInterval{{Times: []timeinterval.TimeRange{{StartMinute: startMin, EndMinute: endMin}}, Weekdays: days, Location: at}}
		return "", nil
	}
	// Over midnight: the evening on its weekdays, the early hours on the day after each.
	w.Intervals = []timeinterval.TimeInterval{{Times: []timeinterval.TimeRange{{StartMinute: startMin, EndMinute: 24 * 60}}, Weekdays: days, Location: at}}
	if endMin > 0 {
		w.Intervals = append(w.Intervals, timeinterval.TimeInterval{Times: []timeinterval.TimeRange{{StartMinute: 0, EndMinute: endMin}}, Weekdays: nextDays(days), Location: at})
	}
	return "", nil
}

func nextDays(days []timeinterval.WeekdayRange) []timeinterval.WeekdayRange {
	out := make([]timeinterval.WeekdayRange, len(days))
	for i, d := range days {
		out[i].Begin, out[i].End = (d.Begin+1)%7, (d.End+1)%7
	}
	return out
}

// Contains reports whether t falls in the window.
func (w *TimeWindow) Contains(t time.Time) bool {
	if w.Intervals == nil && w.olderForm() { // built by hand, not by Parse: compile a copy, never race on w
		c := *w
		if _, err := c.compile(); err != nil {
			return false
		}
		return c.Contains(t)
	}
	if w.Intervals == nil { // an empty window, like an empty Alertmanager interval, is always
		return true
	}
	for _, ti := range w.Intervals {
		if ti.ContainsTime(t) {
			return true
		}
	}
	return false
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
