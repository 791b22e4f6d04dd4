package calendar

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var fuzzWindow = [2]time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)}

// expandAll runs the whole message → instances path with small limits.
func expandAll(t *testing.T, data []byte) {
	var objs []*Object
	if parts, err := MessageParts(data); err == nil {
		for _, p := range parts {
			o, _ := PartObjects(p)
			objs = append(objs, o...)
		}
	}
	if cals, err := Decode(data); err == nil {
		objs = append(objs, Objects(cals)...)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, o := range objs {
		insts, _ := o.Instances(fuzzWindow[0], fuzzWindow[1], &Options{Zone: berlin, Limits: Limits{PerEvent: 2000}})
		for _, in := range insts {
			if in.End.Before(in.Start) {
				t.Fatalf("instance ends before it starts: %v", in)
			}
		}
	}
}

// FuzzMessage feeds arbitrary bytes to the whole path from a stored
// message to instances: it must not panic, and must finish quickly.
func FuzzMessage(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.*")
	for _, name := range files {
		if strings.HasSuffix(name, ".json") {
			continue
		}
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		expandAll(t, data)
	})
}

// FuzzRecurrence builds one event from a fuzzed RRULE, RDATE, EXDATE and
// DTSTART, the parts of recurrence a hostile calendar controls.
func FuzzRecurrence(f *testing.F) {
	f.Add("FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10", "20250303T100000", "", "")
	f.Add("FREQ=SECONDLY", "20000101T000000Z", "", "")
	f.Add("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "20250101", "", "")
	f.Add("FREQ=MONTHLY;BYDAY=-1FR;BYSETPOS=1;UNTIL=20251231", "20250131T170000", "20250305T100000Z", "20250328T170000")
	f.Add("FREQ=YEARLY;BYWEEKNO=12,14;BYDAY=MO", "20250317T090000", "", "")
	f.Add("FREQ=MINUTELY;INTERVAL=7;BYHOUR=25", "20250301T000000Z", "20250301/P1D", "20250301T000000Z")
	// rrule-go loops for ever inside a day on these without the guard.
	f.Add("FREQ=HOURLY;INTERVAL=24;BYHOUR=5", "20250303T100000", "", "")
	f.Add("FREQ=MINUTELY;INTERVAL=60;BYMINUTE=5", "20250303T100000", "", "")
	f.Add("FREQ=SECONDLY;INTERVAL=3600;BYSECOND=1", "20250303T100000", "", "")
	// … and through every minute to the year 9999 on this one.
	f.Add("FREQ=MINUTELY;BYSETPOS=2", "20250303T100000", "", "")
	// Old series: skipped ahead to the window, or (COUNT) cut off.
	f.Add("FREQ=HOURLY", "20100101T000000", "", "20250301T000000")
	f.Add("FREQ=MINUTELY;INTERVAL=10;BYDAY=MO;BYSETPOS=-1", "19990228T023000", "", "")
	f.Add("FREQ=SECONDLY;COUNT=1000000000", "20250301T000000", "", "")
	f.Fuzz(func(t *testing.T, rule, dtstart, rdate, exdate string) {
		for _, s := range []string{rule, dtstart, rdate, exdate} {
			if strings.ContainsAny(s, "\r\n") {
				return
			}
		}
		ics := recurrenceICS(rule, dtstart, rdate, exdate)
		start := time.Now()
		expandAll(t, []byte(ics))
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("expansion of %q took %v", rule, d)
		}
	})
}

// recurrenceICS is the calendar FuzzRecurrence expands: one event in
// Europe/Berlin with the rule, start and dates given.
func recurrenceICS(rule, dtstart, rdate, exdate string) string {
	ics := "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:f\r\nDTSTART;TZID=Europe/Berlin:" + dtstart + "\r\nDURATION:PT1H\r\nRRULE:" + rule + "\r\n"
	if rdate != "" {
		ics += "RDATE:" + rdate + "\r\n"
	}
	if exdate != "" {
		ics += "EXDATE:" + exdate + "\r\n"
	}
	return ics + "END:VEVENT\r\nEND:VCALENDAR\r\n"
}

// FuzzEncode checks the encoder on everything the decoder accepts: its
// output decodes again, and encoding that gives the same bytes, so no
// value or parameter can break the line structure or drift.
func FuzzEncode(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.ics")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nX-A;P=\"a,b\";Q=c:v\r\nSUMMARY:x\\, y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cals, err := Decode(data)
		if err != nil {
			return
		}
		for _, cal := range cals {
			out, err := Marshal(cal.Component)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := Decode(out)
			if err != nil || len(again) != 1 {
				t.Fatalf("the encoding does not decode (%d calendars, %v):\n%s", len(again), err, out)
			}
			out2, err := Marshal(again[0].Component)
			if err != nil || !bytes.Equal(out, out2) {
				t.Fatalf("encoding is not stable:\n%s\n---\n%s", out, out2)
			}
		}
	})
}
