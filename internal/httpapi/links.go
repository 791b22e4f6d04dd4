package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/shared"
)

// Secret free/busy links, for clients that cannot be relied on to send
// credentials (Outlook's Internet Free/Busy). An owner creates one with
// POST /freebusy/links (HTTP Basic as the owner), lists them with GET
// /freebusy/links and revokes one with DELETE /freebusy/links/<id>.
// /freebusy/s/<token>.vfb (or .ifb) then answers the owner's free/busy,
// the busy view, to anyone holding the URL, whatever the access policy
// says, and nothing else.
//
// A token is the owner's login (base64url, so that the link can be
// resolved by reading one owner's record instead of everyone's), a dot,
// and 192 random bits (base64url). Only its SHA-256 is stored, in the
// owner's record (LinkStore); the owner's login in the token gives away
// nothing its free/busy, which names the owner, does not.

// LinkStore keeps owners' records of secret links where IMAP keeps the
// owner's data (package imapstore: a METADATA entry of a folder of the
// owner's shared with the proxy alone), so that links survive restarts
// and every replica sees the same ones. Its reads and writes return an
// error wrapping errors.ErrUnsupported where the store cannot keep links
// (an IMAP server without METADATA).
type LinkStore struct {
	// Read returns owner's record as the proxy reads it; nil when there
	// is none.
	Read func(ctx context.Context, owner string) ([]byte, error)
	// Dial logs in as user, with the password of their request, for
	// their own writes: the server's ACLs decide, as for uploads.
	Dial func(ctx context.Context, user, password string) (LinkSession, error)
	// Proxy is the proxy's login, to be granted the reading of records.
	Proxy string
	// TTL is how long a resolved token is trusted before the record is
	// read again (the check interval): a revoked link stops working on
	// every replica within it.
	TTL time.Duration
	// BaseURL is the public URL of fbpub ("https://fb.example.org"),
	// which new links start with; empty takes the request's scheme and
	// Host.
	BaseURL string
}

// LinkSession is an owner's own IMAP session (imapstore.Session).
type LinkSession interface {
	// Links returns owner's record; nil when there is none.
	Links(ctx context.Context, owner string) ([]byte, error)
	// SetLinks writes the session user's record (empty removes it),
	// granting proxy the right to read it.
	SetLinks(ctx context.Context, proxy string, value []byte) error
	Close() error
}

// Bounds and pauses of links.
const (
	// maxLinks is how many links an owner may hold at once.
	maxLinks = 20
	// tokenBytes is the randomness of a token: 192 bits.
	tokenBytes = 24
	// maxTokenFailures is how many wrong tokens are looked up per
	// failPause, from all clients together; beyond it, unknown tokens get
	// 429 until the pause is over.
	maxTokenFailures = 20
	// maxResolved bounds the cache of resolved tokens.
	maxResolved = 10000
)

// linkRecord is the stored form of an owner's links: JSON, with the
// SHA-256 of each token, never the token.
type linkRecord struct {
	Version int        `json:"version"`
	Links   []linkItem `json:"links"`
}

type linkItem struct {
	ID      string    `json:"id"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// links is the handler's state for secret links.
type links struct {
	store LinkStore
	// edits serializes, per owner (by hash), the read-modify-write of a
	// record within this process. Replicas share no lock: two owners'
	// sessions writing at once on two replicas may lose one of the two
	// new links, which the owner's list then does not show.
	edits [64]sync.Mutex
	seed  maphash.Seed

	mu sync.Mutex
	// resolved maps the SHA-256 of a token to its owner, trusted until a
	// TTL after it was read, and known to have been a link after that,
	// until it no longer resolves; guarded by mu.
	resolved map[[32]byte]resolvedToken

	throttle tokenThrottle
	// sc, when not nil, shares with the other replicas which tokens were
	// links (knownTTL).
	sc *shared.Client
}

// knownTTL is how long the replicas remember together that a token was a
// link, so that none of them throttles it (see secretFreeBusy): longer
// than Outlook's polling, renewed on every look-up of the record.
const knownTTL = 30 * 24 * time.Hour

type resolvedToken struct {
	owner, id string
	expires   time.Time
}

// newLinks makes the secret links' state; sc, when not nil, shares the
// wrong-link throttle with the other replicas.
func newLinks(store LinkStore, sc *shared.Client) *links {
	l := &links{store: store, seed: maphash.MakeSeed(), resolved: map[[32]byte]resolvedToken{},
		throttle: tokenThrottle{last: map[netip.Prefix]time.Time{}}, sc: sc}
	if sc != nil {
		l.throttle.client = sc.Throttle("link-client", failPause)
		l.throttle.global = sc.Throttle("link-global", failPause)
	}
	return l
}

// errNoLink is the answer to every wrong token: it says nothing about the
// owner named in it.
var errNoLink = notFound("not found")

// secretFreeBusy serves /freebusy/s/<token>.vfb (and .ifb): the busy view
// of the token's owner.
func (h *Handler) secretFreeBusy(w http.ResponseWriter, r *http.Request) error {
	l := h.links
	if l == nil {
		return errNoLink
	}
	token, ext := splitExt(r.PathValue("file"))
	if ext != "vfb" && ext != "ifb" {
		return errNoLink
	}
	hash := sha256.Sum256([]byte(token))
	now := h.opts.Now()
	owner, fresh, known := l.cached(hash, now)
	if !fresh {
		// A token that was a link is looked up again without asking the
		// throttle: nobody can send one without having held the link,
		// and guessing by others must not stop the links in use, which
		// Outlook fetches every few minutes, long after the TTL.
		known = known || l.knownShared(r.Context(), hash)
		client := clientPrefix(r, h)
		if !known && !l.throttle.allow(r.Context(), client, now) {
			return &httpError{code: http.StatusTooManyRequests, msg: "too many wrong links, try again later"}
		}
		var err error
		owner, err = h.resolve(r.Context(), token, hash, now)
		if errors.Is(err, errNoLink) {
			if known {
				l.unknow(r.Context(), hash)
			}
			l.throttle.fail(r.Context(), client, now)
		}
		if err != nil {
			return err
		}
	}
	user, addr, err := h.owner(owner)
	if err != nil {
		return errNoLink
	}
	// The busy view: what a requester allowed free/busy sees. Asking as
	// the owner lets every folder that counts for them in; the plain
	// .vfb does not depend on anything else about the requester.
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: user, Window: h.defaultWindowAt(h.now(w)), Organizer: addr, Zone: h.opts.Zone(user),
		Viewer: h.opts.Groups.Requester(user), OffHours: h.opts.Team.OffHours, WorkingHours: h.workingHours(user),
	})
	if errors.Is(err, feed.ErrNotFound) {
		return errNoLink
	}
	if err != nil {
		return err
	}
	// The URL is the credential: shared caches keep nothing, so that a
	// revoked link is gone from them too.
	w.Header()["Cache-Control"] = h.privateCacheControl
	w.Header().Set("Referrer-Policy", "no-referrer")
	h.serve(w, r, "freebusy", a, "freebusy."+ext)
	return nil
}

// resolve finds the owner of token by reading the record of the owner the
// token names; errNoLink when it is not one of theirs.
func (h *Handler) resolve(ctx context.Context, token string, hash [32]byte, now time.Time) (string, error) {
	l := h.links
	owner, ok := tokenOwner(token)
	if !ok {
		return "", errNoLink
	}
	raw, err := l.store.Read(ctx, owner)
	if errors.Is(err, errors.ErrUnsupported) {
		return "", errNoLink
	}
	if err != nil {
		return "", &httpError{code: http.StatusServiceUnavailable, msg: "calendar store unavailable, try again later", cause: err}
	}
	rec, err := parseLinks(raw)
	if err != nil {
		h.log.Warn("unreadable record of secret links", "owner", owner, "err", err)
		return "", errNoLink
	}
	for _, it := range rec.Links {
		want, err := hex.DecodeString(it.SHA256)
		if err == nil && subtle.ConstantTimeCompare(want, hash[:]) == 1 {
			l.remember(hash, resolvedToken{owner: owner, id: it.ID, expires: now.Add(l.store.TTL)})
			if l.sc != nil {
				l.sc.SetBlob(ctx, knownKey(hash), []byte{1}, knownTTL)
			}
			return owner, nil
		}
	}
	return "", errNoLink
}

// newToken returns a new token for owner: the owner's login and
// tokenBytes random bytes, each base64url without padding, joined by a
// dot.
func newToken(owner string) string {
	var secret [tokenBytes]byte
	_, _ = rand.Read(secret[:])
	return base64.RawURLEncoding.EncodeToString([]byte(owner)) + "." + base64.RawURLEncoding.EncodeToString(secret[:])
}

// tokenOwner returns the owner a token names, and false when it is not
// shaped like one of newToken's.
func tokenOwner(token string) (string, bool) {
	ownerPart, secret, ok := strings.Cut(token, ".")
	if !ok || len(secret) != base64.RawURLEncoding.EncodedLen(tokenBytes) || len(ownerPart) > base64.RawURLEncoding.EncodedLen(maxUser) {
		return "", false
	}
	if b, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(b) != tokenBytes {
		return "", false
	}
	o, err := base64.RawURLEncoding.DecodeString(ownerPart)
	if err != nil || checkName(string(o), maxUser) != nil {
		return "", false
	}
	return string(o), true
}

// cached returns the owner of a token resolved less than a TTL ago
// (fresh), and whether this replica resolved it before (known).
func (l *links) cached(hash [32]byte, now time.Time) (owner string, fresh, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.resolved[hash]
	if !ok {
		return "", false, false
	}
	if !now.Before(e.expires) {
		return "", false, true
	}
	return e.owner, true, true
}

// knownShared reports whether another replica resolved the token (within
// knownTTL).
func (l *links) knownShared(ctx context.Context, hash [32]byte) bool {
	if l.sc == nil {
		return false
	}
	_, ok := l.sc.GetBlob(ctx, knownKey(hash))
	return ok
}

// unknow forgets that a token was a link: it no longer resolves.
func (l *links) unknow(ctx context.Context, hash [32]byte) {
	l.mu.Lock()
	delete(l.resolved, hash)
	l.mu.Unlock()
	if l.sc != nil {
		l.sc.SetBlob(ctx, knownKey(hash), nil, time.Millisecond)
	}
}

func knownKey(hash [32]byte) string { return "link-known\x00" + hex.EncodeToString(hash[:]) }

func (l *links) remember(hash [32]byte, e resolvedToken) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.resolved) >= maxResolved {
		clear(l.resolved)
	}
	l.resolved[hash] = e
}

// forget drops owner's link id from the cache: revoked here, it stops at
// once on this replica.
func (l *links) forget(owner, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.resolved {
		if e.owner == owner && e.id == id {
			delete(l.resolved, k)
		}
	}
}

func parseLinks(raw []byte) (linkRecord, error) {
	var rec linkRecord
	if len(raw) == 0 {
		return linkRecord{Version: 1}, nil
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("links: %w", err)
	}
	if rec.Version != 1 {
		return rec, fmt.Errorf("links: unknown version %d", rec.Version)
	}
	return rec, nil
}

// linkOwner returns the requester of a link management request and the
// password of their HTTP Basic credentials, which the owner's own IMAP
// session needs.
func (h *Handler) linkOwner(r *http.Request) (user, password string, err error) {
	if h.links == nil {
		return "", "", notFound("secret links are turned off")
	}
	who, err := h.requester(r)
	if err != nil {
		return "", "", err
	}
	if who.user == "" {
		return "", "", &httpError{code: http.StatusUnauthorized, msg: "log in as the owner of the links"}
	}
	u, p, ok := r.BasicAuth()
	if !ok || u != who.typed {
		return "", "", &httpError{code: http.StatusForbidden, msg: "links are managed with HTTP Basic: fbpub writes them in your own IMAP session"}
	}
	// The record and the token name the owner as the server spells the
	// login (who.user), so that a link made as "ALICE" is alice's.
	return who.user, p, nil
}

// storeError is the answer to a failed read or write of a record.
func storeError(err error) error {
	if errors.Is(err, errors.ErrUnsupported) {
		return &httpError{code: http.StatusNotImplemented, msg: "the IMAP server cannot keep links (it lacks METADATA, RFC 5464)", cause: err}
	}
	return &httpError{code: http.StatusServiceUnavailable, msg: "calendar store unavailable, try again later", cause: err}
}

// edit runs f on user's record in their own IMAP session and writes the
// result back, serialized with the other edits of user in this process.
//
// Writing grants the proxy its right to read the record again, which
// would bring back every link in it. So when the record holds links that
// the proxy cannot read, because the owner took its grant off the folder
// to stop them all at once, those links are dropped first, and their ids
// returned: the owner stopped them, and a new link must not revive them.
func (h *Handler) edit(ctx context.Context, user, password string, f func(rec *linkRecord, dropped []string) error) (dropped []string, err error) {
	l := h.links
	mu := &l.edits[maphash.String(l.seed, user)%uint64(len(l.edits))]
	mu.Lock()
	defer mu.Unlock()
	s, err := l.store.Dial(ctx, user, password)
	if err != nil {
		return nil, &httpError{code: http.StatusServiceUnavailable, msg: "calendar store unavailable, try again later", cause: err}
	}
	defer s.Close()
	raw, err := s.Links(ctx, user)
	if err != nil {
		return nil, storeError(err)
	}
	rec, err := parseLinks(raw)
	if err != nil {
		return nil, &httpError{code: http.StatusInternalServerError, msg: "the stored links cannot be read", cause: err}
	}
	if len(rec.Links) > 0 {
		seen, err := l.store.Read(ctx, user)
		if err != nil {
			return nil, storeError(err)
		}
		if len(seen) == 0 {
			for _, it := range rec.Links {
				dropped = append(dropped, it.ID)
			}
			rec.Links = nil
		}
	}
	if err := f(&rec, dropped); err != nil {
		return nil, err
	}
	var value []byte
	if len(rec.Links) > 0 {
		if value, err = json.Marshal(rec); err != nil {
			return nil, err
		}
	}
	if err := s.SetLinks(ctx, l.store.Proxy, value); err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return nil, storeError(err)
		}
		return nil, &httpError{code: http.StatusServiceUnavailable, msg: "the links could not be stored, try again later", cause: err}
	}
	return dropped, nil
}

// createLink serves POST /freebusy/links.
func (h *Handler) createLink(w http.ResponseWriter, r *http.Request) error {
	user, password, err := h.linkOwner(r)
	if err != nil {
		return err
	}
	base, err := h.linkBase(r)
	if err != nil {
		return err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	token := newToken(user)
	hash := sha256.Sum256([]byte(token))
	item := linkItem{ID: hex.EncodeToString(idb[:]), SHA256: hex.EncodeToString(hash[:]), Created: h.opts.Now().UTC().Truncate(time.Second)}
	dropped, err := h.edit(r.Context(), user, password, func(rec *linkRecord, _ []string) error {
		if len(rec.Links) >= maxLinks {
			return &httpError{code: http.StatusConflict, msg: fmt.Sprintf("at most %d links; revoke one first", maxLinks)}
		}
		rec.Links = append(rec.Links, item)
		return nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/freebusy/links/"+item.ID)
	answer := map[string]any{"id": item.ID, "url": base + "/freebusy/s/" + token + ".vfb", "created": item.Created}
	if len(dropped) > 0 {
		answer["removed"] = dropped
		answer["note"] = "your earlier links had stopped working (fbpub's login was no longer granted the folder that keeps them); they are removed, not revived"
	}
	return writeLinkJSON(w, http.StatusCreated, answer)
}

// linkBase is the scheme and host that new links start with.
func (h *Handler) linkBase(r *http.Request) (string, error) {
	if b := h.links.store.BaseURL; b != "" {
		return strings.TrimSuffix(b, "/"), nil
	}
	if r.Host == "" {
		return "", badRequest("no Host in the request")
	}
	scheme := "http"
	if r.TLS != nil || (h.fromTrustedProxy(r) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		scheme = "https"
	}
	return scheme + "://" + r.Host, nil
}

// listLinks serves GET /freebusy/links: the requester's links, by id and
// creation time, never their tokens (which fbpub does not have).
func (h *Handler) listLinks(w http.ResponseWriter, r *http.Request) error {
	if h.links == nil {
		return notFound("secret links are turned off")
	}
	who, err := h.requester(r)
	if err != nil {
		return err
	}
	if who.user == "" {
		return &httpError{code: http.StatusUnauthorized, msg: "log in as the owner of the links"}
	}
	raw, err := h.links.store.Read(r.Context(), who.user)
	if err != nil {
		return storeError(err)
	}
	rec, err := parseLinks(raw)
	if err != nil {
		return &httpError{code: http.StatusInternalServerError, msg: "the stored links cannot be read", cause: err}
	}
	type listed struct {
		ID      string    `json:"id"`
		Created time.Time `json:"created"`
	}
	out := make([]listed, 0, len(rec.Links))
	for _, it := range rec.Links {
		out = append(out, listed{it.ID, it.Created})
	}
	slices.SortStableFunc(out, func(a, b listed) int { return a.Created.Compare(b.Created) })
	return writeLinkJSON(w, http.StatusOK, map[string]any{"links": out})
}

// deleteLink serves DELETE /freebusy/links/<id>: only the requester's own
// record is looked at, so another owner's link is not found.
func (h *Handler) deleteLink(w http.ResponseWriter, r *http.Request) error {
	user, password, err := h.linkOwner(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	_, err = h.edit(r.Context(), user, password, func(rec *linkRecord, dropped []string) error {
		i := slices.IndexFunc(rec.Links, func(it linkItem) bool { return it.ID == id })
		if i < 0 && slices.Contains(dropped, id) {
			return nil // it had stopped working; now it is gone
		}
		if i < 0 {
			return notFound("no such link")
		}
		rec.Links = slices.Delete(rec.Links, i, i+1)
		return nil
	})
	if err != nil {
		return err
	}
	h.links.forget(user, id)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func writeLinkJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, err = w.Write(append(b, '\n'))
	return err
}

// clientPrefix is who a request comes from, for throttling: its address
// (the /64 of an IPv6 address, which one client usually holds whole), or
// the last X-Forwarded-For hop when a trusted reverse proxy sent it.
func clientPrefix(r *http.Request, h *Handler) netip.Prefix {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr = ap.Addr().Unmap()
	}
	if h.fromTrustedProxy(r) {
		if v := r.Header.Values("X-Forwarded-For"); len(v) > 0 {
			hops := strings.Split(v[len(v)-1], ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1])); err == nil {
				addr = a.Unmap()
			}
		}
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, _ := addr.Prefix(bits)
	return p
}

// tokenThrottle slows down the guessing of link tokens as the verifier
// slows down the guessing of passwords: after a wrong token, the same
// client waits failPause before another unknown token is looked up; and
// at most maxTokenFailures wrong tokens are looked up per failPause from
// all clients together. Tokens already resolved are served without
// asking it. With Options.Shared both counts are those of every replica
// together (each replica's own while Redis is unreachable). It is safe for
// concurrent use.
type tokenThrottle struct {
	// client and global, when not nil, count wrong tokens across
	// replicas (windows of failPause) instead of last, since and
	// failures, which then stay empty.
	client, global *shared.Throttle

	mu sync.Mutex
	// last is when each client last sent a wrong token; guarded by mu.
	last map[netip.Prefix]time.Time
	// since is when the current global count started, failures the
	// wrong tokens counted since; guarded by mu.
	since    time.Time
	failures int
}

// allow reports whether an unknown token from client may be looked up now.
func (t *tokenThrottle) allow(ctx context.Context, client netip.Prefix, now time.Time) bool {
	if t.client != nil {
		if n, _ := t.client.Count(ctx, client.String()); n > 0 {
			return false
		}
		n, _ := t.global.Count(ctx, "")
		return n < maxTokenFailures
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[client]; ok && now.Sub(last) < failPause {
		return false
	}
	if now.Sub(t.since) >= failPause {
		t.since, t.failures = now, 0
	}
	return t.failures < maxTokenFailures
}

// fail records a wrong token from client.
func (t *tokenThrottle) fail(ctx context.Context, client netip.Prefix, now time.Time) {
	if t.client != nil {
		t.client.Add(ctx, client.String())
		t.global.Add(ctx, "")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.last) >= maxVerified {
		clear(t.last)
	}
	t.last[client] = now
	if now.Sub(t.since) >= failPause {
		t.since, t.failures = now, 0
	}
	t.failures++
}
