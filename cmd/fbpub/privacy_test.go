package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// privacyServers are the IMAP servers the privacy matrix runs against.
func privacyServers(t *testing.T) []*testbed.Server { return testbed.Servers(t) }

// The events of the privacy matrix. Each names the texts that identify it:
// its summary, location, description, attendee and UID.
type secretEvent struct {
	folder string
	ics    string
	texts  []string
}

func privacyEvents(day string) []secretEvent {
	ev := func(body string) string {
		return crlf("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub tests//EN\n" + body + "END:VCALENDAR\n")
	}
	return []secretEvent{
		{"Calendar", ev(`BEGIN:VEVENT
UID:pub-standup-1
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T080000Z
DTEND:` + day + `T083000Z
SUMMARY:Public standup
LOCATION:Room One
ATTENDEE:mailto:standup-guest@example.org
END:VEVENT
`), []string{"Public standup", "Room One", "standup-guest@", "pub-standup-1"}},
		{"Calendar", ev(`BEGIN:VEVENT
UID:conf-salary-2
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T090000Z
DTEND:` + day + `T100000Z
SUMMARY:Salary review
LOCATION:HR office
DESCRIPTION:Raise for Zed
CLASS:CONFIDENTIAL
END:VEVENT
`), []string{"Salary review", "HR office", "Raise for Zed", "conf-salary-2"}},
		{"Calendar", ev(`BEGIN:VEVENT
UID:priv-doctor-3
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T110000Z
DTEND:` + day + `T120000Z
SUMMARY:Doctor appointment
DESCRIPTION:Dr. Quinn
ATTENDEE:mailto:quinn@clinic.example
CLASS:PRIVATE
END:VEVENT
`), []string{"Doctor appointment", "Dr. Quinn", "quinn@clinic", "priv-doctor-3"}},
		// A public series with a private override: the override must not
		// leak through the series.
		{"Calendar", ev(`BEGIN:VEVENT
UID:series-sync-4
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T130000Z
DTEND:` + day + `T133000Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Weekly sync
END:VEVENT
BEGIN:VEVENT
UID:series-sync-4
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T130000Z
DTSTART:` + day + `T150000Z
DTEND:` + day + `T153000Z
SUMMARY:Sync moved secretly
LOCATION:Garage
ATTENDEE:mailto:garage-guest@example.org
CLASS:PRIVATE
END:VEVENT
`), []string{"Sync moved secretly", "Garage", "garage-guest@"}},
		// A private series whose override does not repeat CLASS.
		{"Calendar", ev(`BEGIN:VEVENT
UID:priv-therapy-5
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T160000Z
DTEND:` + day + `T170000Z
RRULE:FREQ=DAILY;COUNT=2
SUMMARY:Therapy
CLASS:PRIVATE
END:VEVENT
BEGIN:VEVENT
UID:priv-therapy-5
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T160000Z
DTSTART:` + day + `T180000Z
DTEND:` + day + `T190000Z
SUMMARY:Therapy rescheduled
LOCATION:Clinic
END:VEVENT
`), []string{"Therapy", "Clinic", "priv-therapy-5"}},
		// In a folder whose ACL the proxy cannot read.
		{"Calendar/Secret", ev(`BEGIN:VEVENT
UID:secret-lab-6
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T200000Z
DTEND:` + day + `T210000Z
SUMMARY:Secret project
LOCATION:Lab
END:VEVENT
`), []string{"Secret project", "Lab", "secret-lab-6"}},
		// A private series whose moved instance is stored in a message
		// of its own, without CLASS (a one-instance invitation, a Kolab
		// client, an upload).
		{"Calendar", ev(`BEGIN:VEVENT
UID:split-series-7
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T050000Z
DTEND:` + day + `T053000Z
RRULE:FREQ=DAILY;COUNT=2
SUMMARY:Parole hearing
LOCATION:County court
CLASS:PRIVATE
END:VEVENT
`), []string{"Parole hearing", "County court", "split-series-7"}},
		// Its override, in a custom time zone, with secrets in
		// X-parameters of kept properties and in the zone.
		{"Calendar", ev(`BEGIN:VTIMEZONE
TZID:Hideout Zone
X-LIC-LOCATION:Hideout/Cabin
X-HIDEOUT-NOTE:spare key under the rock
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:Hideoutwinter
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:Hideoutsummer
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:split-series-7
DTSTAMP:20250101T000000Z
RECURRENCE-ID:` + day + `T050000Z
DTSTART;TZID=Hideout Zone;X-NOTE=ask for Warden Nygaard:` + day + `T063000
DTEND;TZID=Hideout Zone:` + day + `T070000
STATUS;X-REASON=bail conditions:CONFIRMED
SUMMARY:Parole hearing moved
ATTENDEE;CN=Officer Brandt:mailto:brandt@probation.example
END:VEVENT
`), []string{"Parole hearing moved", "Hideout", "spare key", "Warden Nygaard", "bail conditions", "Officer Brandt", "brandt@probation", "split-series-7"}},
		// A confidential event whose kept properties carry secrets in
		// X-parameters, in a VTIMEZONE that carries some of its own.
		{"Calendar", ev(`BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-LIC-LOCATION:Restructuring plan
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:Severancetime
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:conf-layoffs-9
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/Berlin;X-MEMO=Quarterly layoffs list:` + day + `T043000
DTEND;TZID=Europe/Berlin:` + day + `T050000
STATUS;X-MEMO=severance budget:TENTATIVE
TRANSP;X-MEMO=Restructuring:OPAQUE
SUMMARY:Layoff planning
CLASS:CONFIDENTIAL
X-MICROSOFT-CDO-BUSYSTATUS;X-MEMO=Reorg:BUSY
END:VEVENT
`), []string{"Layoff planning", "layoffs", "severance", "Severance", "Restructuring", "Reorg", "conf-layoffs-9"}},
	}
}

// xParam finds Kolab's base64 X-UID, X-SUMMARY and X-LOCATION values.
var xParam = regexp.MustCompile(`X-(?:UID|SUMMARY|LOCATION)=([A-Za-z0-9+/=]+)`)

// readable is what a reader of body learns: the bytes, plus the decoded
// extended free/busy annotations.
func readable(body string) string {
	out := body
	for _, m := range xParam.FindAllStringSubmatch(strings.ReplaceAll(body, "\r\n ", ""), -1) {
		if b, err := base64.StdEncoding.DecodeString(m[1]); err == nil {
			out += "\n" + string(b)
		}
	}
	return out
}

func get(t *testing.T, url, user string) (int, string) {
	t.Helper()
	code, _, body := request(t, "GET", url, user, "")
	return code, body
}

// TestPrivacyMatrix fetches every view of alice's calendars over HTTP as
// the owner, a reader, requesters with free/busy only (one of them in a
// negatively granted group), and anonymously, from the real binary, and
// checks that no text of an event the requester may not read appears
// anywhere in the bytes — and that what they may read does.
func TestPrivacyMatrix(t *testing.T) {
	bin := buildBinary(t)
	for _, srv := range privacyServers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { privacyMatrix(t, bin, srv) })
	}
}

func privacyMatrix(t *testing.T, bin string, srv *testbed.Server) {
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 3).Format("20060102")
	events := privacyEvents(day)
	for _, f := range []string{"Calendar", "Calendar/Secret"} {
		srv.CreateFolder(t, "alice", f)
	}
	for _, e := range events {
		srv.Append(t, "alice", e.folder, testbed.CalendarMessage("event", e.ics))
	}
	// Calendar: the proxy may read the ACL ("a"); bob reads; carol only
	// looks up; dave reads as a user but his group is denied "r".
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	srv.SetACL(t, "alice", "Calendar", "carol", "l")
	srv.SetACL(t, "alice", "Calendar", "dave", "lr")
	srv.SetACL(t, "alice", "Calendar", "-"+srv.GroupIdentifier(), "r")
	// Calendar/Secret: the proxy cannot read the ACL; the configuration
	// names carol as alice's reader.
	srv.SetACL(t, "alice", "Calendar/Secret", testbed.Proxy, "lr")
	srv.SetACL(t, "alice", "Calendar/Secret", "bob", "lr") // invisible to fbpub: not honoured

	run := func(t *testing.T, visibility string) string {
		cfg := filepath.Join(t.TempDir(), "fbpub.toml")
		err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[imap]
addr = %q
tls = "none"
user = %q
password = %q
[publish]
mail_domain = "example.org"
check_interval = "0s"
[access]
freebusy = %q
groups = { %s = ["dave"] }
readers = { alice = ["carol"] }
`, srv.Addr, testbed.Proxy, testbed.Password(testbed.Proxy), visibility, testbed.Group)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		base, _ := startBinaryArgs(t, bin, []string{"--config", cfg})
		return base
	}

	// What each requester may read, by event index (the rest must not
	// show); nil means anonymous.
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
	readers := []struct {
		user  string
		reads []int
	}{
		{"alice", all},
		{"bob", []int{0}},   // reader of Calendar: not the confidential, private or Secret ones
		{"carol", []int{5}}, // free/busy on Calendar, configured reader of Secret
		{"dave", nil},       // "-$team r" takes the read right away
		{"", nil},           // anonymous
		// Other spellings of logins, which both servers fold: never
		// more than the login they stand for.
		{"ALICE", all},
		{"BOB", []int{0}},
		{"Carol", []int{5}},
		{"Dave", nil},
	}
	views := []string{
		"/freebusy/alice.vfb", "/freebusy/alice.xfb", "/freebusy/alice@example.org.ifb",
		"/freebusy/user/alice", "/freebusy/user/alice/Calendar",
		"/calendar/alice.ics", "/calendar/alice/Calendar.ics", "/calendar/alice/Calendar/Secret.ics",
		"/freebusy/trigger/alice/Calendar.pxfb",
	}

	t.Run("public", func(t *testing.T) {
		base := run(t, "public")
		for _, rd := range readers {
			who := rd.user
			if who == "" {
				who = "anonymous"
			}
			may := map[int]bool{}
			for _, i := range rd.reads {
				may[i] = true
			}
			for _, v := range views {
				code, body := get(t, base+v, rd.user)
				if code != 200 {
					t.Errorf("%s GET %s = %d %s", who, v, code, body)
					continue
				}
				text := readable(body)
				for i, e := range events {
					if may[i] {
						continue
					}
					for _, s := range e.texts {
						if strings.Contains(text, s) {
							t.Errorf("%s GET %s shows %q of event %d:\n%s", who, v, s, i, text)
						}
					}
				}
				busy := day + "T080000Z" // the standup
				if strings.HasSuffix(v, "Secret.ics") {
					busy = day + "T200000Z" // the secret project
				}
				if !strings.Contains(body, busy) {
					t.Errorf("%s GET %s lacks the busy time %s:\n%s", who, v, busy, body)
				}
			}
		}
		// What readers do see, where they may.
		sees := func(user, view string, want ...string) {
			t.Helper()
			_, body := get(t, base+view, user)
			text := readable(body)
			for _, w := range want {
				if !strings.Contains(text, w) {
					t.Errorf("%s GET %s lacks %q:\n%s", user, view, w, text)
				}
			}
		}
		sees("alice", "/calendar/alice.ics", "Public standup", "Salary review", "Doctor appointment", "Sync moved secretly", "Therapy rescheduled", "Secret project")
		sees("alice", "/freebusy/alice.xfb", "Public standup", "Doctor appointment", "Secret project", "Garage")
		sees("bob", "/calendar/alice/Calendar.ics", "Public standup", "Room One", "standup-guest@", "Weekly sync",
			"SUMMARY:Busy\r\n", "CLASS:CONFIDENTIAL", "CLASS:PRIVATE", "RECURRENCE-ID:"+day+"T130000Z", "DTSTART:"+day+"T150000Z")
		sees("bob", "/freebusy/alice.xfb", "Public standup", "Room One", "Weekly sync")
		sees("carol", "/calendar/alice/Calendar/Secret.ics", "Secret project", "Lab")
		sees("dave", "/calendar/alice/Calendar.ics", "SUMMARY:Busy", "DTSTART:"+day+"T090000Z")
	})

	// Split overrides and leaks through parameters and time zones (events
	// 6 to 8): readers see the override stored apart from its private
	// series reduced, by a neutral zone name whose VTIMEZONE holds only
	// rules; the owner sees all of it as stored.
	t.Run("split", func(t *testing.T) {
		base := run(t, "public")
		_, body := get(t, base+"/calendar/alice/Calendar.ics", "bob")
		body = strings.ReplaceAll(body, "\r\n ", "")
		m := regexp.MustCompile(`(?m)^DTSTART;TZID=(fbpub-tz-[0-9a-f]+):` + day + `T063000\r$`).FindStringSubmatch(body)
		switch {
		case m == nil:
			t.Errorf("bob's feed lacks the moved instance under a neutral zone name:\n%s", body)
		case !strings.Contains(body, "BEGIN:VTIMEZONE\r\nTZID:"+m[1]+"\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"):
			t.Errorf("bob's feed lacks the reduced zone %s:\n%s", m[1], body)
		}
		for _, want := range []string{"DTSTART;TZID=Europe/Berlin:" + day + "T043000", "STATUS:TENTATIVE", "X-MICROSOFT-CDO-BUSYSTATUS:BUSY"} {
			if !strings.Contains(body, want) {
				t.Errorf("bob's feed lacks %q of the confidential event:\n%s", want, body)
			}
		}
		for _, user := range []string{"dave", ""} {
			_, body := get(t, base+"/calendar/alice.ics", user)
			if !strings.Contains(strings.ReplaceAll(body, "\r\n ", ""), "T063000") {
				t.Errorf("%q's busy view lacks the moved instance:\n%s", user, body)
			}
		}
		_, body = get(t, base+"/calendar/alice/Calendar.ics", "alice")
		for _, want := range []string{"TZNAME:Hideoutwinter", "X-NOTE=ask for Warden Nygaard", "SUMMARY:Parole hearing moved", "X-MEMO=Reorg"} {
			if !strings.Contains(strings.ReplaceAll(body, "\r\n ", ""), want) {
				t.Errorf("alice's feed lacks %q:\n%s", want, body)
			}
		}
	})

	t.Run("acl", func(t *testing.T) {
		base := run(t, "acl")
		for _, c := range []struct {
			user, view string
			code       int
		}{
			{"", "/freebusy/alice.vfb", 401},
			{"", "/freebusy/nosuchuser.vfb", 401},
			{"", "/calendar/alice.ics", 401},
			{"bob", "/calendar/alice/Calendar/Secret.ics", 404}, // no right fbpub can see
			{"bob", "/calendar/alice/Calendar.ics", 200},
			{"dave", "/calendar/alice/Calendar.ics", 200}, // "l" is left: free/busy
			{"dave", "/calendar/alice/Calendar/Secret.ics", 404},
			{"carol", "/calendar/alice/Calendar/Secret.ics", 200},
			{"alice", "/calendar/alice/Calendar/Secret.ics", 200},
		} {
			code, body := get(t, base+c.view, c.user)
			if code != c.code {
				t.Errorf("%q GET %s = %d, want %d: %s", c.user, c.view, code, c.code, body)
			}
		}
		// bob's view of all of alice's calendars leaves Secret out.
		_, body := get(t, base+"/calendar/alice.ics", "bob")
		for _, s := range events[5].texts {
			if strings.Contains(body, s) {
				t.Errorf("bob sees %q of a folder he may not see:\n%s", s, body)
			}
		}
		_, body = get(t, base+"/freebusy/alice.vfb", "bob")
		if strings.Contains(body, day+"T200000Z") {
			t.Errorf("bob's free/busy counts a folder he may not see:\n%s", body)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		base := run(t, "public")
		if _, body := get(t, base+"/calendar/alice.ics", "alice"); !strings.Contains(body, "Secret project") {
			t.Fatalf("the owner does not see Secret before the revocation:\n%s", body)
		}
		srv.SetACL(t, "alice", "Calendar/Secret", testbed.Proxy, "")
		for _, v := range views {
			code, body := get(t, base+v, "alice")
			if strings.HasSuffix(v, "Secret.ics") {
				if code != 404 {
					t.Errorf("GET %s after revocation = %d, want 404", v, code)
				}
				continue
			}
			if strings.Contains(readable(body), "Secret project") || strings.Contains(body, day+"T200000Z") {
				t.Errorf("GET %s after revocation still shows the folder:\n%s", v, body)
			}
		}
	})
	t.Run("identities", func(t *testing.T) { privacyIdentities(t, bin, srv) })
}
