package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Requesters are anonymous, or a user who proved a password with HTTP
// Basic: fbpub checks it by logging in to the same IMAP server as that
// user (Options.Verify), so the server stays the authority on who is who.
//
// Verified credentials are remembered for a few minutes under a keyed
// hash of user and password (never the password itself), in a bounded
// map. A failed attempt is remembered too, and further attempts for the
// same user are refused for a moment, so that guessing cannot turn fbpub
// into a way to hammer the IMAP server.

const (
	authTTL     = 5 * time.Minute
	failTTL     = 10 * time.Second
	failPause   = time.Second
	maxVerified = 10000
)

type verifier struct {
	verify func(ctx context.Context, user, password string) (bool, error)
	key    []byte

	mu sync.Mutex
	// known maps a keyed hash of user and password to when its answer
	// expires and whether it was right; guarded by mu.
	known map[[32]byte]verdict
	// lastFail is when each user last failed; guarded by mu.
	lastFail map[string]time.Time
}

type verdict struct {
	ok      bool
	expires time.Time
}

func newVerifier(verify func(ctx context.Context, user, password string) (bool, error)) *verifier {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &verifier{verify: verify, key: key, known: map[[32]byte]verdict{}, lastFail: map[string]time.Time{}}
}

// errUnauthorized asks the client for credentials.
var errUnauthorized = &httpError{code: http.StatusUnauthorized, msg: "wrong user name or password"}

// requester returns who asks: "" for anonymous. Wrong credentials are an
// error (401), as is trying again too soon after a failure (429).
func (h *Handler) requester(r *http.Request) (string, error) {
	if h.opts.UserHeader != "" {
		if v := r.Header.Get(h.opts.UserHeader); v != "" && h.fromTrustedProxy(r) {
			if checkName(v, maxUser) != nil {
				return "", badRequest("%s: not a user name", h.opts.UserHeader)
			}
			return v, nil
		}
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		if r.Header.Get("Authorization") != "" {
			return "", badRequest("only HTTP Basic authentication is understood")
		}
		return "", nil
	}
	v := h.auth
	if v == nil || user == "" || checkName(user, maxUser) != nil {
		return "", errUnauthorized
	}
	m := hmac.New(sha256.New, v.key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	now := time.Now()
	v.mu.Lock()
	if d, ok := v.known[k]; ok && now.Before(d.expires) {
		v.mu.Unlock()
		if d.ok {
			return user, nil
		}
		return "", errUnauthorized
	}
	if t, ok := v.lastFail[user]; ok && now.Sub(t) < failPause {
		v.mu.Unlock()
		return "", &httpError{code: http.StatusTooManyRequests, msg: "too many failed attempts, try again later"}
	}
	v.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	ok, err := v.verify(ctx, user, pass)
	if err != nil {
		// Not an answer about the password: nothing is remembered.
		return "", &httpError{code: http.StatusServiceUnavailable, msg: "cannot check credentials now, try again later", cause: err}
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
	ttl := authTTL
	if !ok {
		ttl = failTTL
		v.lastFail[user] = now
		if len(v.lastFail) > maxVerified {
			clear(v.lastFail)
		}
	}
	v.known[k] = verdict{ok: ok, expires: now.Add(ttl)}
	if !ok {
		return "", errUnauthorized
	}
	return user, nil
}

// fromTrustedProxy reports whether r came straight from one of the
// configured reverse proxies, whose user header is believed.
func (h *Handler) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
