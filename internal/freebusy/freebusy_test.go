package freebusy

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/calendar"
)

func event(props map[string]string, attendees ...string) *ical.Component {
	ev := ical.NewComponent(ical.CompEvent)
	for k, v := range props {
		p := ical.NewProp(k)
		p.Value = v
		ev.Props.Set(p)
	}
	for _, a := range attendees {
		p := ical.NewProp(ical.PropAttendee)
		addr, partstat, _ := strings.Cut(a, " ")
		p.Value = addr
		if partstat != "" {
			p.Params.Set(ical.ParamParticipationStatus, partstat)
		}
		ev.Props.Add(p)
	}
	return ev
}

func TestClassify(t *testing.T) {
	const owner = "mailto:Alice@Example.org"
	tests := []struct {
		name      string
		props     map[string]string
		attendees []string
		want      Type
		counts    bool
	}{
		{"plain", nil, nil, Busy, true},
		{"transparent", map[string]string{"TRANSP": "TRANSPARENT"}, nil, "", false},
		{"cancelled", map[string]string{"STATUS": "CANCELLED"}, nil, "", false},
		{"tentative", map[string]string{"STATUS": "TENTATIVE"}, nil, BusyTentative, true},
		{"cdo free", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "FREE"}, nil, "", false},
		{"cdo working elsewhere", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "WORKINGELSEWHERE"}, nil, "", false},
		{"cdo tentative", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "TENTATIVE"}, nil, BusyTentative, true},
		{"cdo oof", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"}, nil, BusyUnavailable, true},
		{"cdo busy beats status tentative", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "BUSY", "STATUS": "TENTATIVE"}, nil, Busy, true},
		{"owner declined", nil, []string{"mailto:alice@example.org DECLINED"}, "", false},
		{"owner needs-action", nil, []string{"mailto:alice@example.org NEEDS-ACTION"}, BusyTentative, true},
		{"owner without partstat", nil, []string{"MAILTO:alice@example.org"}, BusyTentative, true},
		{"owner accepted", nil, []string{"mailto:alice@example.org ACCEPTED"}, Busy, true},
		{"someone else declined", nil, []string{"mailto:bob@example.org DECLINED"}, Busy, true},
		{"unanswered oof is tentative", map[string]string{"X-MICROSOFT-CDO-BUSYSTATUS": "OOF"}, []string{"mailto:alice@example.org NEEDS-ACTION"}, BusyTentative, true},
		{"organizer's own attendee line is ignored", map[string]string{"ORGANIZER": "mailto:alice@example.org"}, []string{"mailto:alice@example.org NEEDS-ACTION"}, Busy, true},
		{"organizer's own decline is ignored", map[string]string{"ORGANIZER": "mailto:alice@example.org"}, []string{"mailto:alice@example.org DECLINED"}, Busy, true},
		{"transparent beats cdo busy", map[string]string{"TRANSP": "TRANSPARENT", "X-MICROSOFT-CDO-BUSYSTATUS": "BUSY"}, nil, "", false},
	}
	for _, tt := range tests {
		got, ok := Classify(event(tt.props, tt.attendees...), owner)
		if got != tt.want || ok != tt.counts {
			t.Errorf("%s: Classify(%v, %v) = %q, %v; want %q, %v", tt.name, tt.props, tt.attendees, got, ok, tt.want, tt.counts)
		}
	}
}

func ts(s string) time.Time {
	t, err := time.Parse("20060102T1504Z", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestMergeAndClip(t *testing.T) {
	in := []Period{
		{ts("20250303T1000Z"), ts("20250303T1100Z"), Busy},
		{ts("20250303T1100Z"), ts("20250303T1200Z"), Busy},          // touches: merged
		{ts("20250303T1130Z"), ts("20250303T1300Z"), BusyTentative}, // other type: kept apart
		{ts("20250303T0800Z"), ts("20250303T0900Z"), Busy},
		{ts("20250228T2300Z"), ts("20250301T0100Z"), Busy}, // clipped at the window start
		{ts("20250401T0000Z"), ts("20250401T0100Z"), Busy}, // outside
	}
	got := Merge(Clip(in, Window{ts("20250301T0000Z"), ts("20250401T0000Z")}))
	want := []Period{
		{ts("20250301T0000Z"), ts("20250301T0100Z"), Busy},
		{ts("20250303T0800Z"), ts("20250303T0900Z"), Busy},
		{ts("20250303T1000Z"), ts("20250303T1200Z"), Busy},
		{ts("20250303T1130Z"), ts("20250303T1300Z"), BusyTentative},
	}
	if len(got) != len(want) {
		t.Fatalf("Merge(Clip(...)) = %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) || got[i].Type != want[i].Type {
			t.Errorf("period %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestComputeAndEncode(t *testing.T) {
	ics := strings.ReplaceAll(`BEGIN:VCALENDAR
BEGIN:VEVENT
UID:a
DTSTART:20250303T100000Z
DTEND:20250303T110000Z
RRULE:FREQ=DAILY;COUNT=3
END:VEVENT
BEGIN:VEVENT
UID:a
RECURRENCE-ID:20250304T100000Z
STATUS:CANCELLED
DTSTART:20250304T100000Z
DTEND:20250304T110000Z
END:VEVENT
BEGIN:VFREEBUSY
UID:published
FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250310T000000Z/PT2H
END:VFREEBUSY
END:VCALENDAR
`, "\n", "\r\n")
	cals, err := calendar.Decode([]byte(ics))
	if err != nil {
		t.Fatal(err)
	}
	w := Window{ts("20250301T0000Z"), ts("20250401T0000Z")}
	res := Compute(calendar.Objects(cals), w, nil)
	r := Reply{Organizer: "mailto:alice@example.org", UID: "u1", Stamp: ts("20250301T0000Z"), Window: w, Periods: res.Periods}
	var b bytes.Buffer
	if err := r.Encode(&b); err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub//fbpub//EN
METHOD:PUBLISH
BEGIN:VFREEBUSY
UID:u1
DTSTAMP:20250301T000000Z
DTSTART:20250301T000000Z
DTEND:20250401T000000Z
ORGANIZER:mailto:alice@example.org
FREEBUSY;FBTYPE=BUSY:20250303T100000Z/20250303T110000Z
FREEBUSY;FBTYPE=BUSY:20250305T100000Z/20250305T110000Z
FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250310T000000Z/20250310T020000Z
END:VFREEBUSY
END:VCALENDAR
`, "\n", "\r\n")
	if b.String() != want {
		t.Errorf("Encode:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestBudgetBoundsAFolder: many events that are each within the per-event
// limit cannot add up to unbounded work; what is cut off is counted.
func TestBudgetBoundsAFolder(t *testing.T) {
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\r\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "BEGIN:VEVENT\r\nUID:m%d\r\nDTSTART:20200101T000000Z\r\nDURATION:PT1M\r\nRRULE:FREQ=MINUTELY\r\nEND:VEVENT\r\n", i)
	}
	b.WriteString("END:VCALENDAR\r\n")
	cals, err := calendar.Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	w := Window{ts("20250301T0000Z"), ts("20250302T0000Z")}
	// Each series starts near the window (about 4,500 steps: the day and
	// the day either side), so the budget serves the first twenty-odd.
	res := Compute(calendar.Objects(cals), w, &Options{Expand: &calendar.Options{Limits: calendar.Limits{Budget: calendar.NewBudget(100000)}}})
	if res.Steps != 100000 || res.Truncated == 0 || res.Truncated == 50 {
		t.Errorf("Steps = %d, Truncated = %d; want the budget spent and some of the 50 events cut off", res.Steps, res.Truncated)
	}
	if want := []Period{{w.Start, w.End, Busy}}; !reflect.DeepEqual(res.Periods, want) {
		t.Errorf("periods %v, want the whole day busy", res.Periods)
	}
}

// hostile is a calendar of n events that each recur every second for a
// billion seconds from 1 March 2025 (D2).
func hostile(t testing.TB, n int) []*calendar.Object {
	return sameEvents(t, n, "20250301T000000Z", "20250301T000001Z", "FREQ=SECONDLY;COUNT=1000000000")
}

// sameEvents is n events, each of its own UID, with the same times and rule.
func sameEvents(t testing.TB, n int, start, end, rule string) []*calendar.Object {
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\r\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "BEGIN:VEVENT\r\nUID:s%d\r\nDTSTART:%s\r\nDTEND:%s\r\nRRULE:%s\r\nEND:VEVENT\r\n", i, start, end, rule)
	}
	b.WriteString("END:VCALENDAR\r\n")
	cals, err := calendar.Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return calendar.Objects(cals)
}

// TestHostileFolderIsBoundedAndBusy is D2: however many events recur
// every second, one answer takes at most DefaultBudget steps of
// expansion, and what the budget could not reach counts busy.
func TestHostileFolderIsBoundedAndBusy(t *testing.T) {
	w := Window{ts("20250301T0000Z"), ts("20250310T0000Z")}
	for _, n := range []int{1, 20, 200} {
		res := Compute(hostile(t, n), w, nil)
		// A bound in steps, not seconds: at a few microseconds a step
		// (rrule-go, the time zone, the periods), a fraction of a
		// second of CPU.
		if res.Steps > 200_000 {
			t.Errorf("%d events: %d steps, want at most 200,000", n, res.Steps)
		}
		if res.Truncated != n {
			t.Errorf("%d events: Truncated = %d, want %d", n, res.Truncated, n)
		}
		if want := []Period{{w.Start, w.End, Busy}}; !reflect.DeepEqual(res.Periods, want) {
			t.Errorf("%d events: periods %v, want the whole window busy", n, res.Periods)
		}
	}
}

// TestRareDaysFolderIsBoundedAndBusy: events whose rules never produce an
// occurrence (rrule-go steps through every day to the year 9999 to find
// that out, 0.2 to 0.5 s each) cost one answer the budget, not 0.2 s
// each: one is expanded, the budget pays for it, the rest count busy.
func TestRareDaysFolderIsBoundedAndBusy(t *testing.T) {
	w := Window{ts("20250301T0000Z"), ts("20250310T0000Z")}
	const n = 200
	res := Compute(sameEvents(t, n, "20250101T090000Z", "20250101T100000Z", "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30"), w, nil)
	if res.Truncated != n-1 {
		t.Errorf("Truncated = %d, want %d: one scan to the year 9999 spends the budget", res.Truncated, n-1)
	}
	if want := []Period{{w.Start, w.End, Busy}}; !reflect.DeepEqual(res.Periods, want) {
		t.Errorf("periods %v, want the whole window busy", res.Periods)
	}
}

// TestOldSeriesFailsClosed is D3: a series begun long before the window
// is found in it however old it is, and one that a limit still keeps
// from the window (COUNT counts from DTSTART) counts busy there, as its
// properties say, instead of free.
func TestOldSeriesFailsClosed(t *testing.T) {
	event := func(rule, extra string) []*calendar.Object {
		cals, err := calendar.Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:old\r\nDTSTART:20100101T000000Z\r\nDTEND:20100101T003000Z\r\nRRULE:" + rule + "\r\n" + extra + "END:VEVENT\r\nEND:VCALENDAR\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return calendar.Objects(cals)
	}
	day := Window{ts("20210530T0000Z"), ts("20210531T0000Z")}
	res := Compute(event("FREQ=HOURLY", ""), day, nil)
	if len(res.Periods) != 24 || res.Truncated != 0 {
		t.Errorf("FREQ=HOURLY from 2010 on 30 May 2021: %d periods, Truncated %d; want 24, 0", len(res.Periods), res.Truncated)
	}

	w := Window{ts("20250301T0000Z"), ts("20250308T0000Z")}
	for _, tt := range []struct {
		extra string
		want  []Period
	}{
		{"", []Period{{w.Start, w.End, Busy}}},
		{"STATUS:TENTATIVE\r\n", []Period{{w.Start, w.End, BusyTentative}}},
		{"TRANSP:TRANSPARENT\r\n", nil},
	} {
		res := Compute(event("FREQ=HOURLY;COUNT=1000000", tt.extra), w, &Options{Occurrences: true})
		if !reflect.DeepEqual(res.Periods, tt.want) || res.Truncated != 1 || res.Errors != 0 {
			t.Errorf("COUNT=1000000 from 2010 (%q): periods %v, Truncated %d, Errors %d; want %v, 1, 0", tt.extra, res.Periods, res.Truncated, res.Errors, tt.want)
		}
		if len(res.Occurrences) != len(tt.want) || len(tt.want) == 1 && res.Occurrences[0].Event == nil {
			t.Errorf("COUNT=1000000 from 2010 (%q): occurrences %v, want the span with its event", tt.extra, res.Occurrences)
		}
	}
}
