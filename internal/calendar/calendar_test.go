package calendar

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

func TestEncodeFoldsOnUTF8Boundaries(t *testing.T) {
	summary := strings.Repeat("Überstunden-Besprechung 😀 ", 8)
	ev := ical.NewComponent(ical.CompEvent)
	ev.Props.SetText(ical.PropUID, "fold-1")
	ev.Props.SetText(ical.PropSummary, summary)
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.HasSuffix(text, "\r\n") || strings.Contains(strings.ReplaceAll(text, "\r\n", ""), "\n") {
		t.Fatalf("lines must end in CRLF only:\n%q", text)
	}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n") {
		if len(line) > 75 {
			t.Errorf("line of %d octets > 75: %q", len(line), line)
		}
		if !utf8.ValidString(line) {
			t.Errorf("line splits a UTF-8 sequence: %q", line)
		}
	}
	cals, err := Decode([]byte("BEGIN:VCALENDAR\r\n" + text + "END:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := cals[0].Children[0].Props.Text(ical.PropSummary)
	if got != summary {
		t.Errorf("unfolded SUMMARY = %q, want %q", got, summary)
	}
}

func TestDecode(t *testing.T) {
	ev := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20250301T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	tests := []struct {
		name    string
		in      string
		cals    int
		wantErr error
	}{
		{"plain", ev, 1, nil},
		{"bom", "\xef\xbb\xbf" + ev, 1, nil},
		{"bare LF", strings.ReplaceAll(ev, "\r\n", "\n"), 1, nil},
		{"two calendars", ev + ev, 2, nil},
		{"empty", "  \r\n", 0, ErrNoCalendar},
		{"truncated", ev[:60], 0, ErrMalformed},
		{"junk", "hello world\r\n", 0, ErrMalformed},
		// go-ical panics on a parameter without a value separator.
		{"panicking parameter", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;TZID\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", 0, ErrMalformed},
		{"junk after quoted parameter", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nATTENDEE;CN=\"x\"y:mailto:a@b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", 0, ErrMalformed},
	}
	for _, tt := range tests {
		cals, err := Decode([]byte(tt.in))
		if !errors.Is(err, tt.wantErr) || len(cals) != tt.cals {
			t.Errorf("%s: Decode(%q) = %d calendars, %v; want %d, %v", tt.name, tt.in, len(cals), err, tt.cals, tt.wantErr)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		ok   bool
	}{
		{"P1D", Duration{Days: 1}, true},
		{"P2W", Duration{Days: 14}, true},
		{"PT1H30M", Duration{Exact: 90 * time.Minute}, true},
		{"P1DT2H", Duration{Days: 1, Exact: 2 * time.Hour}, true},
		{"-PT15M", Duration{Exact: -15 * time.Minute}, true},
		{"+PT10S", Duration{Exact: 10 * time.Second}, true},
		{"P", Duration{}, false},
		{"PT", Duration{}, false},
		{"P1H", Duration{}, false},
		{"PT1D", Duration{}, false},
		{"1D", Duration{}, false},
		{"P99999999999D", Duration{}, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func mustObjects(t testing.TB, ics string) []*Object {
	t.Helper()
	cals, err := Decode([]byte(strings.ReplaceAll(ics, "\n", "\r\n")))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return Objects(cals)
}

// span is an instance as "start/end" in UTC, for readable comparisons.
func spans(insts []Instance) []string {
	var out []string
	for _, in := range insts {
		out = append(out, in.Start.UTC().Format("20060102T1504Z")+"/"+in.End.UTC().Format("20060102T1504Z"))
	}
	return out
}

func TestInstances(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	march := [2]time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name string
		ics  string
		win  [2]time.Time
		want []string
	}{
		{"utc event", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:1
DTSTART:20250303T080000Z
DTEND:20250303T090000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T0800Z/20250303T0900Z"}},
		{"all-day across the spring change covers whole local days", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:2
DTSTART;VALUE=DATE:20250329
DTEND;VALUE=DATE:20250331
END:VEVENT
END:VCALENDAR`, march, []string{"20250328T2300Z/20250330T2200Z"}},
		{"P1D is a calendar day", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:3
DTSTART;TZID=Europe/Berlin:20250329T120000
DURATION:P1D
END:VEVENT
END:VCALENDAR`, march, []string{"20250329T1100Z/20250330T1000Z"}},
		{"floating time in the owner's zone", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:4
DTSTART:20250310T090000
DTEND:20250310T100000
END:VEVENT
END:VCALENDAR`, march, []string{"20250310T0800Z/20250310T0900Z"}},
		{"weekly with comma EXDATE and an override moved out of the window", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:5
DTSTART;TZID=Europe/Berlin:20250303T100000
DTEND;TZID=Europe/Berlin:20250303T110000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=Europe/Berlin:20250310T100000,20250317T100000
END:VEVENT
BEGIN:VEVENT
UID:5
RECURRENCE-ID;TZID=Europe/Berlin:20250324T100000
DTSTART;TZID=Europe/Berlin:20250414T100000
DTEND;TZID=Europe/Berlin:20250414T110000
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T0900Z/20250303T1000Z", "20250331T0800Z/20250331T0900Z"}},
		{"override moved into the window", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:6
DTSTART:20250203T100000Z
DTEND:20250203T110000Z
RRULE:FREQ=WEEKLY;COUNT=2
END:VEVENT
BEGIN:VEVENT
UID:6
RECURRENCE-ID:20250210T100000Z
DTSTART:20250305T100000Z
DTEND:20250305T120000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250305T1000Z/20250305T1200Z"}},
		{"RDATE with PERIOD and DATE-TIME", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:7
DTSTART:20250302T100000Z
DURATION:PT1H
RDATE;VALUE=PERIOD:20250305T100000Z/20250305T130000Z
RDATE:20250306T100000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250302T1000Z/20250302T1100Z", "20250305T1000Z/20250305T1300Z", "20250306T1000Z/20250306T1100Z"}},
		{"DATE UNTIL on an all-day series includes its day", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:8
DTSTART;VALUE=DATE:20250303
RRULE:FREQ=DAILY;UNTIL=20250305
END:VEVENT
END:VCALENDAR`, march, []string{"20250302T2300Z/20250303T2300Z", "20250303T2300Z/20250304T2300Z", "20250304T2300Z/20250305T2300Z"}},
		{"DATE UNTIL on a timed series ends as that day begins (as ical.js)", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:8b
DTSTART;TZID=Europe/Berlin:20250303T180000
DTEND;TZID=Europe/Berlin:20250303T190000
RRULE:FREQ=DAILY;UNTIL=20250305
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T1700Z/20250303T1800Z", "20250304T1700Z/20250304T1800Z"}},
		{"THISANDFUTURE moves every later instance", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:9
DTSTART:20250303T100000Z
DTEND:20250303T110000Z
RRULE:FREQ=WEEKLY;COUNT=3
END:VEVENT
BEGIN:VEVENT
UID:9
RECURRENCE-ID;RANGE=THISANDFUTURE:20250310T100000Z
DTSTART:20250310T140000Z
DTEND:20250310T160000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T1000Z/20250303T1100Z", "20250310T1400Z/20250310T1600Z", "20250317T1400Z/20250317T1600Z"}},
		{"an override of an EXDATEd instance does not count", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:10
DTSTART:20250303T100000Z
DTEND:20250303T110000Z
RRULE:FREQ=WEEKLY;COUNT=3
EXDATE:20250310T100000Z
END:VEVENT
BEGIN:VEVENT
UID:10
RECURRENCE-ID:20250310T100000Z
DTSTART:20250311T150000Z
DTEND:20250311T160000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T1000Z/20250303T1100Z", "20250317T1000Z/20250317T1100Z"}},
		{"of two overrides of one instance the newer counts, the recurrence id written in another zone", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:11
DTSTART:20250303T100000Z
DTEND:20250303T110000Z
RRULE:FREQ=WEEKLY;COUNT=2
END:VEVENT
BEGIN:VEVENT
UID:11
SEQUENCE:3
RECURRENCE-ID;TZID=Europe/Berlin:20250310T110000
DTSTART:20250311T150000Z
DTEND:20250311T160000Z
END:VEVENT
BEGIN:VEVENT
UID:11
SEQUENCE:2
LAST-MODIFIED:20250309T000000Z
RECURRENCE-ID:20250310T100000Z
DTSTART:20250312T150000Z
DTEND:20250312T160000Z
END:VEVENT
END:VCALENDAR`, march, []string{"20250303T1000Z/20250303T1100Z", "20250311T1500Z/20250311T1600Z"}},
	}
	for _, tt := range tests {
		objs := mustObjects(t, tt.ics)
		var got []string
		for _, o := range objs {
			insts, err := o.Instances(tt.win[0], tt.win[1], &Options{Zone: berlin})
			if err != nil {
				t.Errorf("%s: Instances: %v", tt.name, err)
			}
			got = append(got, spans(insts)...)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s:\n got %v\nwant %v", tt.name, got, tt.want)
		}
	}
}

func TestInstancesBoundedForEndlessSecondlyRule(t *testing.T) {
	objs := mustObjects(t, `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:x
DTSTART:20000101T000000Z
DURATION:PT1S
RRULE:FREQ=SECONDLY
END:VEVENT
END:VCALENDAR`)
	_, err := objs[0].Instances(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC), &Options{Limits: Limits{PerEvent: 10000}})
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("Instances of an endless SECONDLY rule: err = %v, want ErrTruncated", err)
	}
}

func TestMessageParts(t *testing.T) {
	ics := "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:m1\r\nSUMMARY:Caf\xe9\r\nDTSTART:20250303T080000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	msg := "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b1\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n" +
		"--b2\r\nContent-Type: text/calendar; charset=ISO-8859-1; method=REQUEST\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.ReplaceAll(ics, "\xe9", "=E9") + "\r\n--b2--\r\n--b1--\r\n"
	parts, err := MessageParts([]byte(msg))
	if err != nil || len(parts) != 1 {
		t.Fatalf("MessageParts = %d parts, %v; want 1", len(parts), err)
	}
	objs, err := PartObjects(parts[0])
	if err != nil || len(objs) != 1 {
		t.Fatalf("PartObjects = %d, %v", len(objs), err)
	}
	if s, _ := objs[0].Master.Props.Text(ical.PropSummary); s != "Café" {
		t.Errorf("SUMMARY = %q, want Café (Latin-1 converted)", s)
	}
}

func TestUnreachableSubDailyRulesAreRefused(t *testing.T) {
	tests := []struct {
		rule string
		ok   bool
	}{
		{"FREQ=HOURLY;INTERVAL=24;BYHOUR=5", false},
		{"FREQ=HOURLY;INTERVAL=2;BYHOUR=11", false},
		{"FREQ=HOURLY;INTERVAL=2;BYHOUR=12", true},
		{"FREQ=MINUTELY;INTERVAL=60;BYMINUTE=5", false},
		{"FREQ=MINUTELY;INTERVAL=15;BYHOUR=9;BYMINUTE=30", true},
		{"FREQ=SECONDLY;INTERVAL=3600;BYSECOND=1", false},
		{"FREQ=DAILY;INTERVAL=3;BYHOUR=5", true},
		// A minute's set holds one candidate: rrule-go would step
		// through every minute to the year 9999 looking for a second.
		{"FREQ=MINUTELY;BYSETPOS=2", false},
		{"FREQ=SECONDLY;BYSETPOS=-2", false},
		{"FREQ=HOURLY;BYSETPOS=-2", false},
		{"FREQ=HOURLY;BYMINUTE=0,30;BYSETPOS=2", true},
		{"FREQ=DAILY;BYHOUR=1,2;BYSETPOS=3,-3", false},
		{"FREQ=DAILY;BYHOUR=9,12;BYSETPOS=-2", true},
		{"FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=-1", true},
	}
	for _, tt := range tests {
		objs := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:r\nDTSTART:20250303T100000Z\nDURATION:PT1H\nRRULE:"+tt.rule+"\nEND:VEVENT\nEND:VCALENDAR")
		_, err := objs[0].Instances(fuzzWindow[0], fuzzWindow[1], nil)
		if (err == nil) != tt.ok {
			t.Errorf("Instances with %s: err = %v, want ok=%v", tt.rule, err, tt.ok)
		}
	}
}
