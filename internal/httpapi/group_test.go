package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// teamWeek is the known week of the team tests (7 to 12 March 2025):
// alice works 09-17 in Berlin (the site's hours) and has a tentative
// meeting on Tuesday; carol works 09-17 in New York, whose clocks move
// forward on Sunday 9 March, and has a meeting on Monday; dave keeps a
// VAVAILABILITY with a lunch break (09-13 and 14-18 London time on
// weekdays). bob publishes a calendar that dave may not see.
var teamWeek = map[string]string{
	"alice": `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:alice-tentative
DTSTAMP:20250101T000000Z
DTSTART:20250311T140000Z
DTEND:20250311T150000Z
STATUS:TENTATIVE
SUMMARY:Maybe
END:VEVENT
END:VCALENDAR
`,
	"carol": `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:carol-meeting
DTSTAMP:20250101T000000Z
DTSTART;TZID=America/New_York:20250310T110000
DTEND;TZID=America/New_York:20250310T113000
SUMMARY:Standup
END:VEVENT
END:VCALENDAR
`,
	"dave": `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VAVAILABILITY
UID:dave-hours
DTSTAMP:20250101T000000Z
BEGIN:AVAILABLE
UID:dave-morning
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/London:20250106T090000
DTEND;TZID=Europe/London:20250106T130000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
BEGIN:AVAILABLE
UID:dave-afternoon
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/London:20250106T140000
DTEND;TZID=Europe/London:20250106T180000
RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR
END:AVAILABLE
END:VAVAILABILITY
END:VCALENDAR
`,
	"bob": `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:bob-secret
DTSTAMP:20250101T000000Z
DTSTART:20250310T120000Z
DTEND:20250310T130000Z
SUMMARY:Secret
END:VEVENT
END:VCALENDAR
`,
}

var teamZones = map[string]string{"alice": "Europe/Berlin", "bob": "UTC", "carol": "America/New_York", "dave": "Europe/London"}

// setupTeam seeds the known week on srv, with free/busy visible by ACL
// (access.freebusy = "acl"): the proxy holds "lra" on every calendar, so
// fbpub reads the ACLs; dave may see alice's and carol's, not bob's.
func setupTeam(t *testing.T, srv *testbed.Server, team Team) *server {
	t.Helper()
	return setupTeamPolicy(t, srv, team, &acl.Policy{FreeBusy: acl.ByACL})
}

// setupTeamPolicy is setupTeam under another access policy.
func setupTeamPolicy(t *testing.T, srv *testbed.Server, team Team, policy *acl.Policy) *server {
	t.Helper()
	srv.Reset(t)
	for _, owner := range []string{"alice", "bob", "carol", "dave"} {
		srv.CreateFolder(t, owner, "Calendar")
		srv.SetACL(t, owner, "Calendar", testbed.Proxy, "lra")
		srv.Append(t, owner, "Calendar", testbed.CalendarMessage(owner, teamWeek[owner]))
	}
	srv.SetACL(t, "alice", "Calendar", "dave", "lr")
	srv.SetACL(t, "carol", "Calendar", "dave", "l")

	s := &server{srv: srv}
	pool := imapstore.NewPool(imapstore.Options{
		Addr: srv.Addr, TLS: imapstore.TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(string, error, time.Duration) { s.mu.Lock(); s.imap++; s.mu.Unlock() },
	}, 2)
	t.Cleanup(func() { pool.Close() })
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	zones := map[string]*time.Location{}
	for u, z := range teamZones {
		zones[u], _ = time.LoadLocation(z)
	}
	now := time.Date(2025, 3, 6, 12, 0, 0, 0, time.UTC)
	h := New(Options{
		Cache:    feed.New(feed.Options{Source: pool, Policy: policy, CheckInterval: time.Minute, NegativeTTL: time.Minute, Metrics: m, Now: func() time.Time { return now }}),
		PastDays: 1, FutureDays: 30, MaxAge: time.Minute,
		Verify: verifyAt(srv.Addr),
		Policy: policy, MailDomain: "example.org",
		Zone:    func(u string) *time.Location { return zones[u] },
		Team:    team,
		Metrics: m, Gatherer: reg,
		Now: func() time.Time { return now },
	})
	s.m = m
	s.Server = httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// basicAs is the Authorization header of user with the test bed's password.
func basicAs(user string) []string { return basic(user, testbed.Password(user)) }

var nineToFive = func(string) *availability.Hours { return availability.MustParseHours("MO-FR 09:00-17:00") }

// vfreebusies splits a calendar into its VFREEBUSY components.
var vfreebusyRE = regexp.MustCompile(`(?s)BEGIN:VFREEBUSY\r\n.*?END:VFREEBUSY\r\n`)

// TestGroup asks, as dave, for a group of three: alice (whom dave may
// see), bob (whom he may not) and a name fbpub does not know. Each
// VFREEBUSY comes in the order asked; alice's is her own .vfb's for dave;
// bob's and the unknown one carry REQUEST-STATUS and no periods, the
// same one: under access.freebusy = "acl" the answer does not tell which
// users exist, as their own .vfb (404 for both) does not.
func TestGroup(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			s := setupTeam(t, srv, Team{Groups: map[string][]string{"trio": {"alice", "bob", "nobody"}}, MaxGroup: 3, WorkingHours: nineToFive})
			dave := basicAs("dave")
			const window = "start=20250307T000000Z&end=20250312T000000Z"
			own := s.do(t, "GET", "/freebusy/user/alice?"+window, dave...)
			if own.code != 200 {
				t.Fatalf("alice's own free/busy for dave: %d %s", own.code, own.body)
			}
			wantAlice := vfreebusyRE.FindString(own.body)
			if !strings.Contains(wantAlice, "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250311T140000Z/20250311T150000Z") {
				t.Fatalf("alice's own free/busy lacks her tentative meeting:\n%s", own.body)
			}
			if strings.Contains(wantAlice, "BUSY-UNAVAILABLE") {
				t.Errorf("off hours marked with publish.off_hours unset:\n%s", own.body)
			}
			for _, path := range []string{"/freebusy/group/trio.vfb?" + window, "/freebusy/group.ifb?user=alice&user=bob&user=nobody&" + window} {
				r := s.do(t, "GET", path, dave...)
				if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/calendar") {
					t.Fatalf("GET %s = %d %s\n%s", path, r.code, r.hdr.Get("Content-Type"), r.body)
				}
				if !strings.HasPrefix(r.body, "BEGIN:VCALENDAR\r\n") || !strings.Contains(r.body, "METHOD:PUBLISH\r\n") || !strings.HasSuffix(r.body, "END:VCALENDAR\r\n") {
					t.Errorf("GET %s: not one VCALENDAR with METHOD:PUBLISH:\n%s", path, r.body)
				}
				fbs := vfreebusyRE.FindAllString(r.body, -1)
				if len(fbs) != 3 {
					t.Fatalf("GET %s: %d VFREEBUSY, want 3:\n%s", path, len(fbs), r.body)
				}
				if fbs[0] != wantAlice {
					t.Errorf("GET %s: alice's VFREEBUSY\n%s\nis not her own\n%s", path, fbs[0], wantAlice)
				}
				for i, want := range []string{"", "ORGANIZER:mailto:bob@example.org", "ORGANIZER:mailto:nobody@example.org"} {
					if want != "" && !strings.Contains(fbs[i], want) {
						t.Errorf("GET %s: member %d lacks %s:\n%s", path, i, want, fbs[i])
					}
				}
				for i, want := range []string{"", "REQUEST-STATUS:3.8;No authority\r\n", "REQUEST-STATUS:3.8;No authority\r\n"} {
					if i == 0 {
						continue
					}
					if !strings.Contains(fbs[i], want) || strings.Contains(fbs[i], "FREEBUSY;") || !strings.Contains(fbs[i], "DTSTART:20250307T000000Z") {
						t.Errorf("GET %s: member %d should say %q with the window and no periods:\n%s", path, i, want, fbs[i])
					}
				}
				if strings.Contains(r.body, "20250310T120000Z") || strings.Contains(r.body, "Secret") || strings.Contains(r.body, "Maybe") {
					t.Errorf("GET %s shows what dave may not see:\n%s", path, r.body)
				}
				if !strings.HasPrefix(r.hdr.Get("Cache-Control"), "private") || r.hdr.Get("Etag") == "" {
					t.Errorf("GET %s: Cache-Control %q, ETag %q", path, r.hdr.Get("Cache-Control"), r.hdr.Get("Etag"))
				}
				if again := s.do(t, "GET", path, append(dave, "If-None-Match", r.hdr.Get("Etag"))...); again.code != 304 {
					t.Errorf("GET %s with its ETag = %d, want 304", path, again.code)
				}
			}
			// The order asked is the order answered.
			r := s.do(t, "GET", "/freebusy/group.vfb?user=nobody&user=alice&"+window, dave...)
			if fbs := vfreebusyRE.FindAllString(r.body, -1); len(fbs) != 2 || !strings.Contains(fbs[0], "3.8") || fbs[1] != wantAlice {
				t.Errorf("GET group.vfb?user=nobody&user=alice: not in the order asked:\n%s", r.body)
			}
			for _, tc := range []struct {
				path string
				hdr  []string
				code int
			}{
				{"/freebusy/group.vfb?user=alice&user=bob&user=carol&user=dave", dave, 400}, // beyond max_group
				{"/freebusy/group.vfb", dave, 400},
				{"/freebusy/group/nope.vfb", dave, 404},
				{"/freebusy/group/trio.ics", dave, 404},
				{"/freebusy/group/trio.vfb?start=yesterday", dave, 400},
				{"/freebusy/group/trio.vfb", nil, 401}, // free/busy is not public
				{"/freebusy/group.vfb?user=alice", nil, 401},
				{"/freebusy/group/nope.vfb", nil, 401}, // not 404: which groups exist is not told
				{"/freebusy/group.vfb", nil, 401},
			} {
				if r := s.do(t, "GET", tc.path, tc.hdr...); r.code != tc.code {
					t.Errorf("GET %s = %d, want %d: %s", tc.path, r.code, tc.code, r.body)
				}
			}
			if got := testutil.ToFloat64(s.m.HTTPRequests.WithLabelValues("group", "200")); got < 3 {
				t.Errorf("fbpub_http_requests_total{route=\"group\",code=\"200\"} = %v, want at least 3", got)
			}
		})
	}
}

type slotsAnswer struct {
	Slots []struct {
		Start, End string
	} `json:"slots"`
	Members []struct {
		User, Status string
	} `json:"members"`
}

func (a slotsAnswer) String() string {
	var b strings.Builder
	for _, s := range a.Slots {
		fmt.Fprintf(&b, "%s/%s ", s.Start, s.End)
	}
	for _, m := range a.Members {
		fmt.Fprintf(&b, "%s:%s ", m.User, m.Status)
	}
	return strings.TrimSpace(b.String())
}

// TestGroupUnknownOutsideACL: where free/busy is open to every logged-in
// user, whose .vfb tells anyway which users publish a calendar, a name
// fbpub does not know is reported as such (3.7, "unknown"), to tell a
// typing error from an empty calendar.
func TestGroupUnknownOutsideACL(t *testing.T) {
	srv := testbed.Get(t)
	s := setupTeamPolicy(t, srv, Team{WorkingHours: nineToFive}, &acl.Policy{FreeBusy: acl.AuthenticatedOnly})
	dave := basicAs("dave")
	const window = "&start=20250307T000000Z&end=20250312T000000Z"
	r := s.do(t, "GET", "/freebusy/group.vfb?user=bob&user=nobody"+window, dave...)
	fbs := vfreebusyRE.FindAllString(r.body, -1)
	if r.code != 200 || len(fbs) != 2 || strings.Contains(fbs[0], "REQUEST-STATUS") || !strings.Contains(fbs[1], "REQUEST-STATUS:3.7;Invalid calendar user\r\n") {
		t.Errorf("group.vfb?user=bob&user=nobody = %d, want bob's free/busy and 3.7 for nobody:\n%s", r.code, r.body)
	}
	r = s.do(t, "GET", "/freebusy/slots?user=bob&user=nobody&duration=PT1H"+window, dave...)
	if r.code != 200 || !strings.Contains(r.body, `{"user":"nobody","status":"unknown"}`) {
		t.Errorf("slots?user=bob&user=nobody = %d %s, want nobody unknown", r.code, r.body)
	}
}

// TestSlots computes the common free hours of the known week through
// IMAP and compares them with the hand-computed answer (the same as
// package availability's TestSlots): Fri 14-16 UTC; Mon 14-15 (carol's
// meeting at 15:00-15:30 leaves half an hour after it); Tue 15-16, or
// 14-16 when alice's tentative meeting counts as free.
func TestSlots(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			s := setupTeam(t, srv, Team{Groups: map[string][]string{"crew": {"alice", "carol", "dave", "bob", "nobody"}}, WorkingHours: nineToFive})
			dave := basicAs("dave")
			const window = "&start=20250307T000000Z&end=20250312T000000Z"
			const members = "alice:ok carol:ok dave:ok bob:no-authority nobody:no-authority"
			tests := []struct{ query, want string }{
				{"group=crew&duration=PT1H", "2025-03-07T14:00:00Z/2025-03-07T16:00:00Z 2025-03-10T14:00:00Z/2025-03-10T15:00:00Z 2025-03-11T15:00:00Z/2025-03-11T16:00:00Z " + members},
				{"group=crew&duration=PT1H&tentative=free", "2025-03-07T14:00:00Z/2025-03-07T16:00:00Z 2025-03-10T14:00:00Z/2025-03-10T15:00:00Z 2025-03-11T14:00:00Z/2025-03-11T16:00:00Z " + members},
				{"group=crew&duration=PT30M", "2025-03-07T14:00:00Z/2025-03-07T16:00:00Z 2025-03-10T14:00:00Z/2025-03-10T15:00:00Z 2025-03-10T15:30:00Z/2025-03-10T16:00:00Z 2025-03-11T15:00:00Z/2025-03-11T16:00:00Z " + members},
				// dave alone: his two four-hour blocks a day, London time (UTC).
				{"user=dave&user=nobody&duration=PT4H", "2025-03-07T09:00:00Z/2025-03-07T13:00:00Z 2025-03-07T14:00:00Z/2025-03-07T18:00:00Z " +
					"2025-03-10T09:00:00Z/2025-03-10T13:00:00Z 2025-03-10T14:00:00Z/2025-03-10T18:00:00Z " +
					"2025-03-11T09:00:00Z/2025-03-11T13:00:00Z 2025-03-11T14:00:00Z/2025-03-11T18:00:00Z dave:ok nobody:no-authority"},
				{"user=dave&duration=PT5H", "dave:ok"},
				// The README's example.
				{"user=alice&user=carol&user=dave&user=bob&duration=PT1H", "2025-03-07T14:00:00Z/2025-03-07T16:00:00Z 2025-03-10T14:00:00Z/2025-03-10T15:00:00Z 2025-03-11T15:00:00Z/2025-03-11T16:00:00Z alice:ok carol:ok dave:ok bob:no-authority"},
				{"user=bob&user=nobody&duration=PT1H", "bob:no-authority nobody:no-authority"},
			}
			for _, tt := range tests {
				r := s.do(t, "GET", "/freebusy/slots?"+tt.query+window, dave...)
				if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
					t.Errorf("GET slots?%s = %d %s %s", tt.query, r.code, r.hdr.Get("Content-Type"), r.body)
					continue
				}
				var a slotsAnswer
				if err := json.Unmarshal([]byte(r.body), &a); err != nil {
					t.Fatalf("GET slots?%s: %v\n%s", tt.query, err, r.body)
				}
				if got := a.String(); got != tt.want {
					t.Errorf("GET slots?%s =\n %s\nwant\n %s", tt.query, got, tt.want)
				}
			}
			// The same week as a VFREEBUSY of free periods.
			r := s.do(t, "GET", "/freebusy/slots?group=crew&duration=PT1H"+window, append(dave, "Accept", "text/calendar")...)
			for _, want := range []string{"BEGIN:VFREEBUSY", "DTSTART:20250307T000000Z", "DTEND:20250312T000000Z",
				"FREEBUSY;FBTYPE=FREE:20250307T140000Z/20250307T160000Z", "FREEBUSY;FBTYPE=FREE:20250310T140000Z/20250310T150000Z",
				"FREEBUSY;FBTYPE=FREE:20250311T150000Z/20250311T160000Z"} {
				if r.code != 200 || !strings.Contains(r.body, want) {
					t.Errorf("GET slots as text/calendar = %d, lacks %s:\n%s", r.code, want, r.body)
				}
			}
			if n := strings.Count(r.body, "FREEBUSY;"); n != 3 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "text/calendar") {
				t.Errorf("GET slots as text/calendar: %d periods, Content-Type %q", n, r.hdr.Get("Content-Type"))
			}
			// Members come from the cache: asking again costs no IMAP
			// command within the check interval, and counts a hit per
			// member the requester may see.
			hits := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("freebusy", "hit"))
			before := s.commands()
			s.do(t, "GET", "/freebusy/slots?group=crew&duration=PT1H"+window, dave...)
			if n := s.commands() - before; n != 0 {
				t.Errorf("a repeated slots request sent %d IMAP commands, want 0", n)
			}
			if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("freebusy", "hit")) - hits; got != 3 {
				t.Errorf("a repeated slots request counted %v cache hits, want 3", got)
			}
			for _, tc := range []struct {
				query string
				code  int
			}{
				{"group=crew", 400},
				{"group=crew&duration=PT0S", 400},
				{"group=crew&duration=soon", 400},
				{"group=crew&duration=PT1H&tentative=maybe", 400},
				{"group=crew&user=alice&duration=PT1H", 400},
				{"duration=PT1H", 400},
				{"group=nope&duration=PT1H", 404},
			} {
				if r := s.do(t, "GET", "/freebusy/slots?"+tc.query, dave...); r.code != tc.code {
					t.Errorf("GET slots?%s = %d, want %d: %s", tc.query, r.code, tc.code, r.body)
				}
			}
			for _, q := range []string{"group=crew&duration=PT1H", "group=nope&duration=PT1H", "duration=PT1H"} {
				if r := s.do(t, "GET", "/freebusy/slots?"+q); r.code != 401 {
					t.Errorf("anonymous GET slots?%s = %d, want 401", q, r.code)
				}
			}
		})
	}
}

// TestOffHours: with publish.off_hours = "unavailable", a .vfb marks the
// time outside working hours BUSY-UNAVAILABLE: the site's pattern on the
// owner's wall clock, or the owner's VAVAILABILITY where there is one;
// a group's members are marked the same way.
func TestOffHours(t *testing.T) {
	s := setupTeam(t, testbed.Get(t), Team{WorkingHours: nineToFive, OffHours: true})
	const window = "?start=20250307T000000Z&end=20250311T000000Z"
	tests := []struct {
		user string
		want []string
	}{
		{"alice", []string{ // 09-17 Berlin is 08-16 UTC
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T080000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T160000Z/20250310T080000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250310T160000Z/20250311T000000Z"}},
		{"carol", []string{ // New York: UTC-5 on Friday, UTC-4 on Monday
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T140000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T220000Z/20250310T130000Z",
			"FREEBUSY;FBTYPE=BUSY:20250310T150000Z/20250310T153000Z"}},
		{"dave", []string{ // his VAVAILABILITY, not the site's hours
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T090000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T130000Z/20250307T140000Z",
			"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T180000Z/20250310T090000Z"}},
	}
	for _, tt := range tests {
		r := s.do(t, "GET", "/freebusy/user/"+tt.user+window, basicAs(tt.user)...)
		for _, want := range tt.want {
			if r.code != 200 || !strings.Contains(r.body, want) {
				t.Errorf("GET %s's free/busy = %d, lacks %s:\n%s", tt.user, r.code, want, r.body)
			}
		}
		if g := s.do(t, "GET", "/freebusy/group.vfb?user="+tt.user+"&"+window[1:], basicAs(tt.user)...); vfreebusyRE.FindString(g.body) != vfreebusyRE.FindString(r.body) {
			t.Errorf("%s in a group:\n%s\nnot as alone:\n%s", tt.user, g.body, r.body)
		}
	}
	// The .vfb of the default window is marked too.
	if r := s.do(t, "GET", "/freebusy/alice.vfb", basicAs("alice")...); !strings.Contains(r.body, "FBTYPE=BUSY-UNAVAILABLE") {
		t.Errorf("alice.vfb with off hours:\n%s", r.body)
	}
}

// TestGroupSharesLookups: members asked for at once share the cache's
// work as single lookups do: the same member five times, cold, is one
// folder read and one render, and five identical VFREEBUSY.
func TestGroupSharesLookups(t *testing.T) {
	s := setupTeam(t, testbed.Get(t), Team{})
	r := s.do(t, "GET", "/freebusy/group.vfb?user=alice&user=alice&user=alice&user=alice&user=alice", basicAs("alice")...)
	fbs := vfreebusyRE.FindAllString(r.body, -1)
	if r.code != 200 || len(fbs) != 5 {
		t.Fatalf("GET = %d with %d VFREEBUSY, want 200 with 5:\n%s", r.code, len(fbs), r.body)
	}
	for _, fb := range fbs[1:] {
		if fb != fbs[0] {
			t.Errorf("one member's VFREEBUSY differs between its places:\n%s\n%s", fbs[0], fb)
		}
	}
	if got := testutil.ToFloat64(s.m.Renders.WithLabelValues("freebusy")); got != 1 {
		t.Errorf("renders = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.Syncs.WithLabelValues("full", "ok")); got != 1 {
		t.Errorf("full folder syncs = %v, want 1", got)
	}
}

// TestGroupJSON: the group URL answers JSON for Accept: application/json
// (or format=application/json): the window, and each member in the order
// asked with their status and busy periods, the same periods as their
// VFREEBUSY; off_hours=unavailable marks the time outside working hours.
func TestGroupJSON(t *testing.T) {
	s := setupTeam(t, testbed.Get(t), Team{Groups: map[string][]string{"crew": {"alice", "carol", "dave", "bob", "nobody"}}, WorkingHours: nineToFive})
	dave := basicAs("dave")
	const window = "start=20250310T000000Z&end=20250311T000000Z"
	type answer struct {
		Start, End string
		Members    []struct {
			User, Status string
			Busy         []struct{ Start, End, FBType string }
		}
	}
	get := func(path string, hdr ...string) (answer, response) {
		t.Helper()
		r := s.do(t, "GET", path, append(slices.Clone(dave), hdr...)...)
		var a answer
		if r.code != 200 || !strings.HasPrefix(r.hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s = %d %s\n%s", path, r.code, r.hdr.Get("Content-Type"), r.body)
		}
		if err := json.Unmarshal([]byte(r.body), &a); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, r.body)
		}
		return a, r
	}
	show := func(a answer) string {
		var b strings.Builder
		b.WriteString(a.Start + "/" + a.End)
		for _, m := range a.Members {
			b.WriteString(" " + m.User + ":" + m.Status)
			for _, p := range m.Busy {
				b.WriteString(" " + p.FBType + "@" + p.Start + "/" + p.End)
			}
		}
		return b.String()
	}
	a, r := get("/freebusy/group/crew.vfb?"+window, "Accept", "application/json")
	const want = "2025-03-10T00:00:00Z/2025-03-11T00:00:00Z alice:ok carol:ok BUSY@2025-03-10T15:00:00Z/2025-03-10T15:30:00Z dave:ok bob:no-authority nobody:no-authority"
	if got := show(a); got != want {
		t.Errorf("group as JSON =\n %s\nwant\n %s", got, want)
	}
	if !slices.Contains(r.hdr.Values("Vary"), "Accept") || !strings.HasPrefix(r.hdr.Get("Cache-Control"), "private") {
		t.Errorf("group as JSON: Vary %q, Cache-Control %q", r.hdr.Values("Vary"), r.hdr.Get("Cache-Control"))
	}
	cal := s.do(t, "GET", "/freebusy/group/crew.vfb?"+window, dave...)
	if cal.hdr.Get("Etag") == r.hdr.Get("Etag") || !strings.HasPrefix(cal.hdr.Get("Content-Type"), "text/calendar") {
		t.Errorf("the calendar form has ETag %s and type %s; JSON's ETag is %s", cal.hdr.Get("Etag"), cal.hdr.Get("Content-Type"), r.hdr.Get("Etag"))
	}
	// Off hours, for the listed form: alice works 08-16 UTC, carol 13-21
	// UTC (New York, after the change of clocks), dave by his
	// VAVAILABILITY 09-13 and 14-18.
	a, _ = get("/freebusy/group.vfb?user=alice&user=carol&user=dave&format=application/json&off_hours=unavailable&" + window)
	const wantOff = "2025-03-10T00:00:00Z/2025-03-11T00:00:00Z" +
		" alice:ok BUSY-UNAVAILABLE@2025-03-10T00:00:00Z/2025-03-10T08:00:00Z BUSY-UNAVAILABLE@2025-03-10T16:00:00Z/2025-03-11T00:00:00Z" +
		" carol:ok BUSY-UNAVAILABLE@2025-03-10T00:00:00Z/2025-03-10T13:00:00Z BUSY@2025-03-10T15:00:00Z/2025-03-10T15:30:00Z BUSY-UNAVAILABLE@2025-03-10T21:00:00Z/2025-03-11T00:00:00Z" +
		" dave:ok BUSY-UNAVAILABLE@2025-03-10T00:00:00Z/2025-03-10T09:00:00Z BUSY-UNAVAILABLE@2025-03-10T13:00:00Z/2025-03-10T14:00:00Z BUSY-UNAVAILABLE@2025-03-10T18:00:00Z/2025-03-11T00:00:00Z"
	if got := show(a); got != wantOff {
		t.Errorf("group as JSON with off hours =\n %s\nwant\n %s", got, wantOff)
	}
	// The README's example.
	a, _ = get("/freebusy/group.vfb?user=carol&user=bob&start=20250310T000000Z&period=P1D", "Accept", "application/json")
	if got, want := show(a), "2025-03-10T00:00:00Z/2025-03-11T00:00:00Z carol:ok BUSY@2025-03-10T15:00:00Z/2025-03-10T15:30:00Z bob:no-authority"; got != want {
		t.Errorf("the README's example =\n %s\nwant\n %s", got, want)
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/freebusy/group/crew.vfb?off_hours=free", 400},
		{"/freebusy/group/crew.vfb?format=text/html", 406},
	} {
		if r := s.do(t, "GET", tc.path, dave...); r.code != tc.code {
			t.Errorf("GET %s = %d, want %d: %s", tc.path, r.code, tc.code, r.body)
		}
	}
	if r := s.do(t, "GET", "/freebusy/group/crew.vfb", "Accept", "application/json"); r.code != 401 {
		t.Errorf("anonymous group as JSON = %d, want 401", r.code)
	}
}
