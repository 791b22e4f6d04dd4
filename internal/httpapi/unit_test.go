package httpapi

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/feed/feedtest"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/internal/upload"
	"github.com/fbpub/fbpub/metrics"
)

// The fast tier: the handler over a feed cache whose Source is
// feedtest.Source, and a password check that knows the test bed's users,
// without an IMAP server. These tests run in milliseconds (go test
// -short runs them alone); httpapi_test.go holds the same routes served
// out of Dovecot, the proof.

// unitServer is the handler over a fake source, served by httptest.
type unitServer struct {
	*server
	src *feedtest.Source
	// verified counts the password checks.
	verified atomic.Int64
}

// setupUnit seeds alice's calendars into a fake source, as setup does
// into Dovecot, and serves them; adjust may change the options.
func setupUnit(t *testing.T, interval time.Duration, adjust func(o *Options, src feed.Source)) *unitServer {
	t.Helper()
	u := &unitServer{src: feedtest.New()}
	for _, f := range []string{"Calendar", "Calendar/Work", "Calendar/Réunions équipe", "Calendar/Big"} {
		u.src.AddFolder("alice", f, "lr")
	}
	u.src.Append(feedtest.Name("alice", "Calendar"), testbed.CalendarMessage("a", ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")))
	u.src.Append(feedtest.Name("alice", "Calendar/Work"), testbed.CalendarMessage("w", ics("w1", "Review", "20250304T090000Z", "20250304T110000Z")))
	u.src.Append(feedtest.Name("alice", "Calendar/Réunions équipe"), testbed.CalendarMessage("r", ics("r1", "Réunion", "20250305T090000Z", "20250305T093000Z")))
	for i := range 30 {
		u.src.Append(feedtest.Name("alice", "Calendar/Big"), testbed.CalendarMessage("b", ics(fmt.Sprint("b", i), "Big "+strings.Repeat("x", 60), "20250306T090000Z", "20250306T093000Z")))
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	now := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	opts := Options{
		Cache:    feed.New(feed.Options{Source: u.src, CheckInterval: interval, Metrics: m}),
		PastDays: 1, FutureDays: 30, MaxAge: interval, Refresh: 15 * time.Minute,
		Verify:     u.verify,
		MailDomain: "example.org", Addresses: map[string]string{"Alice.Adler@Example.org": "alice"}, Gatherer: reg, Metrics: m,
		Now: func() time.Time { return now },
	}
	if adjust != nil {
		adjust(&opts, u.src)
	}
	u.server = &server{m: m, Server: httptest.NewServer(New(opts))}
	t.Cleanup(u.Close)
	return u
}

// verify accepts the test bed's users with their passwords, folding the
// login to lower case as both servers do.
func (u *unitServer) verify(_ context.Context, c Credentials) (Verified, error) {
	u.verified.Add(1)
	user := strings.ToLower(c.User)
	if !slices.Contains(testbed.Users, user) || c.Password != testbed.Password(user) {
		return Verified{}, nil
	}
	return Verified{OK: true, User: user}, nil
}

// sourceCalls is how many calls the cache made of the fake source.
func (u *unitServer) sourceCalls() int {
	n := 0
	for _, m := range []string{"Folders", "Owners", "OwnerFolders", "LookupOwner", "Details", "Fetch"} {
		n += u.src.Calls(m)
	}
	return n
}

// TestRoutesUnit: every read route answers with its status and body, and
// errors as short plain text.
func TestRoutesUnit(t *testing.T) {
	s := setupUnit(t, time.Hour, nil)
	for _, tt := range []struct {
		method, path string
		code         int
		want, not    []string // substrings of the body
	}{
		{"GET", "/freebusy/alice.vfb", 200, []string{"BEGIN:VFREEBUSY", "ORGANIZER:mailto:alice@example.org", "FREEBUSY;FBTYPE=BUSY:20250303T090000Z/20250303T100000Z", "DTSTART:20250301T000000Z", "DTEND:20250402T000000Z"}, []string{"Planning"}},
		{"GET", "/freebusy/alice.ifb", 200, []string{"BEGIN:VFREEBUSY"}, nil},
		{"GET", "/freebusy/alice.xfb", 200, []string{"FREEBUSY;FBTYPE=BUSY:20250306T090000Z/20250306T093000Z\r\nFREEBUSY;FBTYPE=BUSY:20250306T090000Z/20250306T093000Z"}, []string{"X-UID=", "X-SUMMARY="}},
		{"GET", "/freebusy/alice.adler@example.org.vfb", 200, []string{"ORGANIZER:mailto:alice.adler@example.org", "20250303T090000Z"}, nil},
		{"GET", "/freebusy/user/alice?start=20250304T000000Z&end=20250305T000000Z", 200, []string{"DTSTART:20250304T000000Z", "FREEBUSY;FBTYPE=BUSY:20250304T090000Z/20250304T110000Z"}, []string{"20250303T09"}},
		{"GET", "/freebusy/user/alice/Calendar/Work?start=20250301T000000Z&end=20250401T000000Z", 200, []string{"20250304T090000Z"}, []string{"20250303T09"}},
		{"GET", "/freebusy/user/alice?format=application/json", 406, []string{"text/calendar"}, nil},
		{"GET", "/freebusy/user/alice?start=yesterday", 400, []string{"start:"}, nil},
		{"GET", "/freebusy/user/alice?start=20250301T000000Z&end=20250201T000000Z", 400, []string{"end must be after start"}, nil},
		{"GET", "/freebusy/user/alice?start=20250301T000000Z&end=20300101T000000Z", 400, []string{"at most 366 days"}, nil},
		{"GET", "/freebusy/user/alice?end=20250401T000000Z&period=P1D", 400, []string{"not both"}, nil},
		{"GET", "/calendar/alice.ics", 200, []string{"SUMMARY:Busy", "DTSTART:20250305T090000Z"}, []string{"Planning", "Review", "VALARM"}},
		{"GET", "/calendar/alice/Calendar/Work.ics", 200, []string{"DTSTART:20250304T090000Z", "X-WR-CALNAME:alice – Calendar/Work"}, []string{"20250303T09"}},
		{"GET", "/calendar/alice/" + url.PathEscape("Calendar") + "/" + url.PathEscape("Réunions équipe") + ".ics", 200, []string{"DTSTART:20250305T090000Z"}, nil},
		{"GET", "/calendar/alice/Calendar%2FWork.ics", 200, []string{"DTSTART:20250304T090000Z"}, nil},
		{"GET", "/calendar/alice/Nope.ics", 404, []string{"not found"}, nil},
		{"GET", "/calendar/alice/Calendar.txt", 404, nil, nil},
		{"GET", "/freebusy/nobody.vfb", 404, []string{"not found"}, nil},
		{"GET", "/freebusy/alice.xyz", 404, nil, nil},
		{"GET", "/elsewhere", 404, nil, nil},
		{"PUT", "/calendar/alice/Calendar.ics", 405, []string{"uploads are not enabled"}, nil},
		{"GET", "/healthz", 200, []string{"ok"}, nil},
		{"GET", "/readyz", 200, []string{"ready"}, nil},
		{"GET", "/metrics", 200, []string{"fbpub_http_requests_total", "fbpub_build_info"}, nil},
	} {
		r := s.do(t, tt.method, tt.path)
		if r.code != tt.code {
			t.Errorf("%s %s = %d, want %d\n%s", tt.method, tt.path, r.code, tt.code, r.body)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s %s: body lacks %q:\n%s", tt.method, tt.path, w, r.body)
			}
		}
		for _, w := range tt.not {
			if strings.Contains(r.body, w) {
				t.Errorf("%s %s: body has %q:\n%s", tt.method, tt.path, w, r.body)
			}
		}
		if tt.code >= 400 && (r.hdr.Get("Content-Type") != "text/plain; charset=utf-8" || r.hdr.Get("X-Content-Type-Options") != "nosniff") {
			t.Errorf("%s %s: error answered as %q (nosniff %q), want plain text", tt.method, tt.path, r.hdr.Get("Content-Type"), r.hdr.Get("X-Content-Type-Options"))
		}
	}
}

// TestAuthUnit: a wrong password is 401 with a Basic challenge; the owner
// who logs in sees her events, privately cached; with free/busy for
// authenticated users only, an anonymous request is challenged before
// anything is read; an upload the server refuses for want of a right is
// 403, and one without credentials 401.
func TestAuthUnit(t *testing.T) {
	var uploads atomic.Int64
	s := setupUnit(t, time.Hour, func(o *Options, src feed.Source) {
		o.Policy = &acl.Policy{FreeBusy: acl.AuthenticatedOnly}
		o.Cache = feed.New(feed.Options{Source: src, Policy: o.Policy, CheckInterval: time.Hour})
		o.Upload = func(ctx context.Context, r upload.Request) (upload.Result, error) {
			uploads.Add(1)
			return upload.Result{}, &upload.DeniedError{Right: acl.Insert, Folder: strings.Join(r.Folder, "/"), Why: "add events"}
		}
	})
	for _, p := range []string{"/freebusy/alice.vfb", "/freebusy/nobody.vfb", "/calendar/alice.ics", "/freebusy/user/alice"} {
		r := s.do(t, "GET", p)
		if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("anonymous GET %s = %d (WWW-Authenticate %q), want 401 with a challenge", p, r.code, r.hdr.Get("WWW-Authenticate"))
		}
	}
	if n := s.sourceCalls(); n != 0 {
		t.Errorf("anonymous requests made %d calls of the source; want none", n)
	}

	r := s.do(t, "GET", "/calendar/alice/Calendar.ics", basic("alice", "guess")...)
	if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.hdr.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("wrong password: %d, WWW-Authenticate %q; want 401 with a Basic challenge", r.code, r.hdr.Get("WWW-Authenticate"))
	}
	r = s.do(t, "GET", "/calendar/alice/Calendar.ics", basic("ALICE", testbed.Password("alice"))...)
	if r.code != 200 || !strings.Contains(r.body, "SUMMARY:Planning") || !strings.HasPrefix(r.hdr.Get("Cache-Control"), "private") {
		t.Errorf("the owner: %d, Cache-Control %q:\n%s", r.code, r.hdr.Get("Cache-Control"), r.body)
	}
	r = s.do(t, "GET", "/calendar/alice/Calendar.ics", basic("bob", testbed.Password("bob"))...)
	if r.code != 200 || strings.Contains(r.body, "Planning") || !strings.Contains(r.body, "SUMMARY:Busy") {
		t.Errorf("bob, without a grant: %d:\n%s", r.code, r.body)
	}

	cal := ics("u1", "Lunch", "20250310T120000Z", "20250310T130000Z")
	put := func(hdr ...string) response {
		t.Helper()
		req, err := http.NewRequest("PUT", s.URL+"/calendar/alice/Calendar.ics", strings.NewReader(cal))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/calendar")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return response{resp.StatusCode, resp.Header, string(b)}
	}
	if r := put(); r.code != http.StatusUnauthorized || uploads.Load() != 0 {
		t.Errorf("anonymous PUT: %d after %d uploads, want 401 and none", r.code, uploads.Load())
	}
	if r := put(basic("bob", testbed.Password("bob"))...); r.code != http.StatusForbidden || !strings.Contains(r.body, "right on Calendar") {
		t.Errorf("PUT refused for a right: %d %q, want 403 saying which right", r.code, r.body)
	}
}

// TestConditionalUnit: entity tags and Last-Modified, 304 for a tag the
// client holds, HEAD without a body, and gzip for a large answer with its
// own tag.
func TestConditionalUnit(t *testing.T) {
	s := setupUnit(t, 2*time.Second, nil)
	r := s.do(t, "GET", "/calendar/alice/Calendar.ics")
	for k, want := range map[string]string{
		"Content-Type":           "text/calendar; charset=utf-8",
		"Cache-Control":          "max-age=2",
		"Content-Disposition":    "inline; filename=Calendar.ics",
		"Vary":                   "Authorization, Accept-Encoding",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := strings.Join(r.hdr.Values(k), ", "); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if id := r.hdr.Get("X-Request-ID"); !regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-f]+$`).MatchString(id) {
		t.Errorf("X-Request-ID = %q, want a process prefix and a counter", id)
	}
	etag, lm := r.hdr.Get("ETag"), r.hdr.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || lm == "" {
		t.Fatalf("ETag %q, Last-Modified %q", etag, lm)
	}
	notModified := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "not_modified"))
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "If-None-Match", etag); r.code != 304 || r.body != "" {
		t.Errorf("If-None-Match: %d %q, want 304 and no body", r.code, r.body)
	}
	if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("calendar", "not_modified")) - notModified; got != 1 {
		t.Errorf("a 304 counted %v times as not_modified, want 1", got)
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "If-Modified-Since", lm); r.code != 304 {
		t.Errorf("If-Modified-Since: %d, want 304", r.code)
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "If-None-Match", `"other"`); r.code != 200 {
		t.Errorf("If-None-Match with another tag: %d, want 200", r.code)
	}
	if r := s.do(t, "HEAD", "/calendar/alice/Calendar.ics"); r.code != 200 || r.body != "" || r.hdr.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, body %q, Content-Length %q", r.code, r.body, r.hdr.Get("Content-Length"))
	}

	// A new event moves the folder's state, and with it the tag (on a
	// handler that checks the states at every request).
	fresh := setupUnit(t, 0, nil)
	before := fresh.do(t, "GET", "/calendar/alice/Calendar.ics")
	fresh.src.Append(feedtest.Name("alice", "Calendar"), testbed.CalendarMessage("m", ics("m1", "More", "20250311T090000Z", "20250311T100000Z")))
	if after := fresh.do(t, "GET", "/calendar/alice/Calendar.ics", "If-None-Match", before.hdr.Get("ETag")); after.code != 200 || after.hdr.Get("ETag") == before.hdr.Get("ETag") {
		t.Errorf("after a change, If-None-Match with the old tag: %d, ETag %q (was %q); want 200 and a new tag", after.code, after.hdr.Get("ETag"), before.hdr.Get("ETag"))
	}

	plain := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics")
	gz := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip, deflate")
	if gz.hdr.Get("Content-Encoding") != "gzip" || gz.hdr.Get("ETag") == plain.hdr.Get("ETag") {
		t.Fatalf("gzip: Content-Encoding %q, ETag %q (plain %q)", gz.hdr.Get("Content-Encoding"), gz.hdr.Get("ETag"), plain.hdr.Get("ETag"))
	}
	zr, err := gzip.NewReader(strings.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); string(unzipped) != plain.body {
		t.Errorf("gzipped body differs from the plain one")
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip;q=0"); r.hdr.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 still got %q", r.hdr.Get("Content-Encoding"))
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "Accept-Encoding", "gzip"); r.hdr.Get("Content-Encoding") != "" {
		t.Errorf("a small answer was gzipped")
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar/Big.ics", "Accept-Encoding", "gzip", "If-None-Match", gz.hdr.Get("ETag")); r.code != 304 {
		t.Errorf("If-None-Match with the gzip tag: %d, want 304", r.code)
	}
}

// TestBadNamesUnit: names that are not valid are refused with 400 before
// the cache asks the source anything.
func TestBadNamesUnit(t *testing.T) {
	s := setupUnit(t, time.Hour, nil)
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
		before := s.sourceCalls()
		if r := s.do(t, "GET", path); r.code != http.StatusBadRequest {
			t.Errorf("GET %s = %d %q, want 400", path, r.code, r.body)
		}
		if got := s.sourceCalls() - before; got != 0 {
			t.Errorf("GET %s made %d calls of the source, want 0", path, got)
		}
	}
}

// TestOutageUnit: while the source cannot be read, a request gets the last
// answer with X-Fbpub-Stale and a Warning, the same tag, counted stale;
// an owner never read gets 503 with Retry-After.
func TestOutageUnit(t *testing.T) {
	s := setupUnit(t, 0, nil)
	fresh := s.do(t, "GET", "/freebusy/alice.vfb")
	if fresh.code != 200 || fresh.hdr.Get("X-Fbpub-Stale") != "" {
		t.Fatalf("fresh: %d, X-Fbpub-Stale %q", fresh.code, fresh.hdr.Get("X-Fbpub-Stale"))
	}
	s.src.AddFolder("bob", "Calendar", "lr")
	s.src.Fail(errors.New("connection refused"))
	stale := s.do(t, "GET", "/freebusy/alice.vfb")
	if stale.code != 200 || stale.body != fresh.body || stale.hdr.Get("X-Fbpub-Stale") != "1" || stale.hdr.Get("Warning") != `110 fbpub "Response is Stale"` || stale.hdr.Get("ETag") != fresh.hdr.Get("ETag") {
		t.Errorf("stale: %d, X-Fbpub-Stale %q, Warning %q, ETag %q (fresh %q)", stale.code, stale.hdr.Get("X-Fbpub-Stale"), stale.hdr.Get("Warning"), stale.hdr.Get("ETag"), fresh.hdr.Get("ETag"))
	}
	if got := testutil.ToFloat64(s.m.CacheRequests.WithLabelValues("freebusy", "stale")); got != 1 {
		t.Errorf("stale answers counted %v times, want 1", got)
	}
	if r := s.do(t, "GET", "/freebusy/bob.vfb"); r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" {
		t.Errorf("an owner never read, during the outage: %d, Retry-After %q; want 503 with Retry-After", r.code, r.hdr.Get("Retry-After"))
	}
	s.src.Fail(nil)
	if r := s.do(t, "GET", "/freebusy/alice.vfb"); r.code != 200 || r.hdr.Get("X-Fbpub-Stale") != "" {
		t.Errorf("after the outage: %d, X-Fbpub-Stale %q", r.code, r.hdr.Get("X-Fbpub-Stale"))
	}
}

// TestTriggerUnit: with a long check interval a new event is not seen
// until the Kolab trigger URL forces a check of its owner.
func TestTriggerUnit(t *testing.T) {
	s := setupUnit(t, time.Hour, nil)
	s.do(t, "GET", "/freebusy/alice.vfb")
	s.src.Append(feedtest.Name("alice", "Calendar"), testbed.CalendarMessage("n", ics("n1", "New", "20250310T090000Z", "20250310T100000Z")))
	if r := s.do(t, "GET", "/freebusy/alice.vfb"); strings.Contains(r.body, "20250310T090000Z") {
		t.Fatalf("new event seen before the interval passed: the test proves nothing")
	}
	if r := s.do(t, "GET", "/freebusy/trigger/alice/Calendar.pfb"); r.code != 200 || !strings.Contains(r.body, "FREEBUSY;FBTYPE=BUSY:20250310T090000Z/20250310T100000Z") {
		t.Errorf("trigger: %d\n%s", r.code, r.body)
	}
	if r := s.do(t, "GET", "/freebusy/alice.vfb"); !strings.Contains(r.body, "20250310T090000Z") {
		t.Errorf("after the trigger, .vfb still lacks the new event")
	}
	if r := s.do(t, "GET", "/freebusy/trigger/alice/Nope.pfb"); r.code != 404 {
		t.Errorf("trigger for an unknown folder: %d, want 404", r.code)
	}
}
