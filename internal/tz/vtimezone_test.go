package tz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// compareZones checks that got and want have the same UTC offset at every
// transition of want between the start of year from and the end of year to
// (one second and one minute either side, and at the instant), and every
// seven hours in between.
func compareZones(t *testing.T, call string, got, want *time.Location, from, to int) {
	t.Helper()
	start := time.Date(from, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(to+1, 1, 1, 0, 0, 0, 0, time.UTC)
	errs := 0
	check := func(u time.Time) {
		_, g := u.In(got).Zone()
		_, w := u.In(want).Zone()
		if g != w && errs < 10 {
			errs++
			t.Errorf("%s: %v.In(loc) offset = %d, want %d (as %s)", call, u, g, w, want)
		}
	}
	for u := start; u.Before(end); {
		_, next := u.In(want).ZoneBounds()
		if next.IsZero() || !next.Before(end) {
			break
		}
		if !next.After(u) { // golang/go#81583: a bogus end in leap years
			u = u.Add(time.Hour)
			continue
		}
		for _, d := range []time.Duration{-time.Minute, -time.Second, 0, time.Second, time.Minute} {
			check(next.Add(d))
		}
		u = next
	}
	for u := start; u.Before(end); u = u.Add(7 * time.Hour) {
		check(u)
	}
}

func TestVTimezoneAgainstIANA(t *testing.T) {
	tests := []struct {
		file, tzid string
		iana       string
		from, to   int
		wantSrc    Source
	}{
		// Outlook's W. Europe block under custom names: only the current
		// EU rule (since 1996) is in it.
		{"outlook_custom_weurope.ics", "Custom Zone 1", "Europe/Berlin", 1996, 2100, VTimezone},
		{"outlook_custom_weurope.ics", "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Berlin", 1996, 2100, VTimezone},
		{"outlook_custom_weurope.ics", `"Custom Zone 1"`, "Europe/Berlin", 1996, 2100, VTimezone},
		// The same block under its Windows name resolves through CLDR.
		{"outlook_custom_weurope.ics", "W. Europe Standard Time", "Europe/Berlin", 1980, 2100, Windows},
		// Pre-2007 and 2007 US rules with UNTIL.
		{"us_eastern_history.ics", "US Eastern (custom)", "America/New_York", 1988, 2100, VTimezone},
		{"us_eastern_history.ics", "US Eastern (monthday)", "America/New_York", 2008, 2100, VTimezone},
		{"rdate_berlin.ics", "RDATE Berlin", "Europe/Berlin", 2024, 2026, VTimezone},
		{"sydney.ics", "Sydney (custom)", "Australia/Sydney", 2009, 2100, VTimezone},
		{"no_dst.ics", "India (custom)", "Asia/Kolkata", 1970, 2100, VTimezone},
		{"no_dst.ics", "Tokyo (custom)", "Asia/Tokyo", 1970, 2100, VTimezone},
	}
	for _, tt := range tests {
		r := loadTestdata(t, tt.file, nil)
		loc, src := r.Resolve(tt.tzid)
		call := fmt.Sprintf("%s: Resolve(%q)", tt.file, tt.tzid)
		if src != tt.wantSrc {
			t.Errorf("%s source = %v, want %v", call, src, tt.wantSrc)
			continue
		}
		compareZones(t, call, loc, mustIANA(t, tt.iana), tt.from, tt.to)
	}
}

// TestVTimezoneInstants spells out instants just before and after
// transitions, as the zone's users see them.
func TestVTimezoneInstants(t *testing.T) {
	utc := func(y, mo, d, h, mi int) time.Time { return time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC) }
	tests := []struct {
		file, tzid string
		at         time.Time
		wantOff    int
		wantName   string
	}{
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2025, 3, 30, 0, 59), 3600, "+01"},
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2025, 3, 30, 1, 0), 7200, "+02"},
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2025, 10, 26, 0, 59), 7200, "+02"},
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2025, 10, 26, 1, 0), 3600, "+01"},
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2030, 3, 31, 0, 59), 3600, "+01"},
		{"outlook_custom_weurope.ics", "Custom Zone 1", utc(2030, 3, 31, 1, 0), 7200, "+02"},
		// Old US rules: first Sunday in April, last Sunday in October.
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2006, 4, 2, 6, 59), -5 * 3600, "EST"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2006, 4, 2, 7, 0), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2006, 10, 29, 5, 59), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2006, 10, 29, 6, 0), -5 * 3600, "EST"},
		// 2007 rules: second Sunday in March, first Sunday in November.
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2007, 3, 11, 6, 59), -5 * 3600, "EST"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2007, 3, 11, 7, 0), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2007, 4, 1, 7, 0), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2007, 10, 28, 7, 0), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2025, 11, 2, 5, 59), -4 * 3600, "EDT"},
		{"us_eastern_history.ics", "US Eastern (custom)", utc(2025, 11, 2, 6, 0), -5 * 3600, "EST"},
		// RDATE zone: listed onsets, and CET after the last one.
		{"rdate_berlin.ics", "RDATE Berlin", utc(2025, 3, 30, 0, 59), 3600, "CET"},
		{"rdate_berlin.ics", "RDATE Berlin", utc(2025, 3, 30, 1, 0), 7200, "CEST"},
		{"rdate_berlin.ics", "RDATE Berlin", utc(2026, 10, 25, 1, 0), 3600, "CET"},
		{"rdate_berlin.ics", "RDATE Berlin", utc(2027, 7, 1, 0, 0), 3600, "CET"},
		// Southern hemisphere: DST across the new year.
		{"sydney.ics", "Sydney (custom)", utc(2025, 4, 5, 15, 59), 11 * 3600, "AEDT"},
		{"sydney.ics", "Sydney (custom)", utc(2025, 4, 5, 16, 0), 10 * 3600, "AEST"},
		{"sydney.ics", "Sydney (custom)", utc(2025, 10, 4, 15, 59), 10 * 3600, "AEST"},
		{"sydney.ics", "Sydney (custom)", utc(2025, 10, 4, 16, 0), 11 * 3600, "AEDT"},
		{"sydney.ics", "Sydney (custom)", utc(2026, 1, 1, 0, 0), 11 * 3600, "AEDT"},
		{"no_dst.ics", "India (custom)", utc(2025, 3, 30, 1, 0), 5*3600 + 1800, "IST"},
		{"no_dst.ics", "India (custom)", utc(1900, 1, 1, 0, 0), 5*3600 + 1800, "IST"},
		// One DAYLIGHT is unusable and ignored; what is left is CET only.
		{"malformed.ics", "Half Broken", utc(2025, 7, 1, 0, 0), 3600, "+01"},
	}
	for _, tt := range tests {
		r := loadTestdata(t, tt.file, nil)
		loc, src := r.Resolve(tt.tzid)
		name, off := tt.at.In(loc).Zone()
		if src != VTimezone || off != tt.wantOff || name != tt.wantName {
			t.Errorf("%s: Resolve(%q): %v.In(loc).Zone() = %q, %d (source %v); want %q, %d (VTimezone)",
				tt.file, tt.tzid, tt.at, name, off, src, tt.wantName, tt.wantOff)
		}
	}
}

func TestVTimezoneMalformed(t *testing.T) {
	def := mustIANA(t, "America/Chicago")
	r := loadTestdata(t, "malformed.ics", def)
	for _, tzid := range []string{"No Offsets", "Bad Dates", "Daily Rule", "Huge Offset", "Empty", "Not Defined"} {
		if loc, src := r.Resolve(tzid); loc != def || src != Default {
			t.Errorf("malformed.ics: Resolve(%q) = %s, %v; want %s, Default", tzid, loc, src, def)
		}
	}
}

// vtz wraps VTIMEZONE text (lines separated by "\n") into a calendar and
// returns a resolver for it.
func vtz(t testing.TB, text string) *Resolver {
	t.Helper()
	cal, err := decodeCalendar(wrapVTimezone(text))
	if err != nil {
		t.Fatalf("decoding %q: %v", text, err)
	}
	return NewResolver(vtimezones(cal), nil)
}

func wrapVTimezone(text string) string {
	text = strings.ReplaceAll(strings.TrimSpace(text), "\n", "\r\n")
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub//tz test//EN\r\n" + text + "\r\nEND:VCALENDAR\r\n"
}

func TestVTimezoneRules(t *testing.T) {
	utc := func(y, mo, d, h, mi int) time.Time { return time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC) }
	tests := []struct {
		name  string
		text  string
		at    time.Time
		want  int
		wantS Source
	}{
		{"COUNT bounds the rule (DTSTART counts)", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=3
END:DAYLIGHT
END:VTIMEZONE`, utc(2022, 7, 1, 0, 0), 7200, VTimezone},
		{"COUNT=3 ends in 2022", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=3
END:DAYLIGHT
END:VTIMEZONE`, utc(2023, 7, 1, 0, 0), 3600, VTimezone},
		{"UNTIL as local date-time", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;UNTIL=20210328T020000
END:DAYLIGHT
END:VTIMEZONE`, utc(2021, 7, 1, 0, 0), 7200, VTimezone},
		{"UNTIL as local date-time, after", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;UNTIL=20210328
END:DAYLIGHT
END:VTIMEZONE`, utc(2022, 7, 1, 0, 0), 3600, VTimezone},
		{"BYSETPOS last Sunday", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=SU;BYSETPOS=-1
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYSETPOS=-1
END:DAYLIGHT
END:VTIMEZONE`, utc(2025, 3, 30, 1, 0), 7200, VTimezone},
		{"BYSETPOS last Sunday, before", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=SU;BYSETPOS=-1
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYSETPOS=-1
END:DAYLIGHT
END:VTIMEZONE`, utc(2025, 3, 30, 0, 59), 3600, VTimezone},
		{"EXDATE removes an onset", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:20201025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20200329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
EXDATE:20250330T020000
END:DAYLIGHT
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), 3600, VTimezone},
		{"UTC DTSTART tolerated", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:19700101T000000Z
TZOFFSETFROM:+0300
TZOFFSETTO:+0300
END:STANDARD
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), 3 * 3600, VTimezone},
		{"seconds in offsets", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETFROM:+001930
TZOFFSETTO:+001930
END:STANDARD
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), 19*60 + 30, VTimezone},
		{"missing TZOFFSETFROM tolerated", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETTO:-0330
END:STANDARD
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), -3*3600 - 1800, VTimezone},
		{"RDATE PERIOD takes the start", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETFROM:+0100
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:20250330T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RDATE;VALUE=PERIOD:20260329T020000/PT1H
END:DAYLIGHT
BEGIN:STANDARD
DTSTART:20251026T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE`, utc(2026, 3, 29, 1, 0), 7200, VTimezone},
		{"FREQ=MONTHLY makes the only observance unusable", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETFROM:+0100
TZOFFSETTO:+0100
RRULE:FREQ=MONTHLY
END:STANDARD
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), 0, Default},
		{"no onset before 2101", `BEGIN:VTIMEZONE
TZID:X
BEGIN:STANDARD
DTSTART:22000101T000000
TZOFFSETFROM:+0100
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE`, utc(2025, 7, 1, 0, 0), 0, Default},
	}
	for _, tt := range tests {
		loc, src := vtz(t, tt.text).Resolve("X")
		if _, off := tt.at.In(loc).Zone(); off != tt.want || src != tt.wantS {
			t.Errorf("%s: Resolve(%q): %v.In(loc) offset = %d (source %v), want %d (%v)", tt.name, "X", tt.at, off, src, tt.want, tt.wantS)
		}
	}
}

// TestVTimezonePrefersNames checks that a VTIMEZONE does not override an IANA
// or Windows name, even when it disagrees with the database.
func TestVTimezonePrefersNames(t *testing.T) {
	r := vtz(t, `BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19700101T000000
TZOFFSETFROM:+0500
TZOFFSETTO:+0500
END:STANDARD
END:VTIMEZONE`)
	loc, src := r.Resolve("Europe/Berlin")
	if loc.String() != "Europe/Berlin" || src != IANA {
		t.Errorf("Resolve(%q) = %s, %v; want Europe/Berlin, IANA", "Europe/Berlin", loc, src)
	}
}

// TestVTimezoneWorkBounded feeds components built to be expensive and checks
// that they fail or finish within the limits, quickly.
func TestVTimezoneWorkBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("BEGIN:VTIMEZONE\nTZID:X\n")
	for i := 0; i < maxObservances; i++ {
		fmt.Fprintf(&b, "BEGIN:DAYLIGHT\nDTSTART:00010101T%02d0000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0%d00\n", i%24, i%10)
		b.WriteString("RRULE:FREQ=YEARLY;COUNT=100000;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYMONTHDAY=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\nEND:DAYLIGHT\n")
	}
	b.WriteString("END:VTIMEZONE")
	many := b.String()

	var rd strings.Builder
	rd.WriteString("BEGIN:VTIMEZONE\nTZID:X\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0200\nRDATE:")
	for i := 0; i < 5000; i++ {
		if i > 0 {
			rd.WriteString(",")
		}
		fmt.Fprintf(&rd, "%04d0101T000000", 1900+i%200)
	}
	rd.WriteString("\nEND:STANDARD\nEND:VTIMEZONE")

	var rare strings.Builder
	rare.WriteString("BEGIN:VTIMEZONE\nTZID:X\n")
	for i := 0; i < maxObservances; i++ {
		// February 30 never comes: every year is scanned in vain.
		fmt.Fprintf(&rare, "BEGIN:STANDARD\nDTSTART:00010101T%02d0000\nTZOFFSETFROM:+0100\nTZOFFSETTO:+0100\nRRULE:FREQ=YEARLY;COUNT=5;BYMONTH=2;BYMONTHDAY=30\nEND:STANDARD\n", i%24)
	}
	rare.WriteString("END:VTIMEZONE")

	for name, text := range map[string]string{"many rules": many, "many RDATEs": rd.String(), "rules that never match": rare.String()} {
		cal, err := decodeCalendar(wrapVTimezone(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		start := time.Now()
		_, st, err := compileVTimezone("X", cal.Children[0])
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: compileVTimezone took %v", name, d)
		}
		if st.steps > maxSteps+31 || st.onsets > maxOnsets {
			t.Errorf("%s: compileVTimezone stats %+v exceed limits", name, st)
		}
		if err == nil {
			t.Errorf("%s: compileVTimezone succeeded (stats %+v), want a limit error", name, st)
		}
		t.Logf("%s: err=%v stats=%+v", name, err, st)
	}
}

// TestTestdataDecodes makes sure every testdata file is a calendar go-ical
// reads, so the fuzz seeds are meaningful.
func TestTestdataDecodes(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.ics")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeCalendar(string(b)); err != nil {
			t.Errorf("decodeCalendar(%s): %v", f, err)
		}
	}
}
