package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/testbed"
)

func basic(user, password string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}
}

// countingVerify wraps o.Verify: it counts the checks and the most under
// way at once, and the client addresses they carry.
type countingVerify struct {
	calls, inFlight, most atomic.Int64
	mu                    sync.Mutex
	clients               map[netip.Addr]int // guarded by mu
}

func (cv *countingVerify) wrap(o *Options) {
	inner := o.Verify
	cv.clients = map[netip.Addr]int{}
	o.Verify = func(ctx context.Context, c Credentials) (Verified, error) {
		cv.calls.Add(1)
		n := cv.inFlight.Add(1)
		defer cv.inFlight.Add(-1)
		for {
			m := cv.most.Load()
			if n <= m || cv.most.CompareAndSwap(m, n) {
				break
			}
		}
		cv.mu.Lock()
		cv.clients[c.Client]++
		cv.mu.Unlock()
		return inner(ctx, c)
	}
}

// TestLoginStorm: 40 parallel wrong logins under ever-new names, from one
// client behind a trusted proxy, open no more IMAP logins at once than the
// bound, stop reaching IMAP once the client's address has failed its
// allowance, are answered 401, or 429/503 with Retry-After, and leave
// other clients free to log in.
func TestLoginStorm(t *testing.T) {
	limits := LoginLimits{Concurrent: 3, Wait: 3 * time.Second, PerAddress: 2, Global: 1000}
	var cv countingVerify
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Logins = limits
		cv.wrap(o)
	})
	attacker := "198.51.100.7"
	var wg sync.WaitGroup
	codes := make([]int, 40)
	for i := range codes {
		wg.Go(func() {
			hdr := append(basic(fmt.Sprintf("guess%d", i), "wrong"), "X-Forwarded-For", attacker)
			r := s.do(t, "GET", "/calendar/alice/Calendar.ics", hdr...)
			codes[i] = r.code
			switch r.code {
			case http.StatusUnauthorized:
			case http.StatusTooManyRequests, http.StatusServiceUnavailable:
				if secs, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || secs < 1 {
					t.Errorf("throttled answer %d has Retry-After %q", r.code, r.hdr.Get("Retry-After"))
				}
			default:
				t.Errorf("wrong login %d: %d %s", i, r.code, r.body)
			}
		})
	}
	wg.Wait()
	t.Logf("answers: %v; checks: %d, at most %d at once", codes, cv.calls.Load(), cv.most.Load())
	if most := cv.most.Load(); most > int64(limits.Concurrent) {
		t.Errorf("%d credential checks ran at once, want at most %d", most, limits.Concurrent)
	}
	if calls := cv.calls.Load(); calls > int64(limits.PerAddress+limits.Concurrent) {
		t.Errorf("%d credential checks reached IMAP, want at most %d (the address's allowance and those under way)", calls, limits.PerAddress+limits.Concurrent)
	}
	cv.mu.Lock()
	if len(cv.clients) != 1 || cv.clients[netip.MustParseAddr(attacker)] == 0 {
		t.Errorf("checks carried the client addresses %v, want only %s", cv.clients, attacker)
	}
	cv.mu.Unlock()

	// The attacker's address is throttled, with the right password too.
	r := s.do(t, "GET", "/calendar/alice/Calendar.ics", append(basic("bob", testbed.Password("bob")), "X-Forwarded-For", attacker)...)
	if r.code != http.StatusTooManyRequests || r.hdr.Get("Retry-After") == "" {
		t.Errorf("a login from the throttled address: %d, Retry-After %q; want 429 with Retry-After", r.code, r.hdr.Get("Retry-After"))
	}
	// Anyone else gets in.
	r = s.do(t, "GET", "/calendar/alice/Calendar.ics", append(basic("bob", testbed.Password("bob")), "X-Forwarded-For", "203.0.113.9")...)
	if r.code != http.StatusOK && r.code != http.StatusNotFound {
		t.Errorf("a legitimate login after the storm: %d %s, want an answer", r.code, r.body)
	}
	if r.code == http.StatusUnauthorized || r.code == http.StatusTooManyRequests || r.code == http.StatusServiceUnavailable {
		t.Errorf("a legitimate login after the storm was refused: %d", r.code)
	}
}

// TestLoginGlobalLimit: failures from many addresses together stop further
// checks of unknown credentials (503 with Retry-After), while credentials
// already verified still work.
func TestLoginGlobalLimit(t *testing.T) {
	var cv countingVerify
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Logins = LoginLimits{Concurrent: 4, PerAddress: 2, Global: 4}
		cv.wrap(o)
	})
	bob := append(basic("bob", testbed.Password("bob")), "X-Forwarded-For", "203.0.113.9")
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", bob...); r.code != http.StatusOK && r.code != http.StatusNotFound {
		t.Fatalf("bob before: %d %s", r.code, r.body)
	}
	for i := range 4 {
		s.do(t, "GET", "/calendar/alice/Calendar.ics", append(basic(fmt.Sprintf("guess%d", i), "wrong"), "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i))...)
	}
	before := cv.calls.Load()
	r := s.do(t, "GET", "/calendar/alice/Calendar.ics", append(basic("carol", testbed.Password("carol")), "X-Forwarded-For", "192.0.2.1")...)
	if r.code != http.StatusServiceUnavailable || r.hdr.Get("Retry-After") == "" {
		t.Errorf("a new login after the global allowance: %d, Retry-After %q; want 503 with Retry-After", r.code, r.hdr.Get("Retry-After"))
	}
	if cv.calls.Load() != before {
		t.Errorf("the refused login reached IMAP")
	}
	if r := s.do(t, "GET", "/calendar/alice/Calendar.ics", bob...); r.code != http.StatusOK && r.code != http.StatusNotFound {
		t.Errorf("bob, already verified: %d %s", r.code, r.body)
	}
}

// TestLoginShared: parallel requests with the same credentials share one
// check.
func TestLoginShared(t *testing.T) {
	var cv countingVerify
	s := setupWith(t, time.Second, func(o *Options, _ feed.Source) { cv.wrap(o) })
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { s.do(t, "GET", "/calendar/alice/Calendar.ics", basic("bob", testbed.Password("bob"))...) })
	}
	wg.Wait()
	if n := cv.calls.Load(); n > 3 {
		t.Errorf("10 parallel requests with the same credentials made %d checks", n)
	}
}

func TestClientAddr(t *testing.T) {
	h := New(Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5000", "", "192.0.2.1"},
		{"192.0.2.1:5000", "198.51.100.1", "192.0.2.1"}, // not a trusted proxy: its header is ignored
		{"10.0.0.1:5000", "", "10.0.0.1"},
		{"10.0.0.1:5000", "198.51.100.1", "198.51.100.1"},
		{"10.0.0.1:5000", "203.0.113.5, 198.51.100.1", "198.51.100.1"}, // the client wrote the first
		{"10.0.0.1:5000", "198.51.100.1, 10.0.0.2", "198.51.100.1"},    // two proxies
		{"10.0.0.1:5000", "198.51.100.1, junk", "10.0.0.1"},
		{"[::1]:5000", "2001:db8::7", "2001:db8::7"},
		{"[::ffff:192.0.2.1]:5000", "", "192.0.2.1"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := h.clientAddr(r); got.String() != tc.want {
			t.Errorf("clientAddr(%s, X-Forwarded-For %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	if got, want := addrKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")), netip.MustParsePrefix("2001:db8:1:2::/64"); got != want {
		t.Errorf("addrKey = %s, want %s", got, want)
	}
}

// TestLoginBusy: beyond the bound on concurrent checks, a request waits
// LoginLimits.Wait for a turn, then gets 503 with Retry-After; a turn that
// comes in time is taken.
func TestLoginBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int64
		h := New(Options{
			Verify: func(ctx context.Context, c Credentials) (Verified, error) {
				calls.Add(1)
				<-release
				return Verified{OK: true, User: c.User}, nil
			},
			Logins: LoginLimits{Concurrent: 1, Wait: 2 * time.Second},
		})
		ask := func(user string) (identity, error) {
			r := httptest.NewRequest("GET", "/", nil)
			r.SetBasicAuth(user, "pw")
			return h.requester(r)
		}
		first := make(chan error, 1)
		go func() { _, err := ask("alice"); first <- err }()
		synctest.Wait() // alice's check holds the only turn
		_, err := ask("bob")
		var he *httpError
		if !errors.As(err, &he) || he.code != http.StatusServiceUnavailable || he.retryAfter <= 0 {
			t.Errorf("a check beyond the bound: %v, want 503 with Retry-After", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("%d checks ran, want 1", n)
		}
		// A check that gets its turn within the wait goes ahead.
		second := make(chan error, 1)
		go func() { _, err := ask("carol"); second <- err }()
		synctest.Wait()
		time.Sleep(time.Second)
		close(release)
		if err := <-first; err != nil {
			t.Errorf("alice: %v", err)
		}
		if err := <-second; err != nil {
			t.Errorf("carol, whose turn came within the wait: %v", err)
		}
	})
}
