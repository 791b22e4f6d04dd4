package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/metrics"
)

// Requesters are anonymous, or a user who proved a password with HTTP
// Basic: fbpub checks it by logging in to the same IMAP server as that
// user (Options.Verify), so the server stays the authority on who is who,
// and on how the name is spelt (servers may fold "BOB" to "bob").
//
// Verified credentials are remembered for a few minutes under a keyed
// hash of user and password (never the password itself), in a bounded
// map. A failed attempt is remembered too. So that guessing cannot turn
// fbpub into a way to hammer the IMAP server, nor get fbpub's own address
// penalised by it, credentials not already known are checked only:
//
//   - a moment after the last failure of the same user name;
//   - while the client's address (per IPv4 address or IPv6 /64) has
//     failed fewer than LoginLimits.PerAddress times in the last minute
//     (else 429);
//   - while all clients together have failed fewer than
//     LoginLimits.Global times in the last minute (else 503);
//   - by at most LoginLimits.Concurrent checks at once; a request beyond
//     waits up to LoginLimits.Wait for a turn, then gets 503. Requests
//     with the same credentials share one check.
//
// Throttled answers carry Retry-After. The client's address goes to the
// IMAP server with the check (Credentials.Client), for its own throttling.
//
// With Options.Shared (replicas sharing a Redis), the failures are counted
// in Redis: by user name, by address and globally, the limits hold for all
// the replicas together, as if they were one. While Redis is unreachable
// each replica counts its own (internal/shared's local fallback).

// Credentials are what a requester presented, for Options.Verify.
type Credentials struct {
	User, Password string
	// Client is the requester's address: the connection's peer, or the
	// address a trusted proxy forwarded (X-Forwarded-For); invalid when
	// unknown.
	Client netip.Addr
}

// Verified is Options.Verify's answer.
type Verified struct {
	// OK says the server accepted the credentials.
	OK bool
	// User is the login as the server spells the identity it
	// authenticated ("bob" for "BOB" on a server that folds case), or ""
	// when that could not be learned; then fbpub evaluates the name as
	// typed fail-closed (acl.Requester.Confirmed).
	User string
}

// LoginLimits bound the credential checks of Options.Verify. Zero fields
// take the defaults.
type LoginLimits struct {
	// Concurrent is the most checks under way at once (default 4).
	Concurrent int
	// Wait is how long a check waits for a turn (default 2 s).
	Wait time.Duration
	// PerAddress is how many failed logins a client address may make in
	// a minute before its further attempts are refused (default 10).
	PerAddress int
	// Global is how many failed logins all clients together may make in
	// a minute before attempts with unknown credentials are refused
	// (default 60).
	Global int
}

// DefaultLoginLimits are the limits a zero LoginLimits stands for.
var DefaultLoginLimits = LoginLimits{Concurrent: 4, Wait: 2 * time.Second, PerAddress: 10, Global: 60}

func (l LoginLimits) withDefaults() LoginLimits {
	d := DefaultLoginLimits
	if l.Concurrent > 0 {
		d.Concurrent = l.Concurrent
	}
	if l.Wait > 0 {
		d.Wait = l.Wait
	}
	if l.PerAddress > 0 {
		d.PerAddress = l.PerAddress
	}
	if l.Global > 0 {
		d.Global = l.Global
	}
	return d
}

const (
	authTTL     = 5 * time.Minute
	failTTL     = 10 * time.Second
	failPause   = time.Second
	failWindow  = time.Minute
	maxVerified = 10000
)

type verifier struct {
	verify  func(ctx context.Context, c Credentials) (Verified, error)
	limits  LoginLimits
	key     []byte
	metrics *metrics.Metrics
	// slots holds a token per check under way.
	slots chan struct{}
	group singleflight.Group

	mu sync.Mutex
	// known maps a keyed hash of user and password to when its answer
	// expires, whether it was right and the server's spelling of the
	// user; guarded by mu.
	known map[[32]byte]verdict
	// lastFail is when each user name last failed; guarded by mu.
	lastFail map[string]time.Time
	// byAddr counts the recent failures of each client address (IPv6 by
	// /64), and global those of all; guarded by mu.
	byAddr map[netip.Prefix]*failures
	global failures
	// shared, when not nil, counts the failures across replicas instead
	// of lastFail, byAddr and global, which then stay empty.
	shared *sharedFailures
}

// sharedFailures are the failed-login counts replicas share: by user name
// (a window of failPause), by client address and of all clients (windows
// of failWindow). Safe for concurrent use.
type sharedFailures struct {
	user, addr, global *shared.Throttle
}

type verdict struct {
	ok      bool
	user    string // the server's spelling; "" when unknown
	expires time.Time
}

// failures counts failed logins in a fixed window of failWindow.
type failures struct {
	start time.Time
	n     int
}

// add counts a failure at now.
func (f *failures) add(now time.Time) {
	if now.Sub(f.start) >= failWindow {
		f.start, f.n = now, 0
	}
	f.n++
}

// over reports whether the failures reach limit at now, and until when.
func (f *failures) over(now time.Time, limit int) (bool, time.Duration) {
	if f == nil || now.Sub(f.start) >= failWindow || f.n < limit {
		return false, 0
	}
	return true, f.start.Add(failWindow).Sub(now)
}

// newVerifier makes the verifier of Options.Verify; sc, when not nil,
// shares its failure counts with the other replicas.
func newVerifier(verify func(ctx context.Context, c Credentials) (Verified, error), limits LoginLimits, m *metrics.Metrics, sc *shared.Client) *verifier {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	limits = limits.withDefaults()
	v := &verifier{
		verify: verify, limits: limits, key: key, metrics: m, slots: make(chan struct{}, limits.Concurrent),
		known: map[[32]byte]verdict{}, lastFail: map[string]time.Time{}, byAddr: map[netip.Prefix]*failures{},
	}
	if sc != nil {
		v.shared = &sharedFailures{
			user:   sc.Throttle("login-user", failPause),
			addr:   sc.Throttle("login-address", failWindow),
			global: sc.Throttle("login-global", failWindow),
		}
	}
	return v
}

// errUnauthorized asks the client for credentials.
var errUnauthorized = &httpError{code: http.StatusUnauthorized, msg: "wrong user name or password"}

// identity is who asks: anonymous (user ""), or a user, with the name as
// typed and as fbpub evaluates it.
type identity struct {
	// user is the login as the server spells it when confirmed, else as
	// given (typed, or from the user header).
	user string
	// typed is the name the client gave.
	typed string
	// confirmed says user is the server's spelling.
	confirmed bool
}

// requester returns who asks: user "" for anonymous. Wrong credentials
// are an error (401), as is trying again too soon after failures (429), or
// while fbpub cannot check credentials (503).
func (h *Handler) requester(r *http.Request) (identity, error) {
	if h.opts.UserHeader != "" {
		if v := r.Header.Get(h.opts.UserHeader); v != "" && h.fromTrustedProxy(r) {
			// A proxy that adds its header after the one a client sent
			// would have the client's believed: twice is refused.
			if len(r.Header.Values(h.opts.UserHeader)) > 1 {
				return identity{}, badRequest("%s: given more than once", h.opts.UserHeader)
			}
			if checkName(v, maxUser) != nil {
				return identity{}, badRequest("%s: not a user name", h.opts.UserHeader)
			}
			// The proxy's spelling may not be the server's.
			return identity{user: v, typed: v}, nil
		}
	}
	// Most requesters are anonymous: the canonical key, looked up
	// directly (Header.Get and BasicAuth canonicalise it every time).
	if v := r.Header["Authorization"]; len(v) == 0 || v[0] == "" {
		return identity{}, nil
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		if r.Header.Get("Authorization") != "" {
			return identity{}, badRequest("only HTTP Basic authentication is understood")
		}
		return identity{}, nil
	}
	v := h.auth
	if v == nil || user == "" || checkName(user, maxUser) != nil {
		return identity{}, errUnauthorized
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	d, err := v.check(r.Context(), k, Credentials{User: user, Password: pass, Client: h.clientAddr(r)})
	if err != nil {
		return identity{}, err
	}
	if !d.ok {
		return identity{}, errUnauthorized
	}
	if d.user != "" {
		return identity{user: d.user, typed: user, confirmed: true}, nil
	}
	return identity{user: user, typed: user}, nil
}

// viewer returns who asks, for the cache's access policy: anonymous, a
// user proved by HTTP Basic against IMAP, or a user named by a trusted
// reverse proxy. An answer that depends on credentials is private: shared
// caches must not keep it. When free/busy is not public, an anonymous
// requester is asked to log in before anything is looked up, so the
// answer is the same for every name.
func (h *Handler) viewer(w http.ResponseWriter, r *http.Request) (acl.Requester, error) {
	hd := w.Header()
	if hd["Vary"] == nil {
		hd["Vary"] = varyAuthorization
	} else {
		hd.Add("Vary", "Authorization")
	}
	who, err := h.requester(r)
	if err != nil {
		return acl.Requester{}, err
	}
	if who.user == "" {
		if h.opts.Policy.Challenges() {
			return acl.Requester{}, &httpError{code: http.StatusUnauthorized, msg: "log in to see free/busy times"}
		}
		return acl.Requester{Anonymous: true}, nil
	}
	hd["Cache-Control"] = h.privateCacheControl
	return who.requester(h.opts.Groups), nil
}

// requester is who as the access policy sees it: the server's spelling
// and its groups when confirmed, else the name as given, which the policy
// evaluates fail-closed.
func (who identity) requester(g acl.Groups) acl.Requester {
	r := g.Requester(who.user)
	r.Confirmed = who.confirmed
	return r
}

// check returns the verdict on the credentials c whose keyed hash is k:
// remembered, or asked of the server if the limits allow.
func (v *verifier) check(ctx context.Context, k [32]byte, c Credentials) (verdict, error) {
	now := time.Now()
	v.mu.Lock()
	d, ok := v.known[k]
	v.mu.Unlock()
	if ok && now.Before(d.expires) {
		return d, nil
	}
	if err := v.limited(ctx, now, c); err != nil {
		return verdict{}, err
	}

	// One check per credentials at a time: the others wait for it, each
	// as long as its own request lasts.
	ch := v.group.DoChan(string(k[:]), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return v.run(ctx, k, c)
	})
	select {
	case <-ctx.Done():
		return verdict{}, context.Cause(ctx)
	case res := <-ch:
		if res.Err != nil {
			return verdict{}, res.Err
		}
		return res.Val.(verdict), nil
	}
}

// limited returns the error that refuses a check of c at now, or nil.
// v.mu must not be held.
func (v *verifier) limited(ctx context.Context, now time.Time, c Credentials) error {
	if v.shared != nil {
		return v.sharedLimited(ctx, c)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if t, ok := v.lastFail[c.User]; ok && now.Sub(t) < failPause {
		return v.throttledUser(failPause - now.Sub(t))
	}
	if over, wait := v.byAddr[addrKey(c.Client)].over(now, v.limits.PerAddress); over {
		return v.throttledAddress(wait)
	}
	if over, wait := v.global.over(now, v.limits.Global); over {
		return v.throttledGlobal(wait)
	}
	return nil
}

// sharedLimited is limited on the counts replicas share.
func (v *verifier) sharedLimited(ctx context.Context, c Credentials) error {
	f := v.shared
	if n, wait := f.user.Count(ctx, c.User); n > 0 {
		return v.throttledUser(wait)
	}
	if n, wait := f.addr.Count(ctx, addrKey(c.Client).String()); n >= int64(v.limits.PerAddress) {
		return v.throttledAddress(wait)
	}
	if n, wait := f.global.Count(ctx, ""); n >= int64(v.limits.Global) {
		return v.throttledGlobal(wait)
	}
	return nil
}

// The refusals of limited, counted, each with its Retry-After.
func (v *verifier) throttledUser(wait time.Duration) error {
	v.metrics.LoginChecks.WithLabelValues("throttled_user").Inc()
	return &httpError{code: http.StatusTooManyRequests, msg: "too many failed attempts, try again later", retryAfter: max(wait, time.Millisecond)}
}

func (v *verifier) throttledAddress(wait time.Duration) error {
	v.metrics.LoginChecks.WithLabelValues("throttled_address").Inc()
	return &httpError{code: http.StatusTooManyRequests, msg: "too many failed attempts from your address, try again later", retryAfter: max(wait, time.Millisecond)}
}

func (v *verifier) throttledGlobal(wait time.Duration) error {
	v.metrics.LoginChecks.WithLabelValues("throttled_global").Inc()
	return &httpError{code: http.StatusServiceUnavailable, msg: "too many failed logins, try again later", retryAfter: max(wait, time.Millisecond)}
}

// run asks the server about c, within the bound on concurrent checks,
// and remembers the answer. The limits are checked again once a turn
// comes: failures may have been counted while c waited.
func (v *verifier) run(ctx context.Context, k [32]byte, c Credentials) (verdict, error) {
	timer := time.NewTimer(v.limits.Wait)
	defer timer.Stop()
	select {
	case v.slots <- struct{}{}:
	case <-timer.C:
		v.metrics.LoginChecks.WithLabelValues("busy").Inc()
		return verdict{}, &httpError{code: http.StatusServiceUnavailable, msg: "too many logins under way, try again later", retryAfter: time.Second}
	case <-ctx.Done():
		return verdict{}, context.Cause(ctx)
	}
	defer func() { <-v.slots }()
	if err := v.limited(ctx, time.Now(), c); err != nil {
		return verdict{}, err
	}
	res, err := v.verify(ctx, c)
	if err != nil {
		// Not an answer about the password: nothing is remembered.
		v.metrics.LoginChecks.WithLabelValues("error").Inc()
		return verdict{}, &httpError{code: http.StatusServiceUnavailable, msg: "cannot check credentials now, try again later", cause: err}
	}
	now := time.Now()
	if !res.OK && v.shared != nil {
		// Counted for every replica; ctx is the detached check's.
		v.shared.user.Add(ctx, c.User)
		v.shared.addr.Add(ctx, addrKey(c.Client).String())
		v.shared.global.Add(ctx, "")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.known) >= maxVerified {
		for key, d := range v.known {
			if now.After(d.expires) {
				delete(v.known, key)
			}
		}
		if len(v.known) >= maxVerified {
			clear(v.known)
		}
	}
	d := verdict{ok: res.OK, expires: now.Add(authTTL)}
	if res.OK {
		v.metrics.LoginChecks.WithLabelValues("ok").Inc()
		d.user = res.User
	} else {
		v.metrics.LoginChecks.WithLabelValues("refused").Inc()
		d.expires = now.Add(failTTL)
		v.known[k] = d
		if v.shared != nil {
			return d, nil
		}
		v.lastFail[c.User] = now
		if len(v.lastFail) > maxVerified {
			clear(v.lastFail)
		}
		key := addrKey(c.Client)
		f := v.byAddr[key]
		if f == nil {
			if len(v.byAddr) >= maxVerified {
				for p, f := range v.byAddr {
					if now.Sub(f.start) >= failWindow {
						delete(v.byAddr, p)
					}
				}
			}
			f = &failures{}
			v.byAddr[key] = f
		}
		f.add(now)
		v.global.add(now)
	}
	v.known[k] = d
	return d, nil
}

// addrKey is the throttling key of a client address: the address itself
// for IPv4, its /64 for IPv6 (where one client commonly holds a whole
// /64), and the zero prefix when the address is unknown.
func addrKey(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// fromTrustedProxy reports whether r came straight from one of the
// configured reverse proxies, whose user header is believed.
func (h *Handler) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	return h.trusted(ap.Addr())
}

func (h *Handler) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr returns the requester's address: the connection's peer, or,
// when that is a trusted proxy, the last address of X-Forwarded-For that
// is not itself a trusted proxy (what the nearest untrusted hop said is
// believed; anything further left the client could have written).
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !h.trusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// Not an address: what lies beyond it cannot be trusted.
			return addr
		}
		addr = a.Unmap()
		if !h.trusted(addr) {
			return addr
		}
	}
	return addr
}
