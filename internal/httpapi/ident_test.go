package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/internal/upload"
)

// TestRequesterSpelling: the test bed's Dovecot folds logins, so "BOB"
// is bob. Through HTTP Basic, fbpub learns the server's spelling and
// evaluates bob; through a trusted proxy's header it cannot, and evaluates
// every spelling the ACL knows of the name, keeping the least rights. In
// neither case does "BOB" escape "-bob r".
func TestRequesterSpelling(t *testing.T) {
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.UserHeader = "X-Remote-User"
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	srv := testbed.Get(t)
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
	srv.SetACL(t, "alice", "Calendar", "anyone", "lr")
	srv.SetACL(t, "alice", "Calendar", "-bob", "r")
	private := strings.Replace(ics("p1", "Doctor", "20250303T120000Z", "20250303T130000Z"), "SUMMARY:Doctor", "SUMMARY:Doctor\r\nCLASS:PRIVATE", 1)
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("p", private))
	for _, tc := range []struct {
		name    string
		hdr     []string
		details bool
	}{
		{"bob", basic("bob", testbed.Password("bob")), false},
		{"BOB", basic("BOB", testbed.Password("BOB")), false},
		{"header bob", []string{"X-Remote-User", "bob"}, false},
		{"header BOB", []string{"X-Remote-User", "BOB"}, false},
		{"header Bob", []string{"X-Remote-User", "Bob"}, false},
		{"carol", basic("carol", testbed.Password("carol")), true},
		{"CAROL", basic("CAROL", testbed.Password("CAROL")), true},
		{"header CAROL", []string{"X-Remote-User", "CAROL"}, true},
		{"ALICE, the owner", basic("ALICE", testbed.Password("ALICE")), true},
		{"header ALICE: not known to be the owner", []string{"X-Remote-User", "ALICE"}, true},
	} {
		r := s.do(t, "GET", "/calendar/alice/Calendar.ics", tc.hdr...)
		if r.code != http.StatusOK {
			t.Errorf("%s: GET = %d %s", tc.name, r.code, r.body)
			continue
		}
		if got := strings.Contains(r.body, "SUMMARY:Planning"); got != tc.details {
			t.Errorf("%s: details shown = %v, want %v:\n%s", tc.name, got, tc.details, r.body)
		}
	}
	// The owner sees her private events, which readers never do: only
	// the server's spelling of alice is her.
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", basic("ALICE", testbed.Password("ALICE"))...); !strings.Contains(r.body, "SUMMARY:Doctor") {
		t.Errorf("ALICE, confirmed as alice, does not get the owner's view:\n%s", r.body)
	}
	// A proxy that adds its header after the client's: neither is
	// believed.
	for _, order := range [][]string{{"alice", "bob"}, {"bob", "alice"}} {
		r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "X-Remote-User", order[0], "X-Remote-User", order[1])
		if r.code != http.StatusBadRequest || strings.Contains(r.body, "Planning") {
			t.Errorf("X-Remote-User %s, then %s: %d, want 400 and no calendar:\n%s", order[0], order[1], r.code, r.body)
		}
	}
	for _, who := range []string{"ALICE", "carol"} {
		if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", "X-Remote-User", who); strings.Contains(r.body, "SUMMARY:Doctor") || !strings.Contains(r.body, "SUMMARY:Planning") {
			t.Errorf("%s from a proxy header gets another view than a reader's:\n%s", who, r.body)
		}
	}
}

// TestUploadSpelling: an upload addresses the owner and logs in as the
// server spells them, whatever the URL and the credentials said, so that
// one folder has one name and one lock.
func TestUploadSpelling(t *testing.T) {
	var got []upload.Request
	var cache *feed.Cache
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.Upload = func(ctx context.Context, u upload.Request) (upload.Result, error) {
			got = append(got, u)
			return upload.Result{Unchanged: 1}, nil
		}
		cache = o.Cache
	})
	// fbpub serve lists the owners at start (Cache.Run); a URL's other
	// spelling of an owner is found among those, not by a look-up of its
	// own (the server would not know "ALICE"'s folders).
	if err := cache.Discover(t.Context()); err != nil {
		t.Fatal(err)
	}
	body := ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")
	for _, tc := range []struct{ path, user string }{
		{"/calendar/ALICE/Calendar.ics", "ALICE"},
		{"/calendar/Alice/Calendar.ics", "alice"},
		{"/calendar/alice/Calendar.ics", "Alice"},
	} {
		got = nil
		req, _ := http.NewRequest("PUT", s.URL+tc.path, strings.NewReader(body))
		req.SetBasicAuth(tc.user, testbed.Password(tc.user))
		req.Header.Set("Content-Type", "text/calendar")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(got) != 1 {
			t.Errorf("PUT %s as %s = %d, uploader called %d times", tc.path, tc.user, resp.StatusCode, len(got))
			continue
		}
		if got[0].Owner != "alice" || got[0].User != "alice" {
			t.Errorf("PUT %s as %s: the uploader got owner %q, user %q; want alice, alice", tc.path, tc.user, got[0].Owner, got[0].User)
		}
	}
}

// TestUploadNeedsPassword: the proxy's user header names a reader, but an
// upload writes to IMAP as the uploader and needs their password: a PUT
// with the header alone gets 401 with a Basic challenge saying so, not
// "wrong user name or password", and nothing is uploaded.
func TestUploadNeedsPassword(t *testing.T) {
	called := 0
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.UserHeader = "X-Remote-User"
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Upload = func(context.Context, upload.Request) (upload.Result, error) {
			called++
			return upload.Result{}, nil
		}
	})
	req, _ := http.NewRequest("PUT", s.URL+"/calendar/alice/Calendar.ics", strings.NewReader(ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")))
	req.Header.Set("Content-Type", "text/calendar")
	req.Header.Set("X-Remote-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") || !strings.Contains(string(b), "HTTP Basic") || called != 0 {
		t.Errorf("PUT with the user header alone: %d, WWW-Authenticate %q, %q, uploader called %d times; want 401, a Basic challenge, a word on HTTP Basic, none", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b, called)
	}
}
