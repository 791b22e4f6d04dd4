package httpapi

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/oracle"
	"github.com/fbpub/fbpub/internal/testbed"
)

// feedCorpus are calendars from the differential corpus that go into one
// folder here: every producer, recurrence with overrides and exceptions,
// custom and Windows zones. Left out: a published VFREEBUSY (a feed
// carries only events), BYWEEKNO (ical.js is wrong there and the oracle
// cannot correct it) and the unbounded rules (slow for no gain).
var feedCorpus = strings.Fields(`01-outlook-weekly-exceptions.ics 03-outlook-custom-tzid.ics
04-outlook-busystatus.ics 05-outlook-alldayevent.ics 06-outlook-pacific-recurring.ics
07-outlook-invite-base64.eml 10-google-weekly-until.ics 11-google-allday.ics 12-google-newyork-exdate.ics
13-google-invites-partstat.ics 20-apple-duration-valarm.ics 21-apple-exdate-lists.ics
22-apple-birthday-travel.ics 23-apple-tentative-transparent.ics 30-thunderbird-last-friday.ics
32-thunderbird-monthly-override.ics 33-thunderbird-invite-needs-action.ics 40-evolution-weekly.ics
41-evolution-allday-and-floating.ics 50-kolab2-single.eml 51-kolab2-recurring.eml 55-kolab3-recurring.eml
56-kolab3-allday-declined.eml 57-kolab3-cancelled-instance.eml 61-mime-quoted-printable.eml
62-mime-iso-8859-1.eml 70-floating-times.ics 71-allday-multiday-dst.ics 72-duration-p1d-dst.ics
73-dtstart-dtend-different-zones.ics 74-rrule-plus-rdate.ics 76-rdate-period.ics 78-exdate-repeated-comma.ics
79-override-into-window.ics 80-override-out-of-window.ics 81-range-thisandfuture.ics 82-cancelled-instance.ics
83-partstat.ics 84-transparent.ics 85-status-tentative.ics 86-yearly-feb29-explicit.ics 88-bysetpos.ics
90-count.ics 91-until-date.ics 93-zero-length.ics 94-spanning-window-edges.ics 95-monthly-bymonthday31.ics
96-custom-vtimezone-rdate.ics 99-several-vcalendars.ics`)

// TestFeedInClients: a feed fbpub serves from IMAP parses in ical.js
// (Thunderbird) and Python's icalendar, and fbpub's free/busy for the
// folder matches what ical.js computes from that feed.
func TestFeedInClients(t *testing.T) {
	s := setup(t, 0)
	s.srv.CreateFolder(t, "alice", "Calendar/Corpus")
	s.srv.SetACL(t, "alice", "Calendar/Corpus", testbed.Proxy, "lr")
	for _, name := range feedCorpus {
		b, err := os.ReadFile(filepath.Join("../calendar/testdata/corpus", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".ics") {
			b = testbed.CalendarMessage(name, string(b))
		}
		s.srv.Append(t, "alice", "Calendar/Corpus", b)
	}
	r := s.do(t, "GET", "/calendar/alice/Calendar/Corpus.ics", asAlice...)
	if r.code != 200 {
		t.Fatalf("feed: %d %s", r.code, r.body)
	}
	feed := r.body
	events := strings.Count(feed, "BEGIN:VEVENT")
	if n, err := oracle.ParseICalJS(t, feed); err != nil || n != events {
		t.Errorf("ical.js: %d events, %v; fbpub wrote %d", n, err, events)
	}
	if n, err := oracle.ParsePython(t, feed); err != nil || n != events {
		t.Errorf("python icalendar: %d events, %v; fbpub wrote %d", n, err, events)
	}

	busy := oracle.StartBusy(t)
	period := regexp.MustCompile(`(?m)^FREEBUSY;FBTYPE=([A-Z-]+):(\d{8}T\d{6}Z)/(\d{8}T\d{6}Z)\r$`)
	for _, w := range [][2]string{{"2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z"}, {"2025-04-01T00:00:00Z", "2025-05-01T00:00:00Z"}} {
		q := "?start=" + w[0] + "&end=" + w[1]
		r := s.do(t, "GET", "/freebusy/user/alice/Calendar/Corpus"+q)
		if r.code != 200 {
			t.Fatalf("free/busy: %d %s", r.code, r.body)
		}
		var got []string
		for _, m := range period.FindAllStringSubmatch(r.body, -1) {
			got = append(got, m[1]+" "+rfc3339(m[2])+" "+rfc3339(m[3]))
		}
		// The oracle is asked once per UID of the feed (the feed's
		// VTIMEZONEs with that UID's VEVENTs): given all events at once,
		// busy.mjs lets an override of one UID drop an instance of
		// another, which RFC 5545 never does.
		var ps []freebusy.Period
		for _, one := range perUID(feed) {
			a := busy.Ask(t, oracle.Request{ICS: one, Start: w[0], End: w[1], TZ: "UTC", Owner: "mailto:alice@example.org", Mode: "rfc", MaxInstances: 100000})
			if a.Error != "" {
				t.Fatalf("oracle: %s", a.Error)
			}
			for _, p := range a.Periods {
				start, _ := time.Parse(time.RFC3339, p.Start)
				end, _ := time.Parse(time.RFC3339, p.End)
				ps = append(ps, freebusy.Period{Start: start, End: end, Type: freebusy.Type(p.Type)})
			}
		}
		var want []string
		for _, p := range freebusy.Merge(ps) {
			want = append(want, fmt.Sprintf("%s %s %s", p.Type, p.Start.Format(time.RFC3339), p.End.Format(time.RFC3339)))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("window %s: fbpub and ical.js differ on the served feed\nfbpub:\n  %s\nical.js:\n  %s", w[0], strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

// rfc3339 turns 20250303T090000Z into 2025-03-03T09:00:00Z.
func rfc3339(s string) string {
	return s[0:4] + "-" + s[4:6] + "-" + s[6:8] + "T" + s[9:11] + ":" + s[11:13] + ":" + s[13:15] + "Z"
}

// perUID splits a feed into one VCALENDAR per UID, each with the feed's
// VTIMEZONEs.
func perUID(feed string) []string {
	unfolded := strings.ReplaceAll(feed, "\r\n ", "")
	head, rest, _ := strings.Cut(unfolded, "BEGIN:VEVENT\r\n")
	rest = strings.TrimSuffix("BEGIN:VEVENT\r\n"+rest, "END:VCALENDAR\r\n")
	groups := map[string]string{}
	var order []string
	for _, ev := range strings.SplitAfter(rest, "END:VEVENT\r\n") {
		if ev == "" {
			continue
		}
		uid := regexp.MustCompile(`(?m)^UID:(.*)\r$`).FindStringSubmatch(ev)[1]
		if _, ok := groups[uid]; !ok {
			order = append(order, uid)
		}
		groups[uid] += ev
	}
	var out []string
	for _, uid := range order {
		out = append(out, head+groups[uid]+"END:VCALENDAR\r\n")
	}
	return out
}

// TestExtendedFreeBusy: the .xfb view lists every busy occurrence on its
// own line; merged, they are exactly the .vfb periods; its annotations
// decode to the events' summaries for the owner; and it parses in ical.js
// and Python's icalendar like any VFREEBUSY.
func TestExtendedFreeBusy(t *testing.T) {
	s := setup(t, time.Second)
	s.srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("b", ics("a2", "Budget, Q2 & more", "20250303T093000Z", "20250303T110000Z")))
	vfb := s.do(t, "GET", "/freebusy/alice.vfb", asAlice...)
	xfb := s.do(t, "GET", "/freebusy/alice.xfb", asAlice...)
	if vfb.code != 200 || xfb.code != 200 {
		t.Fatalf("vfb %d, xfb %d", vfb.code, xfb.code)
	}
	line := regexp.MustCompile(`(?m)^FREEBUSY;FBTYPE=([A-Z-]+)[^:]*:(\d{8}T\d{6}Z)/(\d{8}T\d{6}Z)\r$`)
	periods := func(body string) []freebusy.Period {
		var ps []freebusy.Period
		for _, m := range line.FindAllStringSubmatch(strings.ReplaceAll(body, "\r\n ", ""), -1) {
			start, _ := time.Parse("20060102T150405Z", m[2])
			end, _ := time.Parse("20060102T150405Z", m[3])
			ps = append(ps, freebusy.Period{Start: start, End: end, Type: freebusy.Type(m[1])})
		}
		return ps
	}
	x, v := periods(xfb.body), periods(vfb.body)
	if len(x) <= len(v) {
		t.Errorf("the .xfb has %d lines, the .vfb %d: occurrences should stay apart", len(x), len(v))
	}
	if fmt.Sprint(freebusy.Merge(x)) != fmt.Sprint(v) {
		t.Errorf("merged .xfb periods differ from the .vfb:\n%v\n%v", freebusy.Merge(x), v)
	}
	summaries := map[string]bool{}
	for _, m := range regexp.MustCompile(`X-SUMMARY=([A-Za-z0-9+/=]+)`).FindAllStringSubmatch(strings.ReplaceAll(xfb.body, "\r\n ", ""), -1) {
		b, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Errorf("X-SUMMARY %q is not base64", m[1])
		}
		summaries[string(b)] = true
	}
	for _, want := range []string{"Planning", "Budget, Q2 & more", "Review", "Réunion"} {
		if !summaries[want] {
			t.Errorf("the owner's .xfb does not name %q: %v", want, summaries)
		}
	}
	if _, err := oracle.ParseICalJS(t, xfb.body); err != nil {
		t.Errorf("ical.js: %v", err)
	}
	if _, err := oracle.ParsePython(t, xfb.body); err != nil {
		t.Errorf("python icalendar: %v", err)
	}
	// Anonymous: the same times, no annotations.
	anon := s.do(t, "GET", "/freebusy/alice.xfb")
	if strings.Contains(anon.body, "X-SUMMARY") || strings.Contains(anon.body, "X-UID") || fmt.Sprint(periods(anon.body)) != fmt.Sprint(x) {
		t.Errorf("anonymous .xfb:\n%s", anon.body)
	}
}

// TestHostileValuesInClients: a value that strict parsers refuse for the
// whole calendar (a rule part out of range, a FREEBUSY that is no
// period), stored by anyone who may add to a folder, does not break the
// feed: for the owner, a reader and a free/busy-only requester it parses
// in ical.js and Python's icalendar and holds every event, the bad
// property left out. Free/busy counts such an event at its start only,
// as the clients do.
func TestHostileValuesInClients(t *testing.T) {
	s := setup(t, 0)
	s.srv.CreateFolder(t, "alice", "Calendar/Odd")
	s.srv.SetACL(t, "alice", "Calendar/Odd", testbed.Proxy, "lr")
	s.srv.SetACL(t, "alice", "Calendar/Odd", "bob", "lr")
	bad := []string{
		"RRULE:FREQ=YEARLY;BYMONTH=13;COUNT=2", "RRULE:FREQ=WEEKLY;BYDAY=+0MO", "RRULE:FREQ=DAILY;BYDAY=++1MO",
		"RRULE:FREQ=FOO", "RRULE:FREQ=DAILY;BYHOUR=99", "EXRULE:FREQ=DAILY;BYMONTHDAY=0", "FREEBUSY:garbage",
		"X-FOO;VALUE=RECUR:FREQ=BAD", "X-FOO;VALUE=PERIOD:bad",
	}
	for i, line := range append(bad, "RRULE:freq=daily;count=2") {
		s.srv.Append(t, "alice", "Calendar/Odd", testbed.CalendarMessage("odd", fmt.Sprintf(
			"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//odd//EN\r\nBEGIN:VEVENT\r\nUID:odd%d\r\nDTSTAMP:20250101T000000Z\r\n"+
				"DTSTART:202503%02dT100000Z\r\nDTEND:202503%02dT110000Z\r\nSUMMARY:Odd %d\r\n%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
			i, 3+i, 3+i, i, line)))
	}
	// A zone whose offset is 25 hours (Python's icalendar refuses the
	// whole calendar for it), and an event holding a thousand nested
	// components, an alarm among them (Python recurses once per level).
	s.srv.Append(t, "alice", "Calendar/Odd", testbed.CalendarMessage("zone", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"+
		"BEGIN:VTIMEZONE\r\nTZID:Far Away\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+2500\r\nTZOFFSETTO:+2500\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"+
		"BEGIN:VEVENT\r\nUID:far\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;TZID=Far Away:20250320T100000\r\nDTEND;TZID=Far Away:20250320T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	nested := strings.Repeat("BEGIN:X-N\r\n", 1000) + "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Nested alarm\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n" + strings.Repeat("END:X-N\r\n", 1000)
	s.srv.Append(t, "alice", "Calendar/Odd", testbed.CalendarMessage("deep", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"+
		"BEGIN:VEVENT\r\nUID:deep\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250321T100000Z\r\nDTEND:20250321T110000Z\r\nBEGIN:X-A\r\n"+
		"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Hidden alarm\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:X-A\r\n"+nested+"END:VEVENT\r\nEND:VCALENDAR\r\n"))
	bad = append(bad, "far", "deep") // two more events
	for _, who := range []struct {
		name string
		hdr  []string
	}{{"owner", asAlice}, {"reader", basicAs("bob")}, {"free/busy only", nil}} {
		r := s.do(t, "GET", "/calendar/alice/Calendar/Odd.ics", who.hdr...)
		if r.code != 200 {
			t.Fatalf("%s: feed %d %s", who.name, r.code, r.body)
		}
		if n := strings.Count(r.body, "BEGIN:VEVENT"); n != len(bad)+1 {
			t.Errorf("%s: %d events in the feed, want %d", who.name, n, len(bad)+1)
		}
		if n, err := oracle.ParseICalJS(t, r.body); err != nil || n != len(bad)+1 {
			t.Errorf("%s: ical.js: %d events, %v", who.name, n, err)
		}
		if n, err := oracle.ParsePython(t, r.body); err != nil || n != len(bad)+1 {
			t.Errorf("%s: python icalendar: %d events, %v", who.name, n, err)
		}
		for _, gone := range []string{"BYMONTH=13", "+0MO", "++1MO", "FREQ=FOO", "BYHOUR=99", "EXRULE", "garbage", "FREQ=BAD", "X-FOO", "+2500", "VALARM"} {
			if strings.Contains(r.body, gone) {
				t.Errorf("%s: the feed still holds %q", who.name, gone)
			}
		}
		if who.name != "free/busy only" && !strings.Contains(r.body, "RRULE:FREQ=DAILY;COUNT=2\r\n") {
			t.Errorf("%s: the lower-case rule is not in the feed as FREQ=DAILY;COUNT=2:\n%s", who.name, r.body)
		}
	}
	// One period per event, two for the daily rule with COUNT=2: none of
	// the refused rules is expanded (BYDAY=+0MO was every Monday).
	r := s.do(t, "GET", "/freebusy/user/alice/Calendar/Odd?start=20250301T000000Z&end=20250401T000000Z", asAlice...)
	if n := strings.Count(r.body, "FREEBUSY;"); r.code != 200 || n != len(bad)+2 {
		t.Errorf("free/busy: %d periods, want %d:\n%s", n, len(bad)+2, r.body)
	}
}
