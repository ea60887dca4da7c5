package config

import (
	"strings"
	"testing"
	"time"
)

// Time windows in Alertmanager's time_intervals syntax, read by its timeinterval package.
func TestTimeWindowAlertmanagerSyntax(t *testing.T) {
	pb := windowsPlaybook(t, `
      - times: [{start_time: '09:00', end_time: '17:00'}]
        weekdays: ['monday:friday']
        days_of_month: ['1:15']
        months: ['january:march']
        years: ['2027']
        location: Europe/Berlin
      - weekdays: [saturday]
        times: [{start_time: '22:00', end_time: '24:00'}]
`)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	checkWindows(t, pb, []windowCase{
		{time.Date(2027, 2, 3, 10, 0, 0, 0, berlin), true},     // Wednesday, 3 February 2027, 10:00
		{time.Date(2027, 2, 3, 9, 0, 0, 0, time.UTC), true},    // 10:00 in Berlin
		{time.Date(2027, 2, 3, 16, 30, 0, 0, time.UTC), false}, // 17:30 in Berlin
		{time.Date(2027, 2, 20, 10, 0, 0, 0, berlin), false},   // the 20th: outside days_of_month
		{time.Date(2027, 4, 7, 10, 0, 0, 0, berlin), false},    // April
		{time.Date(2026, 2, 4, 10, 0, 0, 0, berlin), false},    // 2026
		{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true}, // Saturday 23:00 UTC: the second window
		{time.Date(2026, 11, 28, 21, 0, 0, 0, time.UTC), false},
	})
}

// windowsPlaybook loads a playbook with the given time_windows list.
func windowsPlaybook(t *testing.T, windows string) *Playbook {
	t.Helper()
	cfg, err := Parse([]byte("playbooks:\n  - name: p\n    match: ['alertname=\"A\"']\n    steps: [{docker: {action: restart}}]\n    time_windows:"+windows), "p.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Playbooks[0]
}

type windowCase struct {
	at   time.Time
	want bool
}

func checkWindows(t *testing.T, pb *Playbook, cases []windowCase) {
	t.Helper()
	for _, tc := range cases {
		if got := pb.InTimeWindow(tc.at); got != tc.want {
			t.Errorf("InTimeWindow(%s, %s) = %v, want %v", tc.at, tc.at.Weekday(), got, tc.want)
		}
	}
}

// The older keys still load and mean what they meant, short day names included.
func TestTimeWindowOlderKeys(t *testing.T) {
	pb := windowsPlaybook(t, `
      - {weekdays: ['mon:fri'], start: '08:00', end: '18:00', location: Europe/Berlin}
      - {weekdays: [sat], start: '22:00', end: '02:00'}
`)
	checkWindows(t, pb, []windowCase{
		{time.Date(2026, 11, 25, 7, 30, 0, 0, time.UTC), true},   // Wednesday 08:30 in Berlin
		{time.Date(2026, 11, 25, 17, 30, 0, 0, time.UTC), false}, // 18:30 in Berlin
		{time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true},   // Saturday night
		{time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC), true},    // early Sunday: Saturday's window
		{time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), false}, // Saturday noon
	})
}

func TestTimeWindowInvalid(t *testing.T) {
	for _, tc := range []struct{ name, window, want string }{
		{"unknown key", "{times: [{start_time: '09:00', end_time: '17:00'}], weekday: [monday]}",
			`p.yml:6: playbook "p": time_windows[0]: field weekday not found in type timeinterval.TimeInterval (hint: a time window takes Alertmanager's time_intervals keys`},
		{"start after end", "{times: [{start_time: '17:00', end_time: '09:00'}]}",
			`p.yml:6: playbook "p": time_windows[0]: start time cannot be equal or greater than end time`},
		{"bad month", "{months: [smarch]}", `p.yml:6: playbook "p": time_windows[0]: smarch is not a valid month`},
		{"bad location", "{times: [{start_time: '09:00', end_time: '17:00'}], location: Mars/Base}", `p.yml:6: playbook "p": time_windows[0]:`},
		{"forms mixed", "{start: '08:00', end: '18:00', days_of_month: ['1:7']}",
			`p.yml:6: playbook "p": time_windows[0]: start and end (the older form of a time window) cannot be mixed with times, days_of_month, months, years (hint: write times: [{start_time: '08:00', end_time: '18:00'}] instead of start and end)`},
		{"older form, bad clock", "{start: '08:00', end: '25:00'}", `time window 1: time "25:00" is out of range 00:00-24:00`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("playbooks:\n  - name: p\n    match: ['alertname=\"A\"']\n    steps: [{docker: {action: restart}}]\n    time_windows:\n      - "+tc.window+"\n"), "p.yml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
