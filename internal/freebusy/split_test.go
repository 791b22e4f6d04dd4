package freebusy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/fbpub/fbpub/internal/calendar"
)

// messageObjects reads each iCalendar text as fbpub reads one message:
// its objects are grouped by UID within that message only.
func messageObjects(t *testing.T, msgs ...string) [][]*calendar.Object {
	t.Helper()
	var out [][]*calendar.Object
	for _, m := range msgs {
		cals, err := calendar.Decode([]byte(strings.ReplaceAll(m, "\n", "\r\n")))
		if err != nil {
			t.Fatalf("Decode(%q): %v", m, err)
		}
		out = append(out, calendar.Objects(cals))
	}
	return out
}

func vevent(lines ...string) string {
	return "BEGIN:VCALENDAR\nBEGIN:VEVENT\n" + strings.Join(lines, "\n") + "\nEND:VEVENT\nEND:VCALENDAR\n"
}

// seriesOf is the daily series "s" of count instances at hour:00 UTC
// from March 3, with the extra lines given.
func seriesOf(count, hour int, extra ...string) string {
	return vevent(append([]string{"UID:s",
		fmt.Sprintf("DTSTART:20250303T%02d0000Z", hour), fmt.Sprintf("DTEND:20250303T%02d0000Z", hour+1),
		fmt.Sprintf("RRULE:FREQ=DAILY;COUNT=%d", count), "SUMMARY:Series"}, extra...)...)
}

var series = seriesOf(3, 10, "DTSTAMP:20250301T000000Z")

// TestOverridesAcrossMessages: the components of one UID count together
// whichever messages hold them, in any order; what the series' message
// alone says is not counted beside them.
func TestOverridesAcrossMessages(t *testing.T) {
	tests := []struct {
		name string
		msgs []string
		want []string
	}{
		{"override in its own message, in a zone only that message defines", []string{
			series,
			"BEGIN:VCALENDAR\nBEGIN:VTIMEZONE\nTZID:Office\nBEGIN:STANDARD\nDTSTART:19700101T000000\nTZOFFSETFROM:+0300\nTZOFFSETTO:+0300\nEND:STANDARD\nEND:VTIMEZONE\n" +
				"BEGIN:VEVENT\nUID:s\nRECURRENCE-ID:20250304T100000Z\nDTSTART;TZID=Office:20250304T180000\nDTEND;TZID=Office:20250304T190000\nSUMMARY:Moved\nEND:VEVENT\nEND:VCALENDAR\n",
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-04T15:00:00Z 2025-03-04T16:00:00Z",
			"BUSY 2025-03-05T10:00:00Z 2025-03-05T11:00:00Z",
		}},
		{"a cancelled instance in its own message", []string{
			series,
			vevent("UID:s", "RECURRENCE-ID:20250305T100000Z", "DTSTART:20250305T100000Z", "DTEND:20250305T110000Z", "STATUS:CANCELLED"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-04T10:00:00Z 2025-03-04T11:00:00Z",
		}},
		{"RANGE=THISANDFUTURE in its own message", []string{
			series,
			vevent("UID:s", "RECURRENCE-ID;RANGE=THISANDFUTURE:20250304T100000Z", "DTSTART:20250304T140000Z", "DTEND:20250304T160000Z", "STATUS:TENTATIVE"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY-TENTATIVE 2025-03-04T14:00:00Z 2025-03-04T16:00:00Z",
			"BUSY-TENTATIVE 2025-03-05T14:00:00Z 2025-03-05T16:00:00Z",
		}},
		{"EXDATE in the series' message frees the instance an override elsewhere still names", []string{
			seriesOf(3, 10, "EXDATE:20250304T100000Z"),
			vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
			vevent("UID:s", "RECURRENCE-ID:20250305T100000Z", "DTSTART:20250305T170000Z", "DTEND:20250305T180000Z"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-05T17:00:00Z 2025-03-05T18:00:00Z",
		}},
		{"two copies of the series: the higher SEQUENCE, not both", []string{
			seriesOf(3, 12, "SEQUENCE:2"),
			seriesOf(3, 10, "SEQUENCE:1"),
		}, []string{
			"BUSY 2025-03-03T12:00:00Z 2025-03-03T13:00:00Z",
			"BUSY 2025-03-04T12:00:00Z 2025-03-04T13:00:00Z",
			"BUSY 2025-03-05T12:00:00Z 2025-03-05T13:00:00Z",
		}},
		{"two copies of one SEQUENCE: the later LAST-MODIFIED, with its own overrides only", []string{
			seriesOf(2, 10, "LAST-MODIFIED:20250302T000000Z") +
				vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
			seriesOf(3, 10, "LAST-MODIFIED:20250301T000000Z"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-04T15:00:00Z 2025-03-04T16:00:00Z",
		}},
		{"two copies without LAST-MODIFIED: the later DTSTAMP; the older copy's override goes with it", []string{
			seriesOf(1, 10, "DTSTAMP:20250302T000000Z"),
			series + vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
		}},
		{"two copies of one override: the newer", []string{
			series,
			vevent("UID:s", "SEQUENCE:1", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T160000Z", "DTEND:20250304T170000Z"),
			vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-04T16:00:00Z 2025-03-04T17:00:00Z",
			"BUSY 2025-03-05T10:00:00Z 2025-03-05T11:00:00Z",
		}},
		{"overrides of one instance without their series: the newer", []string{
			vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTAMP:20250302T000000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
			vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTAMP:20250301T000000Z", "DTSTART:20250304T160000Z", "DTEND:20250304T170000Z"),
		}, []string{
			"BUSY 2025-03-04T15:00:00Z 2025-03-04T16:00:00Z",
		}},
		{"an override of another UID replaces nothing", []string{
			seriesOf(2, 10),
			vevent("UID:other", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z"),
		}, []string{
			"BUSY 2025-03-03T10:00:00Z 2025-03-03T11:00:00Z",
			"BUSY 2025-03-04T10:00:00Z 2025-03-04T11:00:00Z",
			"BUSY 2025-03-04T15:00:00Z 2025-03-04T16:00:00Z",
		}},
	}
	w := Window{ts("20250301T0000Z"), ts("20250401T0000Z")}
	for _, tt := range tests {
		msgs := messageObjects(t, tt.msgs...)
		// Every order of the messages gives the same answer (but for a tie
		// of versions, which the cases avoid).
		for _, order := range permutations(len(msgs)) {
			var objs []*calendar.Object
			for _, i := range order {
				objs = append(objs, msgs[i]...)
			}
			got := fmtPeriods(Compute(objs, w, nil).Periods)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: Compute(messages in order %v) =\n  %s\nwant\n  %s", tt.name, order, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		}
	}
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{nil}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// TestSplitOccurrencesKeepTheirMessage: in the occurrences the extended
// view annotates, each occurrence names the object its event is stored
// in (the extended view decides what a requester may read of it by that
// object's folder), and the inputs are left as they were.
func TestSplitOccurrencesKeepTheirMessage(t *testing.T) {
	msgs := messageObjects(t,
		series,
		vevent("UID:s", "RECURRENCE-ID:20250304T100000Z", "DTSTART:20250304T150000Z", "DTEND:20250304T160000Z", "SUMMARY:Moved"))
	objs := append(slices.Clone(msgs[0]), msgs[1]...)
	w := Window{ts("20250301T0000Z"), ts("20250401T0000Z")}
	res := Compute(objs, w, &Options{Occurrences: true})
	var got []string
	for _, oc := range res.Occurrences {
		msg := slices.IndexFunc(msgs, func(os []*calendar.Object) bool { return slices.Contains(os, oc.Object) })
		got = append(got, fmt.Sprintf("%s message %d %s", oc.Start.Format("02T15"), msg, oc.Event.Props.Get("SUMMARY").Value))
	}
	want := []string{"03T10 message 0 Series", "04T15 message 1 Moved", "05T10 message 0 Series"}
	if !slices.Equal(got, want) {
		t.Errorf("occurrences = %q, want %q", got, want)
	}
	if len(msgs[0][0].Overrides) != 0 || msgs[1][0].Master != nil {
		t.Errorf("Compute modified its input objects")
	}
}
