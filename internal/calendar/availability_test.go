package calendar

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func availabilityOf(t *testing.T, body string) []Availability {
	t.Helper()
	cals, err := Decode([]byte(strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\n"+body+"END:VCALENDAR\n", "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	var out []Availability
	for _, o := range Objects(cals) {
		avs, err := o.Availabilities(fuzzWindow[0], fuzzWindow[1], &Options{Zone: time.UTC})
		if err != nil {
			t.Fatalf("Availabilities: %v", err)
		}
		out = append(out, avs...)
	}
	return out
}

func (a Availability) String() string {
	f := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("0102T1504")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s..%s %s %d:", f(a.Start), f(a.End), a.BusyType, a.Priority)
	for _, s := range a.Available {
		fmt.Fprintf(&b, " %s/%s", f(s.Start), f(s.End))
	}
	return b.String()
}

func TestAvailabilities(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"defaults: unbounded, BUSY-UNAVAILABLE, undefined priority", `BEGIN:VAVAILABILITY
UID:a
BEGIN:AVAILABLE
UID:x
DTSTART:20250303T090000Z
DTEND:20250303T170000Z
END:AVAILABLE
END:VAVAILABILITY
`, "-..- BUSY-UNAVAILABLE 0: 0303T0900/0303T1700"},
		{"DTSTART and DURATION, BUSYTYPE, PRIORITY; a series with an override and an EXDATE", `BEGIN:VAVAILABILITY
UID:a
DTSTART:20250303T000000Z
DURATION:P7D
BUSYTYPE:busy
PRIORITY:3
BEGIN:AVAILABLE
UID:x
DTSTART;TZID=Europe/Berlin:20250303T090000
DTEND;TZID=Europe/Berlin:20250303T120000
RRULE:FREQ=DAILY;COUNT=4
EXDATE;TZID=Europe/Berlin:20250304T090000
END:AVAILABLE
BEGIN:AVAILABLE
UID:x
RECURRENCE-ID;TZID=Europe/Berlin:20250305T090000
DTSTART;TZID=Europe/Berlin:20250305T100000
DTEND;TZID=Europe/Berlin:20250305T110000
END:AVAILABLE
END:VAVAILABILITY
`, "0303T0000..0310T0000 BUSY 3: 0303T0800/0303T1100 0305T0900/0305T1000 0306T0800/0306T1100"},
		{"DTEND alone; an unknown BUSYTYPE and a bad PRIORITY are the defaults", `BEGIN:VAVAILABILITY
UID:a
DTEND:20250310T000000Z
BUSYTYPE:X-SOMETIMES
PRIORITY:12
END:VAVAILABILITY
`, "-..0310T0000 BUSY-UNAVAILABLE 0:"},
		{"outside the window: nothing", `BEGIN:VAVAILABILITY
UID:a
DTSTART:20240101T000000Z
DTEND:20240201T000000Z
END:VAVAILABILITY
`, ""},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range availabilityOf(t, tt.body) {
			got = append(got, a.String())
		}
		if g := strings.Join(got, "\n"); g != tt.want {
			t.Errorf("%s: Availabilities =\n %s\nwant\n %s", tt.name, g, tt.want)
		}
	}
}

// FuzzAvailability builds a VAVAILABILITY from fuzzed times and rules, the
// parts a hostile calendar controls: no panic, bounded work, and every
// AVAILABLE period ends after it starts.
func FuzzAvailability(f *testing.F) {
	f.Add("20250303T000000Z", "P7D", "20250303T090000", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "BUSY")
	f.Add("", "", "20250303T090000Z", "FREQ=SECONDLY", "")
	f.Add("20250303", "-P1D", "x", "FREQ=DAILY;INTERVAL=0", "BUSY-TENTATIVE")
	f.Fuzz(func(t *testing.T, start, duration, avStart, rule, busyType string) {
		for _, s := range []string{start, duration, avStart, rule, busyType} {
			if strings.ContainsAny(s, "\r\n") {
				return
			}
		}
		var b strings.Builder
		b.WriteString("BEGIN:VCALENDAR\r\nBEGIN:VAVAILABILITY\r\nUID:a\r\n")
		if start != "" {
			b.WriteString("DTSTART:" + start + "\r\n")
		}
		if duration != "" {
			b.WriteString("DURATION:" + duration + "\r\n")
		}
		b.WriteString("BUSYTYPE:" + busyType + "\r\nBEGIN:AVAILABLE\r\nUID:b\r\nDTSTART:" + avStart + "\r\nDURATION:PT3H\r\nRRULE:" + rule + "\r\nEND:AVAILABLE\r\nEND:VAVAILABILITY\r\nEND:VCALENDAR\r\n")
		cals, err := Decode([]byte(b.String()))
		if err != nil {
			return
		}
		for _, o := range Objects(cals) {
			avs, _ := o.Availabilities(fuzzWindow[0], fuzzWindow[1], &Options{Limits: Limits{PerEvent: 2000}})
			for _, a := range avs {
				for _, s := range a.Available {
					if !s.End.After(s.Start) {
						t.Fatalf("AVAILABLE period %v ends before it starts", s)
					}
				}
			}
		}
	})
}
