package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// linkTTL is the check interval of the link tests.
const linkTTL = time.Minute

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// linkServer is one replica of fbpub with secret links, against srv.
type linkServer struct {
	*server
	clock *clock
	reg   *prometheus.Registry
}

// seedLinks gives alice a calendar with a summary that must never show
// in a link, shared for free/busy with carol ("l": free/busy only, under
// access.freebusy = "acl"), and bob a calendar of his own.
func seedLinks(t *testing.T, srv *testbed.Server) {
	t.Helper()
	srv.Reset(t)
	for _, owner := range []string{"alice", "bob"} {
		srv.CreateFolder(t, owner, "Calendar")
		srv.SetACL(t, owner, "Calendar", testbed.Proxy, "lra")
	}
	srv.SetACL(t, "alice", "Calendar", "carol", "l")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("a", ics("alice-secret", "Merger talks", "20250303T090000Z", "20250303T100000Z")))
	srv.Append(t, "bob", "Calendar", testbed.CalendarMessage("b", ics("bob-1", "Dentist", "20250304T090000Z", "20250304T100000Z")))
}

// newLinkServer starts a replica: its own proxy pool, cache and handler,
// with free/busy by ACL and a reverse proxy trusted on loopback (for the
// throttle's client addresses).
func newLinkServer(t *testing.T, srv *testbed.Server) *linkServer {
	t.Helper()
	return newLinkServerShared(t, srv, nil)
}

// newLinkServerShared is newLinkServer for a replica sharing state
// through sc (nil: none).
func newLinkServerShared(t *testing.T, srv *testbed.Server, sc *shared.Client) *linkServer {
	t.Helper()
	s := &linkServer{server: &server{srv: srv}, clock: &clock{t: time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)}}
	pool := imapstore.NewPool(imapstore.Options{
		Addr: srv.Addr, TLS: imapstore.TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(string, error, time.Duration) { s.mu.Lock(); s.imap++; s.mu.Unlock() },
	}, 2)
	t.Cleanup(func() { pool.Close() })
	s.reg = prometheus.NewRegistry()
	m := metrics.New(s.reg)
	policy := &acl.Policy{FreeBusy: acl.ByACL}
	dial := func(ctx context.Context, user, password string) (*imapstore.Session, error) {
		return imapstore.Dial(ctx, imapstore.Options{Addr: srv.Addr, TLS: imapstore.TLSNone, User: user, Password: password})
	}
	h := New(Options{
		Cache:    feed.New(feed.Options{Source: pool, Policy: policy, CheckInterval: time.Minute, Metrics: m, Now: s.clock.now}),
		PastDays: 1, FutureDays: 30, MaxAge: linkTTL,
		Verify: verifyAt(srv.Addr),
		Policy: policy, MailDomain: "example.org",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Links: &LinkStore{
			Read: pool.Links,
			Dial: func(ctx context.Context, user, password string) (LinkSession, error) {
				sess, err := dial(ctx, user, password)
				if err != nil {
					return nil, err
				}
				return sess, nil
			},
			Proxy: testbed.Proxy, TTL: linkTTL,
		},
		Metrics: m, Gatherer: s.reg,
		Now:    s.clock.now,
		Shared: sc,
	})
	s.m = m
	s.server.Server = httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

type created struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

func (s *linkServer) create(t *testing.T, user string) created {
	t.Helper()
	r := s.do(t, "POST", "/freebusy/links", basicAs(user)...)
	if r.code != http.StatusCreated || r.hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /freebusy/links as %s = %d %q %s", user, r.code, r.hdr.Get("Content-Type"), r.body)
	}
	var c created
	if err := json.Unmarshal([]byte(r.body), &c); err != nil || c.ID == "" {
		t.Fatalf("POST /freebusy/links: %v in %s", err, r.body)
	}
	if !strings.HasPrefix(c.URL, s.URL+"/freebusy/s/") || !strings.HasSuffix(c.URL, ".vfb") {
		t.Fatalf("link URL %q, want %s/freebusy/s/<token>.vfb", c.URL, s.URL)
	}
	return c
}

// path is the link's path, the same on every replica; token its secret.
func (c created) path(*linkServer) string { return c.URL[strings.Index(c.URL, "/freebusy/s/"):] }
func (c created) token() string {
	return strings.TrimSuffix(strings.TrimPrefix(c.URL[strings.Index(c.URL, "/freebusy/s/"):], "/freebusy/s/"), ".vfb")
}

func (s *linkServer) list(t *testing.T, user string) []string {
	t.Helper()
	r := s.do(t, "GET", "/freebusy/links", basicAs(user)...)
	if r.code != 200 {
		t.Fatalf("GET /freebusy/links as %s = %d %s", user, r.code, r.body)
	}
	var l struct {
		Links []struct {
			ID      string    `json:"id"`
			Created time.Time `json:"created"`
		} `json:"links"`
	}
	if err := json.Unmarshal([]byte(r.body), &l); err != nil {
		t.Fatalf("GET /freebusy/links: %v in %s", err, r.body)
	}
	var ids []string
	for _, x := range l.Links {
		if x.Created.IsZero() {
			t.Errorf("link %s has no creation time: %s", x.ID, r.body)
		}
		ids = append(ids, x.ID)
	}
	return ids
}

// TestLinks runs a secret link's life on Dovecot and Cyrus, under
// access.freebusy = "acl": created by its owner, used anonymously where
// the owner's .vfb asks for a login, answering what a free/busy-only
// requester sees; listed without the token; kept only as a hash; seen by
// a second replica; not revocable by another user; revoked, gone at once
// here and within the check interval on the other replica.
func TestLinks(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			seedLinks(t, srv)
			a := newLinkServer(t, srv)
			b := newLinkServer(t, srv) // another replica, or fbpub after a restart

			if r := a.do(t, "GET", "/freebusy/alice.vfb"); r.code != http.StatusUnauthorized {
				t.Fatalf("anonymous GET /freebusy/alice.vfb = %d, want 401 under access.freebusy = acl", r.code)
			}
			if r := a.do(t, "POST", "/freebusy/links"); r.code != http.StatusUnauthorized {
				t.Errorf("anonymous POST /freebusy/links = %d, want 401", r.code)
			}
			link := a.create(t, "alice")

			got := a.do(t, "GET", link.path(a))
			if got.code != 200 || got.hdr.Get("Content-Type") != "text/calendar; charset=utf-8" {
				t.Fatalf("anonymous GET of the link = %d %q %s", got.code, got.hdr.Get("Content-Type"), got.body)
			}
			// What carol, who may see alice's free/busy and nothing else,
			// gets for alice's .vfb.
			busy := a.do(t, "GET", "/freebusy/alice.vfb", basicAs("carol")...)
			if busy.code != 200 {
				t.Fatalf("carol's GET /freebusy/alice.vfb = %d %s", busy.code, busy.body)
			}
			if got.body != busy.body {
				t.Errorf("the link answers\n%s\nwant alice's busy view, as carol sees it:\n%s", got.body, busy.body)
			}
			for _, want := range []string{"ORGANIZER:mailto:alice@example.org", "FREEBUSY;FBTYPE=BUSY:20250303T090000Z/20250303T100000Z"} {
				if !strings.Contains(got.body, want) {
					t.Errorf("the link's answer lacks %q:\n%s", want, got.body)
				}
			}
			for _, secret := range []string{"Merger", "SUMMARY", "alice-secret", "Dentist", "20250304T090000Z"} {
				if strings.Contains(got.body, secret) {
					t.Errorf("the link's answer shows %q:\n%s", secret, got.body)
				}
			}
			if cc := got.hdr.Get("Cache-Control"); !strings.HasPrefix(cc, "private") {
				t.Errorf("the link's answer has Cache-Control %q; shared caches would keep it after revocation", cc)
			}
			ifb := a.do(t, "GET", strings.TrimSuffix(link.path(a), ".vfb")+".ifb")
			if ifb.code != 200 || ifb.body != got.body {
				t.Errorf(".ifb of the link = %d %s", ifb.code, ifb.body)
			}
			if r := a.do(t, "GET", strings.TrimSuffix(link.path(a), ".vfb")+".ics"); r.code != 404 {
				t.Errorf("the link as .ics = %d, want 404: a link gives free/busy and nothing else", r.code)
			}

			// The other replica resolves it from IMAP.
			if r := b.do(t, "GET", link.path(b)); r.code != 200 || r.body != got.body {
				t.Errorf("the link on another replica = %d %s", r.code, r.body)
			}

			second := a.create(t, "alice")
			ids := a.list(t, "alice")
			if len(ids) != 2 || ids[0] != link.ID || ids[1] != second.ID {
				t.Errorf("alice's links = %v, want [%s %s]", ids, link.ID, second.ID)
			}
			if ids := a.list(t, "bob"); len(ids) != 0 {
				t.Errorf("bob's links = %v, want none", ids)
			}
			listing := a.do(t, "GET", "/freebusy/links", basicAs("alice")...)
			for _, c := range []created{link, second} {
				sum := sha256.Sum256([]byte(c.token()))
				for _, secret := range []string{c.token(), strings.SplitN(c.token(), ".", 2)[1], hex.EncodeToString(sum[:])} {
					if strings.Contains(listing.body, secret) {
						t.Errorf("the list shows %q: %s", secret, listing.body)
					}
				}
			}

			// The store holds hashes, never a token: read it raw, as alice.
			owner, err := imapstore.Dial(t.Context(), imapstore.Options{Addr: srv.Addr, TLS: imapstore.TLSNone, User: "alice", Password: testbed.Password("alice")})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := owner.Links(t.Context(), "alice")
			owner.Close()
			if err != nil || len(raw) == 0 {
				t.Fatalf("alice's record: %q, %v", raw, err)
			}
			for _, c := range []created{link, second} {
				secret := strings.SplitN(c.token(), ".", 2)[1]
				if strings.Contains(string(raw), secret) || strings.Contains(string(raw), c.token()) {
					t.Errorf("the stored record holds a token in clear: %s", raw)
				}
				sum := sha256.Sum256([]byte(c.token()))
				if !strings.Contains(string(raw), hex.EncodeToString(sum[:])) {
					t.Errorf("the stored record lacks the hash of %s: %s", c.ID, raw)
				}
			}

			// bob cannot revoke alice's link: his own record has no such id.
			if r := a.do(t, "DELETE", "/freebusy/links/"+link.ID, basicAs("bob")...); r.code != 404 {
				t.Errorf("bob's DELETE of alice's link = %d %s, want 404", r.code, r.body)
			}
			if r := a.do(t, "DELETE", "/freebusy/links/"+link.ID); r.code != 401 {
				t.Errorf("anonymous DELETE = %d, want 401", r.code)
			}
			a.clock.advance(linkTTL + time.Second)
			b.clock.advance(linkTTL + time.Second)
			if r := a.do(t, "GET", link.path(a)); r.code != 200 {
				t.Fatalf("after bob's attempt, the link = %d %s", r.code, r.body)
			}
			if r := b.do(t, "GET", link.path(b)); r.code != 200 {
				t.Fatalf("after bob's attempt, the link on the other replica = %d %s", r.code, r.body)
			}

			if r := a.do(t, "DELETE", "/freebusy/links/"+link.ID, basicAs("alice")...); r.code != http.StatusNoContent {
				t.Fatalf("alice's DELETE = %d %s, want 204", r.code, r.body)
			}
			if r := a.do(t, "GET", link.path(a)); r.code != 404 {
				t.Errorf("the revoked link on the replica that revoked it = %d, want 404", r.code)
			}
			b.clock.advance(linkTTL)
			r := b.do(t, "GET", link.path(b))
			if r.code != 404 {
				t.Errorf("the revoked link on the other replica after the check interval = %d, want 404", r.code)
			}
			if strings.Contains(r.body, "alice") {
				t.Errorf("the 404 of a revoked link names its owner: %s", r.body)
			}
			b.clock.advance(failPause) // the 404 paused this client
			if r := b.do(t, "GET", second.path(b)); r.code != 200 {
				t.Errorf("alice's other link after the revocation = %d", r.code)
			}
			if ids := a.list(t, "alice"); len(ids) != 1 || ids[0] != second.ID {
				t.Errorf("alice's links after the revocation = %v, want [%s]", ids, second.ID)
			}
			if r := a.do(t, "DELETE", "/freebusy/links/"+link.ID, basicAs("alice")...); r.code != 404 {
				t.Errorf("a second DELETE = %d, want 404", r.code)
			}

			// Requests are counted by route and code, never by user or
			// token.
			if n := testutil.ToFloat64(a.m.HTTPRequests.WithLabelValues("link", "200")); n < 3 {
				t.Errorf(`fbpub_http_requests_total{route="link",code="200"} = %v, want at least 3`, n)
			}
			if n := testutil.ToFloat64(a.m.HTTPRequests.WithLabelValues("links", "201")); n != 2 {
				t.Errorf(`fbpub_http_requests_total{route="links",code="201"} = %v, want 2`, n)
			}
			mfs, err := a.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					for _, lp := range m.GetLabel() {
						if strings.Contains(lp.GetValue(), "alice") || strings.Contains(lp.GetValue(), link.ID) || strings.Contains(lp.GetValue(), "/freebusy/s/") {
							t.Errorf("%s has label %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
						}
					}
				}
			}
		})
	}
}

// TestLinkGuessing: wrong tokens are answered 404 alike, whoever they
// name; a client that sent one waits before the next is looked up (429,
// no IMAP command), as all clients together do beyond maxTokenFailures
// per pause; links already resolved keep working meanwhile.
func TestLinkGuessing(t *testing.T) {
	srv := testbed.Get(t)
	seedLinks(t, srv)
	s := newLinkServer(t, srv)
	link := s.create(t, "alice")
	if r := s.do(t, "GET", link.path(s)); r.code != 200 {
		t.Fatalf("the link = %d", r.code)
	}
	secret := strings.SplitN(link.token(), ".", 2)[1]
	enc := base64.RawURLEncoding.EncodeToString
	wrongs := []string{
		enc([]byte("alice")) + "." + strings.Repeat("A", len(secret)), // alice, wrong secret
		enc([]byte("nobody")) + "." + secret,                          // no such owner
		enc([]byte("bob")) + "." + secret,                             // an owner without links
		"garbage",
		strings.Repeat("x", 5000),
	}
	var first response
	for i, w := range wrongs {
		from := []string{"X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i+1)}
		r := s.do(t, "GET", "/freebusy/s/"+w+".vfb", from...)
		if i == 0 {
			first = r
		}
		if r.code != 404 || r.body != first.body || strings.Contains(r.body, "alice") {
			t.Errorf("wrong token %d: %d %q, want 404 %q like the others", i, r.code, r.body, first.body)
		}
		// The same client again at once: refused before any lookup.
		before := s.commands()
		r = s.do(t, "GET", "/freebusy/s/"+w+".vfb", from...)
		if r.code != http.StatusTooManyRequests {
			t.Errorf("wrong token %d again at once = %d, want 429", i, r.code)
		}
		if n := s.commands() - before; n != 0 {
			t.Errorf("a throttled guess sent %d IMAP commands", n)
		}
		// A resolved link is not held up.
		if r := s.do(t, "GET", link.path(s), from...); r.code != 200 {
			t.Errorf("the link from a throttled client = %d, want 200", r.code)
		}
	}
	// All clients together: up to maxTokenFailures wrong tokens per
	// pause, then 429 for anyone's unknown token.
	s.clock.advance(failPause)
	wrong := "/freebusy/s/" + wrongs[0] + ".vfb"
	for i := range maxTokenFailures {
		if r := s.do(t, "GET", wrong, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)); r.code != 404 {
			t.Fatalf("wrong token %d from its own client = %d, want 404", i, r.code)
		}
	}
	if r := s.do(t, "GET", wrong, "X-Forwarded-For", "203.0.113.1"); r.code != http.StatusTooManyRequests {
		t.Errorf("wrong token beyond %d per pause = %d, want 429", maxTokenFailures, r.code)
	}
	second := s.create(t, "alice")
	if r := s.do(t, "GET", second.path(s), "X-Forwarded-For", "203.0.113.2"); r.code != http.StatusTooManyRequests {
		t.Errorf("an unresolved link while guessing is throttled = %d, want 429", r.code)
	}
	s.clock.advance(failPause)
	if r := s.do(t, "GET", second.path(s), "X-Forwarded-For", "203.0.113.2"); r.code != 200 {
		t.Errorf("a new link after the pause = %d, want 200", r.code)
	}
	// A link in use outlives its TTL, after which its owner's record is
	// read again: guessing by others does not stop it then either
	// (Outlook fetches every few minutes; the TTL is the check interval).
	s.clock.advance(linkTTL)
	for i := range maxTokenFailures {
		if r := s.do(t, "GET", wrong, "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", 100+i)); r.code != 404 {
			t.Fatalf("wrong token %d from its own client = %d, want 404", i, r.code)
		}
	}
	before := s.commands()
	if r := s.do(t, "GET", link.path(s), "X-Forwarded-For", "203.0.113.3"); r.code != 200 {
		t.Errorf("a link resolved before, past its TTL, while guessing is throttled = %d, want 200", r.code)
	}
	if s.commands() == before {
		t.Errorf("the link past its TTL was served without reading its owner's record again")
	}
	// Revoked, it is an unknown token again, and throttled as one.
	if r := s.do(t, "DELETE", "/freebusy/links/"+link.ID, basicAs("alice")...); r.code != http.StatusNoContent {
		t.Fatalf("DELETE the link = %d %s", r.code, r.body)
	}
	s.clock.advance(linkTTL)
	if r := s.do(t, "GET", link.path(s), "X-Forwarded-For", "203.0.113.4"); r.code != 404 {
		t.Errorf("the revoked link = %d, want 404", r.code)
	}
	if r := s.do(t, "GET", link.path(s), "X-Forwarded-For", "203.0.113.4"); r.code != http.StatusTooManyRequests {
		t.Errorf("the revoked link again at once = %d, want 429 like any wrong token", r.code)
	}
}

// TestLinksCutOffByGrant: an owner who takes the proxy's grant off the
// folder that keeps their links stops them all at once; the list then
// shows none; and a new link, whose writing grants the proxy again, does
// not bring them back: it removes them and says so. Revoking one of them
// then succeeds without granting anything.
func TestLinksCutOffByGrant(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			seedLinks(t, srv)
			s := newLinkServer(t, srv)
			old, other := s.create(t, "alice"), s.create(t, "alice")
			if r := s.do(t, "GET", old.path(s)); r.code != 200 {
				t.Fatalf("the link = %d", r.code)
			}
			srv.SetACL(t, "alice", imapstore.LinksFolder, testbed.Proxy, "")
			s.clock.advance(linkTTL)
			if r := s.do(t, "GET", old.path(s)); r.code != 404 {
				t.Fatalf("the link with the proxy's grant taken off = %d, want 404", r.code)
			}
			if ids := s.list(t, "alice"); len(ids) != 0 {
				t.Errorf("alice's working links = %v, want none", ids)
			}
			r := s.do(t, "POST", "/freebusy/links", basicAs("alice")...)
			var a struct {
				ID      string   `json:"id"`
				URL     string   `json:"url"`
				Removed []string `json:"removed"`
			}
			if r.code != http.StatusCreated || json.Unmarshal([]byte(r.body), &a) != nil {
				t.Fatalf("POST /freebusy/links = %d %s", r.code, r.body)
			}
			if !slices.Equal(a.Removed, []string{old.ID, other.ID}) || !strings.Contains(r.body, "not revived") {
				t.Errorf("the new link's answer says removed %v (%s), want [%s %s]", a.Removed, r.body, old.ID, other.ID)
			}
			s.clock.advance(failPause)
			if r := s.do(t, "GET", old.path(s)); r.code != 404 {
				t.Errorf("the cut-off link after a new one = %d, want 404: revived", r.code)
			}
			s.clock.advance(failPause) // that 404 paused this client
			if r := s.do(t, "GET", a.URL[strings.Index(a.URL, "/freebusy/s/"):]); r.code != 200 {
				t.Errorf("the new link = %d, want 200", r.code)
			}
			if ids := s.list(t, "alice"); !slices.Equal(ids, []string{a.ID}) {
				t.Errorf("alice's links = %v, want only the new one %s", ids, a.ID)
			}
			// Cut off again, then one revoked: 204, and nothing granted.
			srv.SetACL(t, "alice", imapstore.LinksFolder, testbed.Proxy, "")
			if r := s.do(t, "DELETE", "/freebusy/links/"+a.ID, basicAs("alice")...); r.code != http.StatusNoContent {
				t.Errorf("DELETE of a cut-off link = %d %s, want 204", r.code, r.body)
			}
			if acl := srv.GetACL(t, "alice", imapstore.LinksFolder); acl[testbed.Proxy] != "" {
				t.Errorf("revoking a cut-off link granted the proxy %q again", acl[testbed.Proxy])
			}
		})
	}
}

// fakeLinkSession is an owner's session on a server without METADATA.
type fakeLinkSession struct{}

func (fakeLinkSession) Links(context.Context, string) ([]byte, error) {
	return nil, fmt.Errorf("no METADATA: %w", errors.ErrUnsupported)
}
func (fakeLinkSession) SetLinks(context.Context, string, []byte) error {
	return fmt.Errorf("no METADATA: %w", errors.ErrUnsupported)
}
func (fakeLinkSession) Close() error { return nil }

// TestLinksUnsupported: where the IMAP server cannot keep links, managing
// them answers 501 saying why, and a link is an ordinary wrong token.
func TestLinksUnsupported(t *testing.T) {
	h := New(Options{
		Verify: func(_ context.Context, c Credentials) (Verified, error) { return Verified{OK: true, User: c.User}, nil },
		Links: &LinkStore{
			Read: func(context.Context, string) ([]byte, error) {
				return nil, fmt.Errorf("no METADATA: %w", errors.ErrUnsupported)
			},
			Dial: func(context.Context, string, string) (LinkSession, error) { return fakeLinkSession{}, nil },
		},
	})
	for _, method := range []string{"POST", "GET"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, "/freebusy/links", nil)
		r.SetBasicAuth("alice", "pw")
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNotImplemented || !strings.Contains(w.Body.String(), "METADATA") {
			t.Errorf("%s /freebusy/links = %d %q, want 501 naming METADATA", method, w.Code, w.Body)
		}
	}
	token := base64.RawURLEncoding.EncodeToString([]byte("alice")) + "." + strings.Repeat("A", 32)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/freebusy/s/"+token+".vfb", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("a link without a store = %d, want 404", w.Code)
	}

	// publish.links = false: no link works, none can be made.
	off := New(Options{Verify: func(_ context.Context, c Credentials) (Verified, error) { return Verified{OK: true, User: c.User}, nil }})
	for _, target := range []string{"POST /freebusy/links", "GET /freebusy/links", "DELETE /freebusy/links/x", "GET /freebusy/s/" + token + ".vfb"} {
		method, path, _ := strings.Cut(target, " ")
		w := httptest.NewRecorder()
		r := httptest.NewRequest(method, path, nil)
		r.SetBasicAuth("alice", "pw")
		off.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound {
			t.Errorf("with links off, %s = %d, want 404", target, w.Code)
		}
	}
}

// FuzzTokenOwner: any path segment is either refused or names an owner
// that is a valid user name; tokens fbpub makes name their owner.
func FuzzTokenOwner(f *testing.F) {
	f.Add(newToken("alice"))
	f.Add(newToken("alice.adler@example.org"))
	f.Add("YWxpY2U.")
	f.Add("garbage")
	f.Add("." + strings.Repeat("A", 32))
	f.Fuzz(func(t *testing.T, token string) {
		owner, ok := tokenOwner(token)
		if !ok {
			return
		}
		if checkName(owner, maxUser) != nil {
			t.Fatalf("tokenOwner(%q) = %q, not a user name", token, owner)
		}
		if got, ok := tokenOwner(newToken(owner)); !ok || got != owner {
			t.Fatalf("tokenOwner(newToken(%q)) = %q, %v", owner, got, ok)
		}
	})
}
