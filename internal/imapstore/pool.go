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
type Pool struct {
	opts Options
	sem  chan struct{} // one token per session that may exist

	mu   sync.Mutex
	idle []*Session // guarded by mu
	// failures counts consecutive failed logins and retryAt is when the
	// next may be tried: while the server is down, callers fail at once
	// instead of each one dialing it (the circuit is open). Guarded by mu.
	failures int
	retryAt  time.Time
	lastErr  error
	// features is what the last login found; guarded by mu.
	features *Features
	closed   bool // guarded by mu
	// retireBefore retires the sessions that logged in before it: they
	// are closed instead of reused (see Fresh). Guarded by mu.
	retireBefore time.Time
	// lastFresh is when Fresh last logged in; guarded by mu.
	lastFresh time.Time
}

// NewPool makes a pool of at most size sessions (at least one).
func NewPool(opts Options, size int) *Pool {
	if size < 1 {
		size = 1
	}
	return &Pool{opts: opts, sem: make(chan struct{}, size)}
}

// ErrClosed is returned by a closed pool.
var ErrClosed = errors.New("imapstore: pool closed")

// Do runs f with a session from the pool. A session whose connection broke
// during f is dropped instead of returned to the pool.
func (p *Pool) Do(ctx context.Context, f func(*Session) error) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-p.sem }()
	s, err := p.get(ctx)
	if err != nil {
		return err
	}
	err = f(s)
	p.put(s)
	return err
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

func (p *Pool) get(ctx context.Context) (*Session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !isClosed(s) && !s.born.Before(p.retireBefore) {
			p.mu.Unlock()
			return s, nil
		}
		// Retired (see Fresh), or dead: dropped. The connection is
		// closed at once, without the courtesy of a LOGOUT that
		// would hold the pool's lock.
		s.client.Close()
		p.connections(-1)
	}
	if wait := time.Until(p.retryAt); wait > 0 {
		err := p.lastErr
		p.mu.Unlock()
		return nil, fmt.Errorf("%w (retrying in %s): %w", ErrCircuitOpen, wait.Round(time.Millisecond), err)
	}
	p.mu.Unlock()
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

func (p *Pool) put(s *Session) {
	worn := s.worn()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || isClosed(s) || s.born.Before(p.retireBefore) || worn {
		s.client.Close()
		p.connections(-1)
		return
	}
	if len(p.idle) >= cap(p.sem) {
		// More idle sessions than may exist at once: the oldest goes.
		old := p.idle[0]
		p.idle = p.idle[1:]
		old.client.Close()
		p.connections(-1)
	}
	p.idle = append(p.idle, s)
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
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, s := range idle {
		s.Close()
		p.connections(-1)
	}
	return nil
}

func (p *Pool) connections(delta int) {
	if p.opts.OnConnections != nil {
		p.opts.OnConnections(delta)
	}
}

// Fresh runs f on a session that logs in for it, then keeps that session
// and, when f says so, retires every older one (each is logged out
// instead of reused).
// On Dovecot a session sees the shared namespace only of the users who
// shared a folder before it logged in, so what must see the directory as
// it is now — discovery, the look-up of an owner fbpub does not know —
// runs here, and the per-owner checks that follow run on sessions that
// know at least as much.
func (p *Pool) Fresh(ctx context.Context, f func(*Session) (retire bool, err error)) error {
	return p.fresh(ctx, 0, f)
}

// fresh is Fresh with the session's timeout (Options.Timeout) set to
// timeout while f runs, when it is not 0.
func (p *Pool) fresh(ctx context.Context, timeout time.Duration, f func(*Session) (retire bool, err error)) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-p.sem }()
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
	// The new session is one of the pool's: an idle one makes room for
	// it when the sessions in use (this call's token included) and the
	// idle ones fill the pool, so that the pool never holds more than
	// its size, which the server's limit of connections per user and
	// address was planned with.
	var spare *Session
	if len(p.idle) > 0 && len(p.idle)+len(p.sem) > cap(p.sem) {
		spare = p.idle[0]
		p.idle = p.idle[1:]
		p.connections(-1)
	}
	p.mu.Unlock()
	if spare != nil {
		spare.client.Close()
	}
	s, err := Dial(ctx, p.opts)
	if err != nil {
		return err
	}
	if timeout > 0 {
		s.opts.Timeout = timeout // the login had the usual one
	}
	p.mu.Lock()
	p.lastFresh = time.Now()
	p.connections(+1)
	f0 := s.Features()
	p.features = &f0
	p.mu.Unlock()
	retire, err := f(s)
	s.opts.Timeout = p.opts.Timeout // it joins the pool
	var retired []*Session
	p.mu.Lock()
	if retire && err == nil && !isClosed(s) && s.born.After(p.retireBefore) {
		p.retireBefore = s.born
		var keep []*Session
		for _, old := range p.idle {
			if old.born.Before(p.retireBefore) {
				retired = append(retired, old)
				p.connections(-1)
				continue
			}
			keep = append(keep, old)
		}
		p.idle = keep
	}
	keep := retire && err == nil
	p.mu.Unlock()
	for _, old := range retired {
		old.Close()
	}
	if !keep {
		// It learned nothing the pool's sessions lack: the pool does
		// not grow past its size, nor past the server's connections
		// per user and address.
		s.Close()
		p.connections(-1)
		return err
	}
	p.put(s)
	return err
}

// Owners lists the owners whose folders the proxy can see (see
// Session.Owners), on a fresh session (see Fresh).
func (p *Pool) Owners(ctx context.Context) ([]string, error) {
	var out []string
	err := p.Fresh(ctx, func(s *Session) (bool, error) {
		var err error
		out, err = s.Owners(ctx)
		return true, err
	})
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
// DirectoryTimeout each. It holds one of the pool's sessions as long as
// it runs: requests have the others.
func (p *Pool) Directory(ctx context.Context) (owners []string, folders []Folder, err error) {
	err = p.fresh(ctx, max(DirectoryTimeout, p.opts.timeout()), func(s *Session) (bool, error) {
		var err error
		owners, folders, err = s.Directory(ctx)
		return true, err
	})
	return owners, folders, err
}

// OwnerFolders lists one owner's folders with their states (see
// Session.OwnerFolders), on a pooled session.
func (p *Pool) OwnerFolders(ctx context.Context, owner string) ([]Folder, error) {
	var out []Folder
	err := p.Do(ctx, func(s *Session) (err error) { out, err = s.OwnerFolders(ctx, owner); return err })
	return out, err
}

// FreshLookupEvery bounds how often LookupOwner logs in afresh: a name
// that a pooled session does not find is looked up on a new session only
// when no session has logged in for this long.
const FreshLookupEvery = 30 * time.Second

// LookupOwner lists the folders of an owner the caller does not know yet.
// It asks a pooled session first (one LIST). A pooled session may be too
// old to see a user who started sharing after it logged in (Dovecot), so
// when it finds nothing and no session has logged in for
// FreshLookupEvery, the look-up is repeated on a fresh session (see
// Fresh), whose older peers are retired only when the owner was found.
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
	err = p.Fresh(ctx, func(s *Session) (bool, error) {
		var err error
		out, err = s.OwnerFolders(ctx, owner)
		return len(out) > 0, err
	})
	return out, err
}

// Details reads the rights, ACL and annotations of fs (see
// Session.Details), on a pooled session.
func (p *Pool) Details(ctx context.Context, fs []Folder) error {
	return p.Do(ctx, func(s *Session) error { return s.Details(ctx, fs) })
}

// Folders lists folders with the proxy's rights, on a pooled session.
func (p *Pool) Folders(ctx context.Context) ([]Folder, error) {
	var out []Folder
	err := p.Do(ctx, func(s *Session) (err error) { out, err = s.Folders(ctx); return err })
	return out, err
}

// States reads folder states, on a pooled session.
func (p *Pool) States(ctx context.Context, names []string) (map[string]State, error) {
	var out map[string]State
	err := p.Do(ctx, func(s *Session) (err error) { out, err = s.States(ctx, names); return err })
	return out, err
}

// Fetch reads a folder, on a pooled session.
func (p *Pool) Fetch(ctx context.Context, folder string, q Query) (*Listing, error) {
	var out *Listing
	err := p.Do(ctx, func(s *Session) (err error) { out, err = s.Fetch(ctx, folder, q); return err })
	return out, err
}

// Ping checks that a session can be had and the server answers (NOOP).
func (p *Pool) Ping(ctx context.Context) error {
	return p.Do(ctx, func(s *Session) error { return s.Noop(ctx) })
}
