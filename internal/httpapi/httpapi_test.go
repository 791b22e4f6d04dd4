package httpapi

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/internal/upload"
	"github.com/fbpub/fbpub/metrics"
)

func TestMain(m *testing.M) { testbed.Main(m) }

type server struct {
	*httptest.Server
	srv *testbed.Server
	m   *metrics.Metrics
	mu  sync.Mutex
	// imap counts IMAP commands the proxy sent.
	imap int
}

func (s *server) commands() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.imap
}

func ics(uid, summary, start, end string) string {
	return strings.ReplaceAll(fmt.Sprintf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:%s
DTSTAMP:20250101T000000Z
DTSTART:%s
DTEND:%s
SUMMARY:%s
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT5M
DESCRIPTION:x
END:VALARM
END:VEVENT
END:VCALENDAR
`, uid, start, end, summary), "\n", "\r\n")
}

// setup seeds alice's calendars, including folder names with a space and
// non-ASCII characters (modified UTF-7 on the wire), and serves them.
func setup(t *testing.T, interval time.Duration) *server {
	t.Helper()
	return setupWith(t, interval, nil)
}

// setupWith is setup with options adjusted by adjust.
func setupWith(t *testing.T, interval time.Duration, adjust func(o *Options, src feed.Source)) *server {
	t.Helper()
	srv := testbed.Get(t)
	srv.Reset(t)
	for _, f := range []string{"Calendar", "Calendar/Work", "Calendar/Réunions équipe"} {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("a", ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")))
	srv.Append(t, "alice", "Calendar/Work", testbed.CalendarMessage("w", ics("w1", "Review", "20250304T090000Z", "20250304T110000Z")))
	srv.Append(t, "alice", "Calendar/Réunions équipe", testbed.CalendarMessage("r", ics("r1", "Réunion", "20250305T090000Z", "20250305T093000Z")))
	// A large folder, for compression.
	srv.CreateFolder(t, "alice", "Calendar/Big")
	srv.SetACL(t, "alice", "Calendar/Big", testbed.Proxy, "lr")
	for i := 0; i < 30; i++ {
		srv.Append(t, "alice", "Calendar/Big", testbed.CalendarMessage("b", ics(fmt.Sprint("b", i), "Big "+strings.Repeat("x", 60), "20250306T090000Z", "20250306T093000Z")))
	}

	s := &server{srv: srv}
	pool := imapstore.NewPool(imapstore.Options{
		Addr: srv.Addr, TLS: imapstore.TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(string, error, time.Duration) { s.mu.Lock(); s.imap++; s.mu.Unlock() },
	}, 2)
	t.Cleanup(func() { pool.Close() })
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	opts := Options{
		Cache:    feed.New(feed.Options{Source: pool, CheckInterval: interval, Metrics: m}),
		PastDays: 1, FutureDays: 30, MaxAge: interval, Refresh: 15 * time.Minute,
		Verify:     verifyAt(srv.Addr),
		MailDomain: "example.org", Addresses: map[string]string{"Alice.Adler@Example.org": "alice"}, Ready: pool.Ping, Gatherer: reg, Metrics: m,
		Now: func() time.Time { return now },
	}
	if adjust != nil {
		adjust(&opts, pool)
	}
	h := New(opts)
	s.m = m
	s.Server = httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

type response struct {
	code int
	hdr  http.Header
	body string
}

func (s *server) do(t *testing.T, method, path string, hdr ...string) response {
	t.Helper()
	return s.send(t, method, path, nil, hdr...)
}

// send is do with a request body (nil for none).
func (s *server) send(t *testing.T, method, path string, body io.Reader, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	given := map[string]bool{}
	for i := 0; i+1 < len(hdr); i += 2 {
		if given[hdr[i]] { // a header given twice is sent twice
			req.Header.Add(hdr[i], hdr[i+1])
			continue
		}
		given[hdr[i]] = true
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// asAlice is the Authorization header of the owner of the test calendars.
var asAlice = []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+testbed.Password("alice")))}

func TestRoutes(t *testing.T) {
	s := setup(t, time.Second)
	tests := []struct {
		path string
		code int
		want []string // substrings of the body
		not  []string
	}{
		{"/freebusy/alice.vfb", 200, []string{"BEGIN:VFREEBUSY", "ORGANIZER:mailto:alice@example.org", "FREEBUSY;FBTYPE=BUSY:20250303T090000Z/20250303T100000Z", "DTSTART:20250301T000000Z", "DTEND:20250402T000000Z"}, []string{"Planning"}},
		{"/freebusy/alice.ifb", 200, []string{"BEGIN:VFREEBUSY"}, nil},
		{"/freebusy/alice.xfb", 200, []string{"BEGIN:VFREEBUSY", "X-UID=", "X-SUMMARY=", "FREEBUSY;FBTYPE=BUSY;"}, []string{"Planning"}},
		{"/freebusy/trigger/alice/Calendar.pxfb", 200, []string{"X-SUMMARY=UGxhbm5pbmc="}, nil},
		{"/freebusy/alice@example.com.vfb", 200, []string{"ORGANIZER:mailto:alice@example.com"}, nil},
		{"/freebusy/alice.adler@example.org.vfb", 200, []string{"ORGANIZER:mailto:alice.adler@example.org", "20250303T090000Z"}, nil},
		{"/freebusy/user/alice?start=20250304T000000Z&end=20250305T000000Z", 200, []string{"DTSTART:20250304T000000Z", "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T110000Z"}, []string{"20250303T09"}},
		{"/freebusy/user/alice?start=2025-03-03T00:00:00Z&period=P1D", 200, []string{"DTEND:20250304T000000Z", "20250303T090000Z"}, nil},
		{"/freebusy/user/alice/Calendar/Work?start=20250301T000000Z&end=20250401T000000Z&format=text/calendar", 200, []string{"20250304T090000Z"}, []string{"20250303T09"}},
		{"/freebusy/user/alice?format=application/json", 406, []string{"text/calendar"}, nil},
		{"/freebusy/user/alice?start=yesterday", 400, []string{"start:"}, nil},
		{"/freebusy/user/alice?start=20250301T000000Z&end=20250201T000000Z", 400, []string{"end must be after start"}, nil},
		{"/freebusy/user/alice?start=20250301T000000Z&end=20300101T000000Z", 400, []string{"at most 366 days"}, nil},
		{"/freebusy/user/alice?end=20250401T000000Z&period=P1D", 400, []string{"not both"}, nil},
		{"/freebusy/user/alice?period=-P1D", 400, []string{"period:"}, nil},
		{"/freebusy/user/alice?start=99991231T000000Z&period=P7D", 400, []string{"9999"}, nil},
		{"/freebusy/user/alice?start=99991225T000000Z&end=99991231T235959Z", 200, []string{"DTEND:99991231T235959Z"}, nil},
		{"/calendar/alice.ics", 200, []string{"SUMMARY:Planning", "SUMMARY:Review", "SUMMARY:Réunion"}, []string{"VALARM"}},
		{"/calendar/alice/Calendar.ics", 200, []string{"SUMMARY:Planning", "X-WR-CALNAME:alice – Calendar", "REFRESH-INTERVAL;VALUE=DURATION:PT15M", "X-PUBLISHED-TTL:PT15M"}, []string{"Review", "VALARM"}},
		{"/calendar/alice/Calendar/Work.ics", 200, []string{"SUMMARY:Review"}, []string{"Planning"}},
		{"/calendar/alice/" + url.PathEscape("Calendar") + "/" + url.PathEscape("Réunions équipe") + ".ics", 200, []string{"SUMMARY:Réunion"}, nil},
		{"/calendar/alice/Calendar%2FWork.ics", 200, []string{"SUMMARY:Review"}, nil},
		{"/calendar/alice/Nope.ics", 404, []string{"not found"}, nil},
		{"/calendar/alice/Calendar.txt", 404, nil, nil},
		{"/freebusy/nobody.vfb", 404, []string{"not found"}, nil},
		{"/freebusy/alice.xyz", 404, nil, nil},
		{"/elsewhere", 404, nil, nil},
		{"/healthz", 200, []string{"ok"}, nil},
		{"/readyz", 200, []string{"ready"}, nil},
		{"/metrics", 200, []string{"fbpub_http_requests_total", "fbpub_build_info"}, nil},
	}
	for _, tt := range tests {
		r := s.do(t, "GET", tt.path, asAlice...)
		if r.code != tt.code {
			t.Errorf("GET %s = %d, want %d\n%s", tt.path, r.code, tt.code, r.body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("GET %s: body lacks %q:\n%s", tt.path, w, r.body)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(r.body, w) {
				t.Errorf("GET %s: body has %q:\n%s", tt.path, w, r.body)
			}
		}
		if tt.code >= 400 && r.hdr.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: error answered as %q, want plain text", tt.path, r.hdr.Get("Content-Type"))
		}
	}
}

// TestBadNamesNeverReachIMAP: names that are not valid are refused with
// 400 before fbpub sends any IMAP command.
// TestMethodNotAllowed: a method a path is not served with gets 405 with
// the methods it is served with (RFC 9110 §15.5.6), not a 404 or a
// redirect; a path nothing serves stays 404.
func TestMethodNotAllowed(t *testing.T) {
	s := setup(t, time.Second)
	for _, tt := range []struct {
		method, path, allow string
	}{
		{"PUT", "/calendar/alice.ics", "GET, HEAD"},
		{"PUT", "/freebusy/alice.vfb", "GET, HEAD"},
		{"POST", "/calendar/alice/Calendar.ics", "GET, HEAD, PUT"},
		{"DELETE", "/calendar/alice/Calendar.ics", "GET, HEAD, PUT"},
		{"PUT", "/healthz", "GET, HEAD"},
		{"PUT", "/elsewhere", ""},
	} {
		r := s.do(t, tt.method, tt.path, asAlice...)
		want := http.StatusMethodNotAllowed
		if tt.allow == "" {
			want = http.StatusNotFound
		}
		if r.code != want || r.hdr.Get("Allow") != tt.allow {
			t.Errorf("%s %s = %d, Allow %q; want %d, Allow %q\n%s", tt.method, tt.path, r.code, r.hdr.Get("Allow"), want, tt.allow, r.body)
		}
	}
}

func TestBadNamesNeverReachIMAP(t *testing.T) {
	s := setup(t, time.Hour)
	s.do(t, "GET", "/freebusy/alice.vfb") // warm up: the pool is logged in
	for _, path := range []string{
		"/calendar/alice/..%2F..%2Fetc%2Fpasswd.ics",
		"/calendar/alice/Calendar%2F..%2Fbob.ics",
		"/calendar/alice/Cal%00endar.ics",
		"/freebusy/al%00ice.vfb",
		"/freebusy/" + strings.Repeat("a", 300) + ".vfb",
		"/calendar/alice/" + strings.Repeat("x", 2000) + ".ics",
		"/calendar/alice/%FF%FE.ics",
		"/freebusy/@example.org.vfb",
		"/freebusy/user/alice%0A?start=20250301T000000Z",
	} {
		before := s.commands()
		r := s.do(t, "GET", path)
		if r.code != http.StatusBadRequest {
			t.Errorf("GET %s = %d %q, want 400", path, r.code, r.body)
		}
		if got := s.commands() - before; got != 0 {
			t.Errorf("GET %s sent %d IMAP commands, want 0", path, got)
		}
	}
}

func TestCachingHeaders(t *testing.T) {
	s := setup(t, 2*time.Second)
	r := s.do(t, "GET", "/calendar/alice/Calendar.ics")
	for k, want := range map[string]string{
		"Content-Type":        "text/calendar; charset=utf-8",
		"Cache-Control":       "max-age=2",
		"Content-Disposition": "inline; filename=Calendar.ics",
		"Vary":                "Authorization, Accept-Encoding",
	} {
		if got := strings.Join(r.hdr.Values(k), ", "); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	id := r.hdr.Get("X-Request-ID")
	if !regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-f]+$`).MatchString(id) {
		t.Errorf("X-Request-ID = %q, want a process prefix and a counter", id)
	}
	if next := s.do(t, "GET", "/healthz").hdr.Get("X-Request-ID"); next == id || next == "" {
		t.Errorf("two requests got the IDs %q and %q", id, next)
	}
	if r := s.do(t, "GET", "/healthz", "X-Request-ID", "lb-1234"); r.hdr.Get("X-Request-ID") != "lb-1234" {
		t.Errorf("a proxy's X-Request-ID was not kept: %q", r.hdr.Get("X-Request-ID"))
	}
	etag, lm := r.hdr.Get("ETag"), r.hdr.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || lm == "" {
		t.Fatalf("ETag %q, Last-Modified %q", etag, lm)
	}
	notModified := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "not_modified"))
	hits := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "hit"))
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "If-None-Match", etag); r.code != 304 || r.body != "" {
		t.Errorf("If-None-Match: %d %q, want 304 and no body", r.code, r.body)
	}
	if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "not_modified")) - notModified; got != 1 {
		t.Errorf("a 304 counted %v times as not_modified, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "hit")) - hits; got != 0 {
		t.Errorf("a 304 was also counted as a hit")
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "If-None-Match", `"other"`); r.code != 200 {
		t.Errorf("If-None-Match with another tag: %d, want 200", r.code)
	}
	if r := s.do(t, "HEAD", "/calendar/alice/Calendar.ics"); r.code != 200 || r.body != "" || r.hdr.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, body %q, Content-Length %q", r.code, r.body, r.hdr.Get("Content-Length"))
	}

	// gzip for a large answer, with its own tag; not when refused.
	plain := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics")
	gz := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip, deflate")
	if gz.hdr.Get("Content-Encoding") != "gzip" || gz.hdr.Get("ETag") == plain.hdr.Get("ETag") {
		t.Fatalf("gzip: Content-Encoding %q, ETag %q (plain %q)", gz.hdr.Get("Content-Encoding"), gz.hdr.Get("ETag"), plain.hdr.Get("ETag"))
	}
	zr, err := gzip.NewReader(strings.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, _ := io.ReadAll(zr)
	if string(unzipped) != plain.body {
		t.Errorf("gzipped body differs from the plain one")
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip;q=0"); r.hdr.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 still got %q", r.hdr.Get("Content-Encoding"))
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip", "If-None-Match", gz.hdr.Get("ETag")); r.code != 304 {
		t.Errorf("If-None-Match with the gzip tag: %d, want 304", r.code)
	}
}

// TestTrigger: with a long check interval a new event is not seen until
// the Kolab trigger URL forces a check.
func TestTrigger(t *testing.T) {
	s := setup(t, time.Hour)
	s.do(t, "GET", "/freebusy/alice.vfb")
	s.srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("n", ics("n1", "New", "20250310T090000Z", "20250310T100000Z")))
	if r := s.do(t, "GET", "/freebusy/alice.vfb"); strings.Contains(r.body, "20250310T090000Z") {
		t.Fatalf("new event seen before the interval passed: the test proves nothing")
	}
	for _, ext := range []string{"pfb", "pxfb"} {
		r := s.do(t, "GET", "/freebusy/trigger/alice/Calendar."+ext)
		if r.code != 200 || !strings.Contains(r.body, "FREEBUSY;FBTYPE=BUSY:20250310T090000Z/20250310T100000Z") {
			t.Errorf("trigger .%s: %d\n%s", ext, r.code, r.body)
		}
	}
	if r := s.do(t, "GET", "/freebusy/alice.vfb"); !strings.Contains(r.body, "20250310T090000Z") {
		t.Errorf("after the trigger, .vfb still lacks the new event")
	}
	if r := s.do(t, "GET", "/freebusy/trigger/alice/Nope.pfb"); r.code != 404 {
		t.Errorf("trigger for an unknown folder: %d, want 404", r.code)
	}
}

func TestReadyzDuringOutage(t *testing.T) {
	s := setup(t, time.Second)
	if r := s.do(t, "GET", "/readyz"); r.code != 200 {
		t.Fatalf("/readyz = %d before the outage", r.code)
	}
	s.srv.Stop(t)
	if r := s.do(t, "GET", "/readyz"); r.code != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d during the outage, want 503", r.code)
	}
	if r := s.do(t, "GET", "/healthz"); r.code != 200 {
		t.Errorf("/healthz = %d during the outage, want 200 (the process is up)", r.code)
	}
	s.srv.Start(t)
}

// TestPrivacy: only the owner, proven by a password checked against IMAP,
// sees what events are; anyone else gets each event's times titled
// "Busy", with no summary, location, description, attendee or UID, in
// overrides too.
func TestPrivacy(t *testing.T) {
	s := setup(t, time.Second)
	s.srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("p", strings.ReplaceAll(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:secret-series-1
DTSTAMP:20250101T000000Z
DTSTART:20250310T090000Z
DTEND:20250310T100000Z
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:Merger talks
LOCATION:Hidden room
DESCRIPTION:Codename Bluebird
ORGANIZER:mailto:ceo@example.org
ATTENDEE;CN=Mallory Secret:mailto:mallory@example.org
END:VEVENT
BEGIN:VEVENT
UID:secret-series-1
RECURRENCE-ID:20250311T090000Z
DTSTART:20250311T140000Z
DTEND:20250311T150000Z
SUMMARY:Merger talks moved
LOCATION:Other hidden room
ATTENDEE;CN=Mallory Secret:mailto:mallory@example.org
CLASS:PRIVATE
END:VEVENT
END:VCALENDAR
`, "\n", "\r\n")))
	secrets := []string{"Merger", "Hidden room", "Bluebird", "Mallory", "mallory@", "ceo@", "secret-series-1", "Planning"}
	bob := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:"+testbed.Password("bob")))}
	for _, who := range []struct {
		name string
		hdr  []string
	}{{"anonymous", nil}, {"bob", bob}} {
		for _, path := range []string{"/calendar/alice/Calendar.ics", "/calendar/alice.ics", "/freebusy/alice.vfb", "/freebusy/user/alice?start=20250301T000000Z&end=20250401T000000Z"} {
			r := s.do(t, "GET", path, who.hdr...)
			if r.code != 200 {
				t.Fatalf("%s GET %s = %d %s", who.name, path, r.code, r.body)
			}
			for _, secret := range secrets {
				if strings.Contains(r.body, secret) {
					t.Errorf("%s GET %s shows %q:\n%s", who.name, path, secret, r.body)
				}
			}
			if strings.HasSuffix(path, ".ics") {
				for _, want := range []string{"SUMMARY:Busy", "DTSTART:20250310T090000Z", "RRULE:FREQ=DAILY;COUNT=3", "RECURRENCE-ID:20250311T090000Z", "DTSTART:20250311T140000Z"} {
					if !strings.Contains(r.body, want) {
						t.Errorf("%s GET %s lacks %q:\n%s", who.name, path, want, r.body)
					}
				}
			}
		}
	}
	r := s.do(t, "GET", "/calendar/alice/Calendar.ics", asAlice...)
	for _, want := range []string{"SUMMARY:Merger talks", "LOCATION:Hidden room", "UID:secret-series-1", "SUMMARY:Merger talks moved"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the owner does not see %q:\n%s", want, r.body)
		}
	}
	if !strings.HasPrefix(r.hdr.Get("Cache-Control"), "private") || !strings.Contains(strings.Join(r.hdr.Values("Vary"), ","), "Authorization") {
		t.Errorf("the owner's answer may be cached for others: Cache-Control %q, Vary %q", r.hdr.Get("Cache-Control"), r.hdr.Values("Vary"))
	}

	wrong := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:guess"))}
	r = s.do(t, "GET", "/calendar/alice/Calendar.ics", wrong...)
	if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("wrong password: %d, WWW-Authenticate %q; want 401 with a Basic challenge", r.code, r.hdr.Get("WWW-Authenticate"))
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", wrong...); r.code != http.StatusUnauthorized && r.code != http.StatusTooManyRequests {
		t.Errorf("second wrong password: %d, want 401 or 429", r.code)
	}
}

// TestTrustedProxyHeader: a reverse proxy's user header names the
// requester, but only when the request comes from a trusted address.
func TestTrustedProxyHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		details bool
	}{
		{"trusted", "127.0.0.0/8", true},
		{"untrusted", "10.0.0.0/8", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
				o.UserHeader = "X-Remote-User"
				o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trusted)}
			})
			r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "X-Remote-User", "alice")
			if r.code != 200 {
				t.Fatalf("GET = %d %s", r.code, r.body)
			}
			if got := strings.Contains(r.body, "SUMMARY:Planning"); got != tc.details {
				t.Errorf("details shown = %v, want %v:\n%s", got, tc.details, r.body)
			}
			if tc.details && !strings.HasPrefix(r.hdr.Get("Cache-Control"), "private") {
				t.Errorf("Cache-Control %q for a named requester", r.hdr.Get("Cache-Control"))
			}
			if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "X-Remote-User", strings.Repeat("a", 1000)); tc.details && r.code != 400 {
				t.Errorf("a bad name in the header: %d, want 400", r.code)
			}
		})
	}
}

// TestVisibilityChallenge: with free/busy for authenticated requesters
// only, anonymous requests are asked to log in, whatever the name, and
// logged-in ones are served.
func TestVisibilityChallenge(t *testing.T) {
	s := setupWith(t, time.Second, func(o *Options, src feed.Source) {
		o.Policy = &acl.Policy{FreeBusy: acl.AuthenticatedOnly}
		o.Cache = feed.New(feed.Options{Source: src, Policy: o.Policy, CheckInterval: time.Second})
	})
	before := s.commands()
	for _, p := range []string{"/freebusy/alice.vfb", "/freebusy/nobody.vfb", "/calendar/alice.ics", "/freebusy/user/alice"} {
		r := s.do(t, "GET", p)
		if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("anonymous GET %s = %d (WWW-Authenticate %q), want 401 with a challenge", p, r.code, r.hdr.Get("WWW-Authenticate"))
		}
	}
	if n := s.commands() - before; n != 0 {
		t.Errorf("anonymous requests sent %d IMAP commands; want none", n)
	}
	bob := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:"+testbed.Password("bob")))}
	if r := s.do(t, "GET", "/freebusy/alice.vfb", bob...); r.code != 200 || !strings.Contains(r.body, "FREEBUSY;FBTYPE=BUSY:20250303T090000Z/20250303T100000Z") {
		t.Errorf("bob GET alice.vfb = %d:\n%s", r.code, r.body)
	}
}

// TestUploadHTTP checks the HTTP side of PUT with a stand-in uploader:
// authentication, limits, If-Match against the feed's entity tag, and the
// answer. The IMAP side is tested in internal/ical2imap and end to end.
func TestUploadHTTP(t *testing.T) {
	var got []upload.Request
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.MaxUpload = 4096
		o.Upload = func(ctx context.Context, u upload.Request) (upload.Result, error) {
			if u.Check != nil {
				if err := u.Check(ctx); err != nil {
					return upload.Result{}, err
				}
			}
			got = append(got, u)
			return upload.Result{Unchanged: 1}, nil
		}
	})
	body := ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")
	put := func(path, body string, hdr ...string) response {
		t.Helper()
		return s.put(t, path, body, hdr...)
	}
	if r := put("/calendar/alice/Calendar.ics", body); r.code != http.StatusUnauthorized {
		t.Errorf("anonymous PUT = %d, want 401", r.code)
	}
	if r := put("/calendar/alice/Calendar.ics", strings.Repeat("x", 5000), asAlice...); r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized PUT = %d, want 413", r.code)
	}
	if r := put("/calendar/alice/Calendar.ics", body, append(asAlice, "If-Match", `"stale"`)...); r.code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match = %d %s, want 412", r.code, r.body)
	}
	if len(got) != 0 {
		t.Fatalf("the uploader wrote for a refused request: %+v", got)
	}
	cur := s.do(t, "GET", "/calendar/alice/Calendar.ics", asAlice...)
	r := put("/calendar/alice/Calendar.ics", body, append(asAlice, "If-Match", cur.hdr.Get("ETag"))...)
	if r.code != 200 || !strings.Contains(r.body, "SUMMARY:Planning") || r.hdr.Get("ETag") == "" {
		t.Errorf("PUT with the current If-Match = %d %q\n%s", r.code, r.hdr.Get("ETag"), r.body)
	}
	if len(got) != 1 || got[0].User != "alice" || got[0].Owner != "alice" || strings.Join(got[0].Folder, "/") != "Calendar" || string(got[0].Body) != body {
		t.Errorf("the uploader got %+v", got)
	}
	if r := put("/calendar/alice/INBOX.ics", body, asAlice...); r.code != http.StatusNotFound || len(got) != 1 {
		t.Errorf("PUT into a folder fbpub does not publish = %d (uploader called %d times), want 404", r.code, len(got))
	}
	if r := put("/calendar/alice/Calendar.ics", "x", append(asAlice, "Content-Type", "image/png")...); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("PUT of an image = %d, want 415", r.code)
	}
}

// TestFreeBusyFastPath checks that the route matched before the mux
// answers as the mux would, and that every answer has its length and
// headers, whether net/http or the handler writes Content-Length.
func TestFreeBusyFastPath(t *testing.T) {
	s := setup(t, time.Second)
	plain := s.do(t, "GET", "/freebusy/alice.vfb")
	if plain.code != 200 || plain.hdr.Get("Content-Length") != strconv.Itoa(len(plain.body)) || plain.hdr.Get("Last-Modified") == "" {
		t.Fatalf("GET: %d, Content-Length %q for %d bytes, Last-Modified %q", plain.code, plain.hdr.Get("Content-Length"), len(plain.body), plain.hdr.Get("Last-Modified"))
	}
	if r := s.do(t, "HEAD", "/freebusy/alice.vfb"); r.code != 200 || r.body != "" || r.hdr.Get("Content-Length") != strconv.Itoa(len(plain.body)) {
		t.Errorf("HEAD: %d, body %q, Content-Length %q", r.code, r.body, r.hdr.Get("Content-Length"))
	}
	// Another file name of the same answer gets its own disposition.
	addr := s.do(t, "GET", "/freebusy/alice@example.org.vfb")
	if addr.hdr.Get("Content-Disposition") != `inline; filename="alice@example.org.vfb"` || plain.hdr.Get("Content-Disposition") != "inline; filename=alice.vfb" {
		t.Errorf("Content-Disposition %q and %q", addr.hdr.Get("Content-Disposition"), plain.hdr.Get("Content-Disposition"))
	}
	if r := s.do(t, "GET", "/freebusy/alice.vfb", "If-None-Match", plain.hdr.Get("ETag")); r.code != 304 {
		t.Errorf("If-None-Match: %d, want 304", r.code)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		// Not for the route: the mux answers these.
		{"POST", "/freebusy/alice.vfb", http.StatusMethodNotAllowed},
		{"GET", "/freebusy/alice%2Fx.vfb", http.StatusNotFound},
		{"GET", "/freebusy/x/../alice.vfb", http.StatusTemporaryRedirect},
		{"GET", "/freebusy/user", http.StatusNotFound},
		{"GET", "/freebusy/nobody.vfb", http.StatusNotFound},
	} {
		if r := s.do(t, tc.method, tc.path); r.code != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, r.code, tc.code)
		}
	}
}

// TestLargeAnswerLength checks that an answer larger than net/http's
// buffer is sent with a Content-Length, not chunked.
func TestLargeAnswerLength(t *testing.T) {
	s := setup(t, time.Second)
	req, _ := http.NewRequest("GET", s.URL+"/calendar/alice/Calendar/Big.ics", nil)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if len(b) <= implicitLength || resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) != 0 {
		t.Errorf("%d bytes: Content-Length %d, Transfer-Encoding %v", len(b), resp.ContentLength, resp.TransferEncoding)
	}
}

// failingSource fails every folder list (whole, or an owner's) once
// down is set.
type failingSource struct {
	feed.Source
	down atomic.Bool
}

func (f *failingSource) Folders(ctx context.Context) ([]imapstore.Folder, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused")
	}
	return f.Source.Folders(ctx)
}

func (f *failingSource) OwnerFolders(ctx context.Context, owner string) ([]imapstore.Folder, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused")
	}
	return f.Source.OwnerFolders(ctx, owner)
}

// TestStaleHeaders checks the headers of an answer served from the last
// good data while IMAP cannot be read.
func TestStaleHeaders(t *testing.T) {
	var src *failingSource
	s := setupWith(t, 0, func(o *Options, pool feed.Source) {
		src = &failingSource{Source: pool}
		o.Cache = feed.New(feed.Options{Source: src, Metrics: o.Metrics})
	})
	fresh := s.do(t, "GET", "/freebusy/alice.vfb")
	if fresh.code != 200 || fresh.hdr.Get("X-Fbpub-Stale") != "" {
		t.Fatalf("fresh: %d, X-Fbpub-Stale %q", fresh.code, fresh.hdr.Get("X-Fbpub-Stale"))
	}
	src.down.Store(true)
	stale := s.do(t, "GET", "/freebusy/alice.vfb")
	if stale.code != 200 || stale.body != fresh.body || stale.hdr.Get("X-Fbpub-Stale") != "1" || stale.hdr.Get("Warning") != `110 fbpub "Response is Stale"` || stale.hdr.Get("ETag") != fresh.hdr.Get("ETag") {
		t.Errorf("stale: %d, X-Fbpub-Stale %q, Warning %q, ETag %q (fresh %q)", stale.code, stale.hdr.Get("X-Fbpub-Stale"), stale.hdr.Get("Warning"), stale.hdr.Get("ETag"), fresh.hdr.Get("ETag"))
	}
	if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("freebusy", "stale")); got != 1 {
		t.Errorf("stale answers counted %v times, want 1", got)
	}
}

// verifyAt checks credentials by logging in to the IMAP server at addr, as
// fbpub serve does.
func verifyAt(addr string) func(context.Context, Credentials) (Verified, error) {
	return func(ctx context.Context, c Credentials) (Verified, error) {
		user, err := imapstore.CheckLogin(ctx, imapstore.Options{Addr: addr, TLS: imapstore.TLSNone, User: c.User, Password: c.Password}, c.Client)
		if errors.Is(err, imapstore.ErrAuth) {
			return Verified{}, nil
		}
		return Verified{OK: err == nil, User: user}, err
	}
}
