package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

// hoursICS is one meeting and a VAVAILABILITY: weekdays 09:00-12:00 and
// 13:00-17:00 in Berlin (a lunch break), repeating weekly.
const hoursICS = `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:m
DTSTAMP:20250101T000000Z
DTSTART:20250307T100000Z
DTEND:20250307T110000Z
END:VEVENT
BEGIN:VAVAILABILITY
UID:hours
DTSTAMP:20250101T000000Z
BEGIN:AVAILABLE
UID:am
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/Berlin:20250303T090000
DTEND;TZID=Europe/Berlin:20250303T120000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
BEGIN:AVAILABLE
UID:pm
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/Berlin:20250303T130000
DTEND;TZID=Europe/Berlin:20250303T170000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
END:VAVAILABILITY
END:VCALENDAR
`

// TestRenderOffHours: render shows the time outside working hours as
// fbpub serve does with publish.off_hours = "unavailable", from the file's
// VAVAILABILITY, else from --working-hours; by default not at all.
func TestRenderOffHours(t *testing.T) {
	event := "FREEBUSY;FBTYPE=BUSY:20250307T100000Z/20250307T110000Z"
	tests := []struct {
		name string
		ics  string
		args []string
		want []string
	}{
		{"not asked", hoursICS, nil, []string{event}},
		{"the VAVAILABILITY", hoursICS, []string{"--off-hours", "unavailable", "--working-hours", "MO-FR 07:00-19:00"}, []string{
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T080000Z",
			event,
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T110000Z/20250307T120000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T160000Z/20250308T000000Z"}},
		{"no VAVAILABILITY: the pattern", strings.Replace(hoursICS, "VAVAILABILITY", "X-NOTHING", 2), []string{"--off-hours", "unavailable", "--working-hours", "FR 07:00-19:00"}, []string{
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T060000Z",
			event,
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T180000Z/20250308T000000Z"}},
	}
	for _, tt := range tests {
		var out, errs strings.Builder
		args := append([]string{"render", "--start", "2025-03-07T00:00:00Z", "--end", "2025-03-08T00:00:00Z", "--tz", "Europe/Berlin"}, tt.args...)
		if err := run(context.Background(), append(args, "-"), strings.NewReader(strings.ReplaceAll(tt.ics, "\n", "\r\n")), &out, &errs, os.Getenv); err != nil {
			t.Fatalf("%s: render: %v (%s)", tt.name, err, errs.String())
		}
		var got []string
		for _, l := range strings.Split(out.String(), "\r\n") {
			if strings.HasPrefix(l, "FREEBUSY") {
				got = append(got, l)
			}
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: render periods:\n%s\nwant:\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
	for _, bad := range [][]string{{"--off-hours", "hidden"}, {"--working-hours", "weekdays"}} {
		var out, errs strings.Builder
		err := run(context.Background(), append(append([]string{"render"}, bad...), "-"), strings.NewReader(hoursICS), &out, &errs, os.Getenv)
		if err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("render %q = %v, want an error naming %s", bad, err, bad[0])
		}
	}
}
