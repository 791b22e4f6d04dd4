package freebusy

import (
	"bytes"
	"fmt"
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
	res := Compute(calendar.Objects(cals), w, &Options{Expand: &calendar.Options{Limits: calendar.Limits{Budget: calendar.NewBudget(300000)}}})
	if res.Truncated != 50 {
		t.Errorf("Truncated = %d, want all 50 events counted as cut off", res.Truncated)
	}
}
