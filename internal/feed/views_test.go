package feed

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/testbed"
)

// TestSplitOverrides: the class of an event is its UID's, wherever the
// series and its overrides are stored. On both servers, alice's folder
// holds series and overrides in messages of their own (as one-instance
// invitations, Kolab clients and uploads store them); bob reads the
// folder, and neither the feeds nor the extended free/busy nor the
// trigger shows him what the class of the series keeps from him — while
// what a public series lets him read still shows.
func TestSplitOverrides(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { splitOverridesOn(t, srv) })
	}
}

// splitEvents are the messages of TestSplitOverrides, and what bob may
// read of them.
func splitEvents(day string) (msgs map[string][]string, secrets, visible []string) {
	cal := func(body string) string {
		return strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub tests//EN\n"+body+"END:VCALENDAR\n", "\n", "\r\n")
	}
	zone := `BEGIN:VTIMEZONE
TZID:Alice Home (Larkspur Lane)
X-LIC-LOCATION:Larkspur/Lane
X-ALICE-NOTE:keyunderthemat
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:Larkspurwinter
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:Larkspursummer
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
`
	msgs = map[string][]string{
		"Calendar": {
			// A private series, and its moved instance in a message of
			// its own without CLASS, in alice's custom zone with
			// secrets in parameters.
			cal(`BEGIN:VEVENT
UID:split-therapy
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T060000Z
DTEND:` + day + `T070000Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Couples therapy
CLASS:PRIVATE
END:VEVENT
`),
			cal(zone + `BEGIN:VEVENT
UID:split-therapy
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T060000Z
DTSTART;TZID=Alice Home (Larkspur Lane);X-NOTE=bring the papers:` + day + `T100000
DTEND;TZID=Alice Home (Larkspur Lane):` + day + `T110000
STATUS;X-WHY=custody talk:CONFIRMED
SUMMARY:Therapy moved to Thursday
LOCATION:Marriage counsellor
END:VEVENT
`),
			// An override whose series is stored nowhere fbpub reads.
			cal(`BEGIN:VEVENT
UID:split-orphan
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T120000Z
DTSTART:` + day + `T120000Z
DTEND:` + day + `T123000Z
SUMMARY:Orphaned interview
END:VEVENT
`),
			// A public series, its moved instance apart: readable.
			cal(`BEGIN:VEVENT
UID:split-standup
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T080000Z
DTEND:` + day + `T081500Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Team standup
END:VEVENT
`),
			cal(`BEGIN:VTIMEZONE
TZID:Office Zone
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:Officetime
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:split-standup
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T080000Z
DTSTART;TZID=Office Zone:` + day + `T093000
DTEND;TZID=Office Zone:` + day + `T094500
SUMMARY:Standup moved later
END:VEVENT
`),
			// A public series made private from one instance on, by a
			// THISANDFUTURE override in another message.
			cal(`BEGIN:VEVENT
UID:split-future
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T140000Z
DTEND:` + day + `T150000Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Job hunting
END:VEVENT
`),
			cal(`BEGIN:VEVENT
UID:split-future
DTSTAMP:20250101T000000Z
RECURRENCE-ID;RANGE=THISANDFUTURE:` + day + `T140000Z
DTSTART:` + day + `T143000Z
DTEND:` + day + `T153000Z
SUMMARY:Job interviews
CLASS:PRIVATE
END:VEVENT
`),
		},
		// A private series in another folder of alice's; its override in
		// Calendar.
		"Calendar/Private": {cal(`BEGIN:VEVENT
UID:split-across
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T160000Z
DTEND:` + day + `T170000Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Oncology
CLASS:PRIVATE
END:VEVENT
`)},
	}
	msgs["Calendar"] = append(msgs["Calendar"], cal(`BEGIN:VEVENT
UID:split-across
DTSTAMP:20250101T000000Z
RECURRENCE-ID:`+day+`T160000Z
DTSTART:`+day+`T180000Z
DTEND:`+day+`T190000Z
SUMMARY:Oncology follow-up
END:VEVENT
`))
	secrets = []string{"Couples therapy", "Therapy moved", "Marriage counsellor", "bring the papers", "custody talk",
		"Larkspur", "keyunderthemat", "split-therapy", "Orphaned interview", "split-orphan",
		"Job hunting", "Job interviews", "split-future", "Oncology", "split-across"}
	visible = []string{"Team standup", "Standup moved later", "split-standup"}
	return msgs, secrets, visible
}

var xfbParam = regexp.MustCompile(`X-(?:UID|SUMMARY|LOCATION)=([A-Za-z0-9+/=]+)`)

// decoded is body with its lines unfolded and the base64 annotations of
// the extended free/busy view decoded after it.
func decoded(body string) string {
	body = strings.ReplaceAll(body, "\r\n ", "")
	out := body
	for _, m := range xfbParam.FindAllStringSubmatch(body, -1) {
		if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			out += "\n" + string(b)
		}
	}
	return out
}

func splitOverridesOn(t *testing.T, srv *testbed.Server) {
	f := newFixtureOn(t, srv, 0)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	msgs, secrets, visible := splitEvents(day)
	for _, folder := range []string{"Calendar", "Calendar/Private"} {
		srv.CreateFolder(t, "alice", folder)
		srv.SetACL(t, "alice", folder, testbed.Proxy, "lra")
		for _, m := range msgs[folder] {
			srv.Append(t, "alice", folder, testbed.CalendarMessage("event", m))
		}
	}
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	ctx := context.Background()
	win := freebusy.Window{Start: time.Now().UTC().AddDate(0, 0, -1), End: time.Now().UTC().AddDate(0, 0, 10)}
	views := map[string]func(viewer string) (string, error){
		"Calendar.ics": func(v string) (string, error) {
			a, err := f.cache.Calendar(ctx, CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: v}})
			if err != nil {
				return "", err
			}
			return string(a.Body), nil
		},
		"alice.ics": func(v string) (string, error) {
			a, err := f.cache.Calendar(ctx, CalendarQuery{Owner: "alice", Viewer: acl.Requester{User: v}})
			if err != nil {
				return "", err
			}
			return string(a.Body), nil
		},
		"alice.xfb": func(v string) (string, error) {
			a, err := f.cache.FreeBusy(ctx, FreeBusyQuery{Owner: "alice", Window: win, Extended: true, Viewer: acl.Requester{User: v}})
			if err != nil {
				return "", err
			}
			return string(a.Body), nil
		},
		"Calendar.pxfb": func(v string) (string, error) {
			a, err := f.cache.FreeBusy(ctx, FreeBusyQuery{Owner: "alice", Folder: []string{"Calendar"}, Window: win, Extended: true, Viewer: acl.Requester{User: v}})
			if err != nil {
				return "", err
			}
			return string(a.Body), nil
		},
	}
	for name, view := range views {
		body, err := view("bob")
		if err != nil {
			t.Fatalf("bob's %s: %v", name, err)
		}
		text := decoded(body)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("bob's %s shows %q:\n%s", name, s, text)
			}
		}
		for _, s := range visible {
			if strings.Contains(name, ".ics") && !strings.Contains(text, s) {
				t.Errorf("bob's %s lacks %q, which a public series lets him read:\n%s", name, s, text)
			}
		}
		if strings.Contains(name, ".xfb") && !strings.Contains(text, "Standup moved later") {
			t.Errorf("bob's %s lacks the moved standup:\n%s", name, text)
		}
		// The moved instances still take their time.
		for _, busy := range []string{day + "T100000", day + "T180000"} {
			if strings.Contains(name, ".ics") && !strings.Contains(text, busy) {
				t.Errorf("bob's %s lacks the moved instance at %s:\n%s", name, busy, text)
			}
		}
		if owner, err := view("alice"); err != nil || !strings.Contains(decoded(owner), "Couples therapy") {
			t.Errorf("alice's %s: %v, lacks her own events:\n%s", name, err, owner)
		}
	}
	// The reduced override refers to its zone by a neutral name, and that
	// zone is in the feed, reduced to its rules.
	body, _ := views["Calendar.ics"]("bob")
	body = strings.ReplaceAll(body, "\r\n ", "")
	m := regexp.MustCompile(`DTSTART;TZID=(fbpub-tz-[0-9a-f]+):` + day + `T100000`).FindStringSubmatch(body)
	if m == nil || !strings.Contains(body, "BEGIN:VTIMEZONE\r\nTZID:"+m[1]+"\r\n") || !strings.Contains(body, "TZOFFSETTO:+0200") {
		t.Errorf("bob's feed does not refer to the reduced zone by one neutral name:\n%s", body)
	}
	// A reader sees the public override whole, in its own zone, which is
	// reduced all the same. The zone's name is its own with a hash of its
	// rules (feed.zoneRenames): no database knows it.
	o := regexp.MustCompile(`DTSTART;TZID=(Office Zone \([0-9a-f]{8}\)):` + day + `T093000`).FindStringSubmatch(body)
	if o == nil || !strings.Contains(body, "BEGIN:VTIMEZONE\r\nTZID:"+o[1]+"\r\n") || strings.Contains(body, "Officetime") {
		t.Errorf("bob's feed does not show the public override in its reduced zone:\n%s", body)
	}
	owner, _ := views["Calendar.ics"]("alice")
	if !strings.Contains(owner, "TZNAME:Larkspurwinter") || !strings.Contains(owner, "TZNAME:Officetime") {
		t.Errorf("alice's feed lost her zone:\n%s", owner)
	}
	// The orphan's public series arrives: from the next answer on, the
	// override is as public as its series.
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("event", strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:split-orphan
DTSTAMP:20250101T000000Z
DTSTART:`+day+`T120000Z
DTEND:`+day+`T123000Z
RRULE:FREQ=DAILY;COUNT=2
SUMMARY:Interview series
CLASS:PUBLIC
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n")))
	for _, name := range []string{"Calendar.ics", "Calendar.pxfb"} {
		body, err := views[name]("bob")
		if err != nil || !strings.Contains(decoded(body), "Orphaned interview") {
			t.Errorf("bob's %s after the series arrived: %v, lacks the override:\n%s", name, err, body)
		}
	}
}
