package calendar

import (
	"bytes"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// kolab2Event is a Kolab format 2 event with the given times and
// recurrence element.
func kolab2Event(start, end, recurrence string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<event version="1.0">
 <uid>k2-1</uid>
 <last-modification-date>2025-02-01T10:00:00Z</last-modification-date>
 <start-date>` + start + `</start-date>
 <end-date>` + end + `</end-date>
 <summary>Team, weekly; review</summary>
 <location>Room 1</location>
 <body>Line one
line two</body>
 <sensitivity>confidential</sensitivity>
 <show-time-as>tentative</show-time-as>
 <organizer><display-name>Alice</display-name><smtp-address>alice@example.org</smtp-address></organizer>
 <attendee><display-name>Bob</display-name><smtp-address>bob@example.org</smtp-address><status>accepted</status><role>optional</role></attendee>
 <attendee><smtp-address>carol@example.org</smtp-address><status>whatever</status></attendee>
 <attendee><display-name>Nobody</display-name></attendee>
` + recurrence + `
</event>`
}

// TestKolab2Sensitivity: Kolab 2's sensitivity becomes the event's one
// CLASS: the most restrictive where an event has several, whatever their
// order, and PRIVATE for a value Kolab 2 does not define (as an unknown
// CLASS counts); none, or an empty one, gives no CLASS (public).
func TestKolab2Sensitivity(t *testing.T) {
	for _, tc := range []struct {
		elements, want string
	}{
		{"", ""},
		{"<sensitivity></sensitivity>", ""},
		{"<sensitivity>Public</sensitivity>", "PUBLIC"},
		{"<sensitivity> confidential </sensitivity>", "CONFIDENTIAL"},
		{"<sensitivity>private</sensitivity>", "PRIVATE"},
		{"<sensitivity>secret</sensitivity>", "PRIVATE"},
		{"<sensitivity>private-ish</sensitivity>", "PRIVATE"},
		{"<sensitivity>public</sensitivity><sensitivity>private</sensitivity>", "PRIVATE"},
		{"<sensitivity>private</sensitivity><sensitivity>public</sensitivity>", "PRIVATE"},
		{"<sensitivity>public</sensitivity><sensitivity>confidential</sensitivity>", "CONFIDENTIAL"},
		{"<sensitivity>confidential</sensitivity><sensitivity></sensitivity>", "CONFIDENTIAL"},
	} {
		doc := strings.Replace(kolab2Event("2025-03-03T09:00:00Z", "", ""), " <sensitivity>confidential</sensitivity>\n", tc.elements, 1)
		cal, err := kolab2Calendar([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", tc.elements, err)
		}
		var got []string
		for _, ev := range cal.Children {
			for _, p := range ev.Props.Values("CLASS") {
				got = append(got, p.Value)
			}
		}
		want := []string{tc.want}
		if tc.want == "" {
			want = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q: CLASS %q, want %q", tc.elements, got, want)
		}
	}
}

// TestKolab2Calendar: a Kolab format 2 event becomes one VEVENT, with
// each recurrence fbpub reads as an RRULE (and its exclusions as EXDATEs);
// a recurrence or a time it cannot read is an ErrMalformed.
func TestKolab2Calendar(t *testing.T) {
	const timed, allDay = "2025-03-03T09:00:00Z", "2025-03-03"
	for _, tc := range []struct {
		name, start, end, recurrence string
		want                         []string // lines of the VEVENT
	}{
		{"single", timed, "2025-03-03T10:00:00Z", "", []string{"UID:k2-1", "DTSTAMP:20250201T100000Z", "DTSTART:20250303T090000Z", "DTEND:20250303T100000Z",
			`SUMMARY:Team\, weekly\; review`, "LOCATION:Room 1", `DESCRIPTION:Line one\nline two`, "CLASS:CONFIDENTIAL", "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE",
			"ORGANIZER;CN=Alice:mailto:alice@example.org", "ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED;ROLE=OPT-PARTICIPANT:mailto:bob@example.org",
			"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org"}},
		{"all day", allDay, "2025-03-04", "", []string{"DTSTART;VALUE=DATE:20250303", "DTEND;VALUE=DATE:20250305"}},
		{"no end", timed, "", "", []string{"DTSTART:20250303T090000Z"}},
		{"daily count", timed, "", `<recurrence cycle="daily"><interval>2</interval><range type="number">5</range><exclusion>2025-03-05</exclusion></recurrence>`,
			[]string{"RRULE:FREQ=DAILY;INTERVAL=2;COUNT=5", "EXDATE:20250305T090000Z"}},
		{"weekly until", timed, "", `<recurrence cycle="weekly"><day>monday</day><day>Thursday</day><range type="date">2025-06-30</range></recurrence>`,
			[]string{"RRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20250630T235959Z"}},
		{"weekly all day", allDay, allDay, `<recurrence cycle="weekly"><range type="date">2025-06-30</range><exclusion>2025-03-10</exclusion></recurrence>`,
			[]string{"RRULE:FREQ=WEEKLY;UNTIL=20250630", "EXDATE;VALUE=DATE:20250310", "DTEND;VALUE=DATE:20250304"}},
		{"monthly daynumber", timed, "", `<recurrence cycle="monthly" type="daynumber"><daynumber>3</daynumber></recurrence>`, []string{"RRULE:FREQ=MONTHLY;BYMONTHDAY=3"}},
		{"monthly daynumber by date", timed, "", `<recurrence cycle="monthly" type="daynumber"><date>15</date></recurrence>`, []string{"RRULE:FREQ=MONTHLY;BYMONTHDAY=15"}},
		{"monthly last weekday", timed, "", `<recurrence cycle="monthly" type="weekday"><daynumber>5</daynumber><day>friday</day><range type="none"/></recurrence>`,
			[]string{"RRULE:FREQ=MONTHLY;BYDAY=-1FR"}},
		{"yearly monthday", allDay, allDay, `<recurrence cycle="yearly" type="monthday"><date>3</date><month>march</month></recurrence>`, []string{"RRULE:FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=3"}},
		{"yearly weekday", timed, "", `<recurrence cycle="yearly" type="weekday"><daynumber>2</daynumber><day>sunday</day><month>May</month></recurrence>`,
			[]string{"RRULE:FREQ=YEARLY;BYMONTH=5;BYDAY=2SU"}},
		{"yearly yearday", timed, "", `<recurrence cycle="yearly" type="yearday"><daynumber>62</daynumber><month>march</month></recurrence>`, []string{"RRULE:FREQ=YEARLY;BYYEARDAY=62"}},
		{"bad cycle", timed, "", `<recurrence cycle="hourly"/>`, nil},
		{"bad type", timed, "", `<recurrence cycle="monthly" type="other"/>`, nil},
		{"weekday without day", timed, "", `<recurrence cycle="monthly" type="weekday"><daynumber>1</daynumber></recurrence>`, nil},
		{"day zero", timed, "", `<recurrence cycle="yearly" type="yearday"><daynumber>0</daynumber></recurrence>`, nil},
		{"bad count", timed, "", `<recurrence cycle="daily"><range type="number">0</range></recurrence>`, nil},
		{"bad until", timed, "", `<recurrence cycle="daily"><range type="date">soon</range></recurrence>`, nil},
		{"bad exclusion", timed, "", `<recurrence cycle="daily"><exclusion>soon</exclusion></recurrence>`, nil},
		{"bad start", "soon", "", "", nil},
		{"bad end", timed, "later", "", nil},
	} {
		cal, err := kolab2Calendar([]byte(kolab2Event(tc.start, tc.end, tc.recurrence)))
		if tc.want == nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s: kolab2Calendar = %v, want ErrMalformed", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: kolab2Calendar: %v", tc.name, err)
			continue
		}
		var b bytes.Buffer
		if err := NewEncoder(&b).Encode(cal.Component); err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(b.String(), "\r\n ", "")
		for _, line := range tc.want {
			if !strings.Contains(text, "\r\n"+line+"\r\n") {
				t.Errorf("%s: no line %q in\n%s", tc.name, line, text)
			}
		}
		if strings.Contains(text, "Nobody") {
			t.Errorf("%s: an attendee without address was kept:\n%s", tc.name, text)
		}
	}
}

// TestXMLTextSplitByComments: text split into many pieces by comments
// (a<!---->a<!---->…) is gathered in linear work. Adding each piece to
// the text made a 3.2 MB Kolab message cost 37 s of CPU (a black-box
// sweep); the bound here is on bytes allocated, which does not depend on
// the machine: the quadratic copy of this 0.7 MB document allocates about
// 5 GB.
func TestXMLTextSplitByComments(t *testing.T) {
	const pieces = 100_000
	doc := `<?xml version="1.0" encoding="UTF-8"?><event version="1.0"><uid>kq</uid><summary>` +
		strings.Repeat("a<!---->", pieces) + `</summary><start-date>2026-12-16T10:00:00Z</start-date>` +
		`<end-date>2026-12-16T11:00:00Z</end-date></event>`
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	root, err := parseXML([]byte(doc))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.val("summary"); got != strings.Repeat("a", pieces) {
		t.Errorf("summary: %d bytes, want %d a's", len(got), pieces)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("parsing a %d-byte document allocated %d MB", len(doc), alloc>>20)
	}
}
