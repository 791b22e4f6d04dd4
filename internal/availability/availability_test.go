package availability

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
)

func utc(s string) time.Time {
	t, err := time.Parse("20060102T1504Z", s)
	if err != nil {
		panic(err)
	}
	return t
}

func win(a, b string) freebusy.Window { return freebusy.Window{Start: utc(a), End: utc(b)} }

func zone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func fmtWindows(ws []freebusy.Window) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "%s/%s ", w.Start.UTC().Format("20060102T1504Z"), w.End.UTC().Format("20060102T1504Z"))
	}
	return strings.TrimSpace(b.String())
}

func fmtPeriods(ps []freebusy.Period) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s/%s:%s ", p.Start.UTC().Format("20060102T1504Z"), p.End.UTC().Format("20060102T1504Z"), p.Type)
	}
	return strings.TrimSpace(b.String())
}

func TestParseHours(t *testing.T) {
	tests := []struct {
		in, err string
		want    map[time.Weekday]string // day → ranges in minutes, as "540-1020"
	}{
		{in: "MO-FR 09:00-17:00", want: map[time.Weekday]string{time.Monday: "540-1020", time.Friday: "540-1020", time.Saturday: ""}},
		{in: "mo,we 08:00-12:00,13:00-17:00", want: map[time.Weekday]string{time.Monday: "480-720 780-1020", time.Tuesday: "", time.Wednesday: "480-720 780-1020"}},
		{in: "FR-MO 22:00-24:00", want: map[time.Weekday]string{time.Friday: "1320-1440", time.Sunday: "1320-1440", time.Monday: "1320-1440", time.Tuesday: ""}},
		{in: "MO 09:00-12:00; MO 11:00-14:00", want: map[time.Weekday]string{time.Monday: "540-840"}},
		{in: "", err: "availability: empty working hours"},
		{in: "MO-FR", err: `availability: "MO-FR" is not days and times like "MO-FR 09:00-17:00"`},
		{in: "XX 09:00-17:00", err: `availability: "XX" is not a day (MO, TU, WE, TH, FR, SA, SU)`},
		{in: "MO-XY 09:00-17:00", err: `availability: "XY" is not a day (MO, TU, WE, TH, FR, SA, SU)`},
		{in: "MO 9:00-17:00", err: `availability: "9:00-17:00" is not a time range like 09:00-17:00`},
		{in: "MO 09:00-25:00", err: `availability: "09:00-25:00" is not a time range like 09:00-17:00`},
		{in: "MO 09:60-10:00", err: `availability: "09:60-10:00" is not a time range like 09:00-17:00`},
		{in: "MO 17:00-09:00", err: `availability: "17:00-09:00" ends before it starts`},
	}
	for _, tt := range tests {
		h, err := ParseHours(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseHours(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHours(%q): %v", tt.in, err)
			continue
		}
		for day, want := range tt.want {
			var got []string
			for _, r := range h.days[day] {
				got = append(got, fmt.Sprintf("%d-%d", r[0], r[1]))
			}
			if g := strings.Join(got, " "); g != want {
				t.Errorf("ParseHours(%q) on %s = %q, want %q", tt.in, day, g, want)
			}
		}
		if h.String() != strings.TrimSpace(tt.in) {
			t.Errorf("ParseHours(%q).String() = %q", tt.in, h.String())
		}
	}
}

func TestWorking(t *testing.T) {
	tests := []struct {
		name  string
		hours string
		zone  string
		w     freebusy.Window
		want  string
	}{
		{"Berlin across the spring change", "MO-FR 09:00-17:00", "Europe/Berlin", win("20250327T0000Z", "20250402T0000Z"),
			// Thu, Fri at UTC+1; Mon, Tue at UTC+2 (the change is Sun 30 March).
			"20250327T0800Z/20250327T1600Z 20250328T0800Z/20250328T1600Z 20250331T0700Z/20250331T1500Z 20250401T0700Z/20250401T1500Z"},
		{"New York, the window cuts a day", "MO-FR 09:00-17:00", "America/New_York", win("20250307T1500Z", "20250311T0000Z"),
			// Fri at UTC-5 from the window's start; Mon at UTC-4 (the change is Sun 9 March).
			"20250307T1500Z/20250307T2200Z 20250310T1300Z/20250310T2100Z"},
		{"a local day that is the previous UTC day", "SA 00:00-02:00", "Asia/Tokyo", win("20250307T0000Z", "20250309T0000Z"),
			"20250307T1500Z/20250307T1700Z"},
		{"a nil pattern is the whole window", "", "UTC", win("20250307T0000Z", "20250308T0000Z"), "20250307T0000Z/20250308T0000Z"},
	}
	for _, tt := range tests {
		var h *Hours
		if tt.hours != "" {
			h = MustParseHours(tt.hours)
		}
		if got := fmtWindows(h.Working(tt.w, zone(tt.zone))); got != tt.want {
			t.Errorf("%s: (%q).Working(%s, %s) =\n %s\nwant\n %s", tt.name, tt.hours, fmtWindows([]freebusy.Window{tt.w}), tt.zone, got, tt.want)
		}
	}
}

func objects(t *testing.T, ics string) []*calendar.Object {
	t.Helper()
	cals, err := calendar.Decode([]byte(strings.ReplaceAll(ics, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return calendar.Objects(cals)
}

func availabilities(t *testing.T, objs []*calendar.Object, w freebusy.Window, loc *time.Location) []calendar.Availability {
	t.Helper()
	var out []calendar.Availability
	for _, o := range objs {
		avs, err := o.Availabilities(w.Start, w.End, &calendar.Options{Zone: loc})
		if err != nil {
			t.Fatalf("Availabilities: %v", err)
		}
		out = append(out, avs...)
	}
	return out
}

// lunch is carol's VAVAILABILITY, as Apple's and Cyrus's clients store it:
// weekdays 09:00-13:00 and 14:00-18:00 in London, each a weekly AVAILABLE.
const lunch = `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VTIMEZONE
TZID:Europe/London
BEGIN:STANDARD
DTSTART:19701025T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T010000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VAVAILABILITY
UID:carol-hours
DTSTAMP:20250101T000000Z
BEGIN:AVAILABLE
UID:carol-morning
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/London:20250106T090000
DTEND;TZID=Europe/London:20250106T130000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
BEGIN:AVAILABLE
UID:carol-afternoon
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/London:20250106T140000
DTEND;TZID=Europe/London:20250106T180000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
END:VAVAILABILITY
END:VCALENDAR
`

func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		ics  string
		w    freebusy.Window
		want string
	}{
		{"a recurring lunch break, across London's spring change", lunch, win("20250328T0000Z", "20250401T0000Z"),
			// Fri 28 March at UTC+0: 09-13, 14-18 available; Mon 31 March
			// at UTC+1: 08-12, 13-17 UTC.
			"20250328T0000Z/20250328T0900Z:BUSY-UNAVAILABLE 20250328T1300Z/20250328T1400Z:BUSY-UNAVAILABLE " +
				"20250328T1800Z/20250331T0800Z:BUSY-UNAVAILABLE 20250331T1200Z/20250331T1300Z:BUSY-UNAVAILABLE 20250331T1700Z/20250401T0000Z:BUSY-UNAVAILABLE"},
		{"a higher priority overrides a lower one where their spans overlap", `BEGIN:VCALENDAR
BEGIN:VAVAILABILITY
UID:base
PRIORITY:9
BUSYTYPE:BUSY
BEGIN:AVAILABLE
UID:day
DTSTART:20250303T090000Z
DTEND:20250303T170000Z
RRULE:FREQ=DAILY
END:AVAILABLE
END:VAVAILABILITY
BEGIN:VAVAILABILITY
UID:away
PRIORITY:1
DTSTART:20250304T000000Z
DTEND:20250305T000000Z
END:VAVAILABILITY
BEGIN:VAVAILABILITY
UID:undefined-priority-ranks-last
DTSTART:20250305T000000Z
DTEND:20250306T000000Z
BUSYTYPE:BUSY-TENTATIVE
END:VAVAILABILITY
END:VCALENDAR
`, win("20250303T0000Z", "20250306T0000Z"),
			"20250303T0000Z/20250303T0900Z:BUSY 20250303T1700Z/20250304T0000Z:BUSY " +
				"20250304T0000Z/20250305T0000Z:BUSY-UNAVAILABLE " +
				"20250305T0000Z/20250305T0900Z:BUSY 20250305T1700Z/20250306T0000Z:BUSY"},
		{"components of one priority: available where either says so", `BEGIN:VCALENDAR
BEGIN:VAVAILABILITY
UID:a
DTSTART:20250303T000000Z
DTEND:20250304T000000Z
BEGIN:AVAILABLE
UID:a1
DTSTART:20250303T090000Z
DTEND:20250303T120000Z
END:AVAILABLE
END:VAVAILABILITY
BEGIN:VAVAILABILITY
UID:b
DTSTART:20250303T060000Z
DTEND:20250303T180000Z
BUSYTYPE:BUSY
BEGIN:AVAILABLE
UID:b1
DTSTART:20250303T110000Z
DTEND:20250303T150000Z
END:AVAILABLE
END:VAVAILABILITY
END:VCALENDAR
`, win("20250303T0000Z", "20250304T0000Z"),
			"20250303T0000Z/20250303T0900Z:BUSY-UNAVAILABLE 20250303T1500Z/20250304T0000Z:BUSY-UNAVAILABLE"},
		{"time outside every span is available", `BEGIN:VCALENDAR
BEGIN:VAVAILABILITY
UID:a
DTSTART:20250303T100000Z
DURATION:PT2H
END:VAVAILABILITY
END:VCALENDAR
`, win("20250303T0000Z", "20250304T0000Z"), "20250303T1000Z/20250303T1200Z:BUSY-UNAVAILABLE"},
	}
	for _, tt := range tests {
		avs := availabilities(t, objects(t, tt.ics), tt.w, time.UTC)
		if got := fmtPeriods(Unavailable(avs, tt.w)); got != tt.want {
			t.Errorf("%s: Unavailable =\n %s\nwant\n %s", tt.name, got, tt.want)
		}
	}
}

func TestOffHours(t *testing.T) {
	w := win("20250307T0000Z", "20250310T0000Z")
	hours := MustParseHours("MO-FR 09:00-17:00")
	// The pattern applies only without VAVAILABILITY; with neither,
	// nothing is off hours.
	if got, want := fmtPeriods(OffHours(nil, hours, zone("Europe/Berlin"), w)),
		"20250307T0000Z/20250307T0800Z:BUSY-UNAVAILABLE 20250307T1600Z/20250310T0000Z:BUSY-UNAVAILABLE"; got != want {
		t.Errorf("OffHours(pattern) = %s, want %s", got, want)
	}
	if got := OffHours(nil, nil, zone("Europe/Berlin"), w); got != nil {
		t.Errorf("OffHours(nothing) = %s, want none", fmtPeriods(got))
	}
	avs := availabilities(t, objects(t, lunch), w, time.UTC)
	if got, want := fmtPeriods(OffHours(avs, hours, zone("Europe/Berlin"), w)),
		"20250307T0000Z/20250307T0900Z:BUSY-UNAVAILABLE 20250307T1300Z/20250307T1400Z:BUSY-UNAVAILABLE 20250307T1800Z/20250310T0000Z:BUSY-UNAVAILABLE"; got != want {
		t.Errorf("OffHours(VAVAILABILITY, pattern) = %s, want %s", got, want)
	}
}

// week is a hand-built week for three people: alice works 09-17 in
// Berlin, bob 09-17 in New York (whose clocks move forward on Sunday 9
// March 2025, inside the window), carol has the lunch break above in
// London. Alice has a tentative meeting on Tuesday, bob a meeting on
// Monday.
var week = []struct {
	name, zone, hours, ics string
}{
	{"alice", "Europe/Berlin", "MO-FR 09:00-17:00", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:alice-tentative
DTSTART:20250311T140000Z
DTEND:20250311T150000Z
STATUS:TENTATIVE
END:VEVENT
END:VCALENDAR
`},
	{"bob", "America/New_York", "MO-FR 09:00-17:00", `BEGIN:VCALENDAR
BEGIN:VEVENT
UID:bob-meeting
DTSTART;TZID=America/New_York:20250310T110000
DTEND;TZID=America/New_York:20250310T113000
END:VEVENT
END:VCALENDAR
`},
	{"carol", "Europe/London", "", lunch},
}

func TestSlots(t *testing.T) {
	w := win("20250307T0000Z", "20250312T0000Z")
	var members [][]freebusy.Period
	for _, m := range week {
		objs := objects(t, m.ics)
		loc := zone(m.zone)
		var hours *Hours
		if m.hours != "" {
			hours = MustParseHours(m.hours)
		}
		res := freebusy.Compute(objs, w, &freebusy.Options{Expand: &calendar.Options{Zone: loc}})
		ps := append(res.Periods, OffHours(availabilities(t, objs, w, loc), hours, loc, w)...)
		members = append(members, ps)
	}
	// Working time in common, by hand: Fri 7 March alice 08-16, bob 14-22
	// (UTC-5), carol 09-13 and 14-18: 14-16. Mon 10 March bob is at UTC-4:
	// 13-21, carol 14-18, alice 08-16: 14-16, less bob's meeting 15:00-15:30.
	// Tue 11 March: 14-16, less alice's tentative 14-15 when it counts.
	tests := []struct {
		tentativeFree bool
		min           time.Duration
		want          string
	}{
		{false, time.Hour, "20250307T1400Z/20250307T1600Z 20250310T1400Z/20250310T1500Z 20250311T1500Z/20250311T1600Z"},
		{true, time.Hour, "20250307T1400Z/20250307T1600Z 20250310T1400Z/20250310T1500Z 20250311T1400Z/20250311T1600Z"},
		{false, 30 * time.Minute, "20250307T1400Z/20250307T1600Z 20250310T1400Z/20250310T1500Z 20250310T1530Z/20250310T1600Z 20250311T1500Z/20250311T1600Z"},
		{false, 2 * time.Hour, "20250307T1400Z/20250307T1600Z"},
		{true, 3 * time.Hour, ""},
	}
	for _, tt := range tests {
		if got := fmtWindows(Slots(members, w, tt.min, tt.tentativeFree)); got != tt.want {
			t.Errorf("Slots(week, %s, tentativeFree=%v) =\n %s\nwant\n %s", tt.min, tt.tentativeFree, got, tt.want)
		}
	}
	if got := Slots(nil, w, time.Hour, false); got != nil {
		t.Errorf("Slots(no members) = %s, want none", fmtWindows(got))
	}
	// One member alone, whole day: the window itself.
	if got, want := fmtWindows(Slots([][]freebusy.Period{{}}, w, time.Hour, false)), "20250307T0000Z/20250312T0000Z"; got != want {
		t.Errorf("Slots(one free member) = %s, want %s", got, want)
	}
}

// FuzzParseHours: any text either fails to parse or gives working time
// inside the window, sorted and disjoint, on any zone's clock.
func FuzzParseHours(f *testing.F) {
	for _, s := range []string{"MO-FR 09:00-17:00", "FR-MO 22:00-24:00", "mo,we 08:00-12:00,13:00-17:00; SA 10:00-11:00", "MO 9-5", "SU-SU 00:00-24:00"} {
		f.Add(s)
	}
	w := win("20250325T0000Z", "20250405T0000Z")
	loc := zone("Europe/Berlin")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHours(s)
		if err != nil {
			return
		}
		var prev time.Time
		for _, s := range h.Working(w, loc) {
			if s.Start.Before(w.Start) || s.End.After(w.End) || !s.End.After(s.Start) || s.Start.Before(prev) || (!prev.IsZero() && !s.Start.After(prev)) {
				t.Fatalf("ParseHours(%q).Working: span %v out of order or of the window", h, s)
			}
			prev = s.End
		}
	})
}
