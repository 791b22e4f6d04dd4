package tz

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var vtimezoneRE = regexp.MustCompile(`(?s)BEGIN:VTIMEZONE.*?END:VTIMEZONE`)

// FuzzVTimezone feeds arbitrary VTIMEZONE text, wrapped in a VCALENDAR, to
// go-ical (inside a recover) and then to the compiler and the Resolver. It
// checks that nothing panics, that the work stays within the limits, and
// that a Location that comes out gives sane offsets.
func FuzzVTimezone(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ics")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range vtimezoneRE.FindAllString(string(b), -1) {
			f.Add(m)
		}
	}
	f.Add("BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:00010101T000000\r\nTZOFFSETFROM:+2559\r\nTZOFFSETTO:-2559\r\nRRULE:FREQ=YEARLY;COUNT=100000;BYMONTHDAY=-1,1\r\nEND:STANDARD\r\nEND:VTIMEZONE")
	f.Add("BEGIN:VTIMEZONE\r\nTZID;X=\"a\"b:Y\r\nEND:VTIMEZONE")

	f.Fuzz(func(t *testing.T, text string) {
		cal, err := decodeCalendar(wrapVTimezone(text))
		if err != nil {
			return
		}
		comps := vtimezones(cal)
		for _, c := range comps {
			tzid := "X"
			if p := c.Props.Get("TZID"); p != nil {
				tzid = p.Value
			}
			start := time.Now()
			loc, st, err := compileVTimezone(tzid, c)
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("compileVTimezone took %v (stats %+v)", d, st)
			}
			if st.steps > maxSteps+31 || st.onsets > maxOnsets || st.transitions > maxOnsets || st.observances > maxObservances {
				t.Errorf("compileVTimezone stats %+v exceed limits", st)
			}
			if (loc == nil) != (err != nil) {
				t.Fatalf("compileVTimezone = %v, %v", loc, err)
			}
			if loc == nil {
				continue
			}
			for _, u := range []time.Time{
				time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
				time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC),
				time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
			} {
				if _, off := u.In(loc).Zone(); off < -26*3600 || off > 26*3600 {
					t.Errorf("%v.In(loc) offset %d out of range", u, off)
				}
			}
			_ = LocalTime(2025, 3, 30, 2, 30, 0, loc)
			_ = LocalTime(2025, 10, 26, 2, 30, 0, loc)
		}
		r := NewResolver(comps, nil)
		for _, c := range comps {
			if p := c.Props.Get("TZID"); p != nil {
				loc, _ := r.Resolve(p.Value)
				_ = time.Date(2025, 1, 1, 0, 0, 0, 0, loc).String()
			}
		}
		if !strings.Contains(text, "TZID") {
			r.Resolve("X")
		}
	})
}
