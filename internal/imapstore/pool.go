package imapstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Pool hands out logged-in sessions of one identity, at most Size at once,
// and replaces sessions whose connection died.
//
// Its sessions live in slots, one session each at most, so the pool never
// holds more connections than its size (which the server's limit of
// connections per user and address is planned with). Listings (LIST) go
// to a slot of their own, the last one, when the pool has two or more;
// the commands that name folders (states, details, reads) go to the first
// free slot of the others. That is what an IMAP server with thousands of
// users needs: Dovecot sets up, in a session, a namespace for each other
// user whose folder it touches (a STATUS sets up the one owner it names),
// but the first LIST of a session sets up every sharer's at once, and
// each command costs more for each namespace its session holds. So the
// sessions that read states never hold a listing's thousands, and are
// recycled after Options.RecycleAfter owners; the first free one is
// taken, so that one session serves a steady load (an imap process kept
// busy answers a command for less of the server's CPU than several idle
// ones do). bench/README.md has the figures.
type Pool struct {
	opts  Options
	slots []*slot

	mu sync.Mutex
	// failures counts consecutive failed logins and retryAt is when the
	// next may be tried: while the server is down, callers fail at once
	// instead of each one dialing it (the circuit is open). Guarded by mu.
	failures int
	retryAt  time.Time
	lastErr  error
	// features is what the last login found; guarded by mu.
	features *Features
	closed   bool // guarded by mu
	// lastFresh is when Fresh last logged in; guarded by mu.
	lastFresh time.Time
}

// slot holds at most one session. Whoever holds lock may use and replace
// s; a closed pool's Close takes the locks of idle slots.
type slot struct {
	lock chan struct{}
	s    *Session
}

// NewPool makes a pool of at most size sessions (at least one).
func NewPool(opts Options, size int) *Pool {
	size = max(size, 1)
	p := &Pool{opts: opts}
	for range size {
		p.slots = append(p.slots, &slot{lock: make(chan struct{}, 1)})
	}
	return p
}

// ErrClosed is returned by a closed pool.
var ErrClosed = errors.New("imapstore: pool closed")

// ownerSlots is how many slots serve owners' folders: all but the
// listings' slot.
func (p *Pool) ownerSlots() int { return max(len(p.slots)-1, 1) }

// listSlot is the slot of the listings (with one slot, the only one).
func (p *Pool) listSlot() *slot { return p.slots[len(p.slots)-1] }

// take locks sl, or fails when ctx ends first.
func take(ctx context.Context, sl *slot) error {
	select {
	case sl.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// tryTake locks sl if it is free.
func tryTake(sl *slot) bool {
	select {
	case sl.lock <- struct{}{}:
		return true
	default:
		return false
	}
}

// firstFree locks the first free slot of slots, or waits for the first.
func firstFree(ctx context.Context, slots []*slot) (*slot, error) {
	for _, sl := range slots {
		if tryTake(sl) {
			return sl, nil
		}
	}
	if err := take(ctx, slots[0]); err != nil {
		return nil, err
	}
	return slots[0], nil
}

// Do runs f with a session from the pool (any slot). A session whose
// connection broke during f is dropped instead of returned to the pool.
func (p *Pool) Do(ctx context.Context, f func(*Session) error) error {
	sl, err := firstFree(ctx, p.slots)
	if err != nil {
		return err
	}
	_, err = p.run(ctx, sl, f)
	return err
}

// doNamed runs f, whose commands name folders, on the first free session
// of the slots that never list. When the server refuses that session's
// login for now (a limit of connections, say), f runs on the listings'
// session if it is idle.
func (p *Pool) doNamed(ctx context.Context, f func(*Session) error) error {
	sl, err := firstFree(ctx, p.slots[:p.ownerSlots()])
	if err != nil {
		return err
	}
	ran, err := p.run(ctx, sl, f)
	if ls := p.listSlot(); !ran && ls != sl && errors.Is(err, ErrUnavailable) && tryTake(ls) {
		if ls.s != nil && !isClosed(ls.s) {
			_, err = p.run(ctx, ls, f)
			return err
		}
		<-ls.lock
	}
	return err
}

// doList runs f, which lists, on the listings' session.
func (p *Pool) doList(ctx context.Context, f func(*Session) error) error {
	sl := p.listSlot()
	if err := take(ctx, sl); err != nil {
		return err
	}
	_, err := p.run(ctx, sl, f)
	return err
}

// run runs f on sl's session, logging one in if the slot has none, and
// unlocks sl; ran says whether f ran (no session could be had, else).
// The caller holds sl's lock.
func (p *Pool) run(ctx context.Context, sl *slot, f func(*Session) error) (ran bool, err error) {
	defer func() { <-sl.lock }()
	s, err := p.session(ctx, sl)
	if err != nil {
		return false, err
	}
	err = f(s)
	p.put(sl, s)
	return true, err
}

// Features returns the server's features, logging in once if no session
// has yet.
func (p *Pool) Features(ctx context.Context) (Features, error) {
	p.mu.Lock()
	f := p.features
	p.mu.Unlock()
	if f != nil {
		return *f, nil
	}
	var out Features
	err := p.Do(ctx, func(s *Session) error { out = s.Features(); return nil })
	return out, err
}

// session returns sl's session, dialing one when it has none or its
// connection died. The caller holds sl's lock.
func (p *Pool) session(ctx context.Context, sl *slot) (*Session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if sl.s != nil && !isClosed(sl.s) {
		p.mu.Unlock()
		return sl.s, nil
	}
	if sl.s != nil {
		// Dead: dropped, without the courtesy of a LOGOUT.
		sl.s.client.Close()
		sl.s = nil
		p.connections(-1)
	}
	if wait := time.Until(p.retryAt); wait > 0 {
		err := p.lastErr
		p.mu.Unlock()
		return nil, fmt.Errorf("%w (retrying in %s): %w", ErrCircuitOpen, wait.Round(time.Millisecond), err)
	}
	p.mu.Unlock()
	s, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	sl.s = s
	return s, nil
}

// dial logs a session in, keeping the circuit breaker's count.
func (p *Pool) dial(ctx context.Context) (*Session, error) {
	s, err := Dial(ctx, p.opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, ErrAuth) {
			p.failures++
			p.retryAt = time.Now().Add(backoff(p.failures))
			p.lastErr = err
		}
		return nil, err
	}
	if p.failures > 0 && p.opts.OnReconnect != nil {
		p.opts.OnReconnect()
	}
	p.failures, p.retryAt, p.lastErr = 0, time.Time{}, nil
	p.connections(+1)
	f := s.Features()
	p.features = &f
	return s, nil
}

// ErrCircuitOpen is returned without contacting the server while it is
// considered down.
var ErrCircuitOpen = errors.New("imapstore: server down, not retrying yet")

// backoff is how long to wait after n consecutive failures: doubling from
// 100 ms up to 30 s, with up to 50 % random jitter so that many fbpub
// instances do not return to a recovering server in step.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 9)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// put keeps s in sl after use, or logs it out when the pool is closed,
// its connection died, or it is worn for its slot (see Session.worn).
// The caller holds sl's lock.
func (p *Pool) put(sl *slot, s *Session) {
	lists := sl == p.listSlot()
	worn := s.worn(!lists || len(p.slots) == 1, lists)
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if !closed && !isClosed(s) && !worn {
		return
	}
	s.client.Close()
	if sl.s == s {
		sl.s = nil
	}
	p.connections(-1)
}

// logOut logs out sl's session, if it has one. The caller holds sl's
// lock.
func (p *Pool) logOut(sl *slot) {
	if sl.s == nil {
		return
	}
	sl.s.Close()
	sl.s = nil
	p.connections(-1)
}

func isClosed(s *Session) bool {
	select {
	case <-s.Closed():
		return true
	default:
		return false
	}
}

// Close logs out every idle session; sessions in use are closed when
// returned.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for _, sl := range p.slots {
		if !tryTake(sl) {
			continue // in use: closed when returned
		}
		p.logOut(sl)
		<-sl.lock
	}
	return nil
}

func (p *Pool) connections(delta int) {
	if p.opts.OnConnections != nil {
		p.opts.OnConnections(delta)
	}
}

// Fresh runs f on a session that logs in for it in the listings' slot,
// in place of the session there, and keeps it there unless f failed.
// On Dovecot a session lists the shared namespaces only of the users who
// shared a folder before its first listing (the acl plugin adds them once
// an hour), so what must see the directory as it is now — discovery, the
// look-up of an owner fbpub does not know — runs here. A STATUS, a
// SELECT or a GETMETADATA names its folder and sets up that owner's
// namespace in any session, so the other slots are not renewed.
func (p *Pool) Fresh(ctx context.Context, f func(*Session) error) error {
	return p.fresh(ctx, 0, f)
}

// fresh is Fresh with the session's timeout (Options.Timeout) set to
// timeout while f runs, when it is not 0.
func (p *Pool) fresh(ctx context.Context, timeout time.Duration, f func(*Session) error) error {
	// The new session logs in in a slot of its own while f runs, so that
	// the listings' session goes on serving meanwhile (a listing of the
	// directory takes tens of seconds at 20,000 sharers): the last of the
	// owners' slots when there are two or more of them, whose session it
	// replaces, so that the pool never holds more than its size.
	sl := p.listSlot()
	if p.ownerSlots() >= 2 {
		sl = p.slots[p.ownerSlots()-1]
	}
	if err := take(ctx, sl); err != nil {
		return err
	}
	defer func() { <-sl.lock }()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if wait := time.Until(p.retryAt); wait > 0 {
		err := p.lastErr
		p.mu.Unlock()
		return fmt.Errorf("%w (retrying in %s): %w", ErrCircuitOpen, wait.Round(time.Millisecond), err)
	}
	p.mu.Unlock()
	p.logOut(sl)
	s, err := p.dial(ctx)
	if err != nil {
		return err
	}
	if timeout > 0 {
		s.opts.Timeout = timeout // the login had the usual one
	}
	p.mu.Lock()
	p.lastFresh = time.Now()
	p.mu.Unlock()
	err = f(s)
	s.opts.Timeout = p.opts.Timeout // it joins the pool
	if err == nil {
		err = p.toListings(ctx, sl, s)
	}
	if err != nil {
		s.Close()
		p.connections(-1)
		return err
	}
	return nil
}

// toListings makes s, which has listed in sl, the listings' session in
// place of the one before. The caller holds sl's lock.
func (p *Pool) toListings(ctx context.Context, sl *slot, s *Session) error {
	ls := p.listSlot()
	if ls == sl {
		sl.s = s
		p.put(sl, s)
		return nil
	}
	if err := take(ctx, ls); err != nil {
		return err
	}
	old := ls.s
	ls.s = s
	p.put(ls, s)
	<-ls.lock
	if old != nil {
		old.Close()
		p.connections(-1)
	}
	return nil
}

// Owners lists the owners whose folders the proxy can see (see
// Session.Owners), on a fresh session (see Fresh).
func (p *Pool) Owners(ctx context.Context) ([]string, error) {
	var out []string
	err := p.Fresh(ctx, func(s *Session) (err error) { out, err = s.Owners(ctx); return err })
	return out, err
}

// DirectoryTimeout bounds each command of Pool.Directory, in place of
// Options.Timeout: Dovecot computes the whole answer to a LIST of its
// shared namespace before the first line of it, and sets up every
// sharer's namespace for it (about 30 s at 20,000 sharers, growing faster
// than the directory); a listing given up on is one the server computes
// in vain, and again at the next try. (The first LIST of any other
// session may take firstListTimeouts times Options.Timeout.)
const DirectoryTimeout = 10 * time.Minute

// Directory lists the owners and their folders (see Session.Directory)
// on a fresh session (see Fresh), whose commands may take up to
// DirectoryTimeout each; the session then serves the listings (it has
// set up every sharer's namespace, which another would pay for again).
// It holds the listings' slot as long as it runs: the owners' slots serve
// requests meanwhile.
func (p *Pool) Directory(ctx context.Context) (owners []string, folders []Folder, err error) {
	err = p.fresh(ctx, max(DirectoryTimeout, p.opts.timeout()), func(s *Session) (err error) {
		owners, folders, err = s.Directory(ctx)
		return err
	})
	return owners, folders, err
}

// OwnerFolders lists one owner's folders with their states (see
// Session.OwnerFolders), on the listings' session.
func (p *Pool) OwnerFolders(ctx context.Context, owner string) ([]Folder, error) {
	var out []Folder
	err := p.doList(ctx, func(s *Session) (err error) { out, err = s.OwnerFolders(ctx, owner); return err })
	return out, err
}

// FreshLookupEvery bounds how often LookupOwner logs in afresh: a name
// that the listings' session does not find is looked up on a new session
// only when no session has logged in for this long.
const FreshLookupEvery = 30 * time.Second

// LookupOwner lists the folders of an owner the caller does not know yet.
// It asks the listings' session first (one LIST). That session may be too
// old to see a user who started sharing after its first listing
// (Dovecot), so when it finds nothing and no session has logged in for
// FreshLookupEvery, the look-up is repeated on a fresh session (see
// Fresh), which then serves the listings.
// A name nobody shares under thus costs one LIST, and at most one login
// in FreshLookupEvery: a fresh login of the proxy costs a server with
// thousands of users far more than the LIST.
func (p *Pool) LookupOwner(ctx context.Context, owner string) ([]Folder, error) {
	out, err := p.OwnerFolders(ctx, owner)
	if err != nil || len(out) > 0 {
		return out, err
	}
	p.mu.Lock()
	recent := time.Since(p.lastFresh) < FreshLookupEvery
	p.mu.Unlock()
	if recent {
		return nil, nil
	}
	err = p.Fresh(ctx, func(s *Session) (err error) { out, err = s.OwnerFolders(ctx, owner); return err })
	return out, err
}

// FindOwner looks up an owner the caller does not know by the folders a
// sharer is expected to have (paths, such as "Calendar"; see
// Session.VisibleFolders): a MYRIGHTS of each on the finding session, and
// nothing more when the proxy may see none of them. When it may see
// some, the listings' session reads the rights of those, and only those
// (which sets the owner up in that session: Dovecot then lists a user who
// started sharing after the session logged in), and lists the owner's
// folders (OwnerFolders). A name that shares nothing thus costs the
// server one MYRIGHTS per path, and a new sharer is found without a fresh
// login (compare LookupOwner).
//
// On Dovecot a command that finds nothing visible in a user's namespace
// costs in proportion to the sharers the session holds (bench/README.md,
// 21:05: 2.3 ms on a session holding none, 39 ms holding 100, 0.5 s
// holding a thousand, 2.5 s on the listings' session, of CPU). So the MYRIGHTS
// go to the finding session: the last of the owners' slots (which other
// work takes only when the ones before are busy, and discovery's fresh
// logins pass through), its session logged out first when it holds more
// than FindRecycle users. A pool of two sessions or fewer has no such
// slot.
//
// It is for a pool whose listings' session has listed (after a discovery
// pass): otherwise, or when the finding slot stays busy for findWait
// (a discovery pass logs in there), it sends nothing and returns
// ErrNoListing, and LookupOwner is the way (a new session lists every
// sharer; and where the server's limit of connections leaves one, the
// finding session would take it from the listings).
func (p *Pool) FindOwner(ctx context.Context, owner string, paths []string) ([]Folder, error) {
	if p.ownerSlots() < 2 {
		return nil, ErrNoListing
	}
	ls := p.listSlot()
	if err := take(ctx, ls); err != nil {
		return nil, err
	}
	ready := ls.s != nil && !isClosed(ls.s) && ls.s.hasListed()
	<-ls.lock
	if !ready {
		return nil, ErrNoListing
	}
	fs := p.slots[p.ownerSlots()-1]
	wctx, cancel := context.WithTimeout(ctx, findWait)
	err := take(wctx, fs)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, ErrNoListing
	}
	if fs.s != nil && fs.s.touchedCount() > FindRecycle {
		p.logOut(fs)
	}
	var visible []string
	_, err = p.run(ctx, fs, func(s *Session) (err error) { visible, err = s.VisibleFolders(ctx, owner, paths); return err })
	if err != nil || len(visible) == 0 {
		return nil, err
	}
	var out []Folder
	err = p.doList(ctx, func(s *Session) (err error) {
		if _, err := s.visible(ctx, visible); err != nil {
			return err
		}
		out, err = s.OwnerFolders(ctx, owner)
		return err
	})
	return out, err
}

// FindRecycle is how many users the finding session may hold before
// FindOwner logs it out (see FindOwner): a fresh login costs Dovecot
// about 1 ms, a MYRIGHTS of a name that shares nothing on a session
// holding a hundred sharers 39 ms.
const FindRecycle = 8

// findWait is how long FindOwner waits for the finding slot.
const findWait = time.Second

// ErrNoListing is FindOwner's answer when it cannot ask now: the pool
// has no listings' session that has listed, or no finding slot, or that
// slot stayed busy. Nothing was sent.
var ErrNoListing = errors.New("imapstore: no session to find owners on now")

// Details reads the rights, ACL and annotations of fs (see
// Session.Details), on a session that has not listed.
func (p *Pool) Details(ctx context.Context, fs []Folder) error {
	if len(fs) == 0 {
		return nil
	}
	return p.doNamed(ctx, func(s *Session) error { return s.Details(ctx, fs) })
}

// Folders lists folders with the proxy's rights, on the listings' session.
func (p *Pool) Folders(ctx context.Context) ([]Folder, error) {
	var out []Folder
	err := p.doList(ctx, func(s *Session) (err error) { out, err = s.Folders(ctx); return err })
	return out, err
}

// States reads folder states, on a session that has not listed.
func (p *Pool) States(ctx context.Context, names []string) (map[string]State, error) {
	if len(names) == 0 {
		return map[string]State{}, nil
	}
	var out map[string]State
	err := p.doNamed(ctx, func(s *Session) (err error) { out, err = s.States(ctx, names); return err })
	return out, err
}

// Fetch reads a folder, on a session that has not listed.
func (p *Pool) Fetch(ctx context.Context, folder string, q Query) (*Listing, error) {
	var out *Listing
	err := p.doNamed(ctx, func(s *Session) (err error) { out, err = s.Fetch(ctx, folder, q); return err })
	return out, err
}

// Ping checks that a session can be had and the server answers (NOOP).
func (p *Pool) Ping(ctx context.Context) error {
	return p.Do(ctx, func(s *Session) error { return s.Noop(ctx) })
}
