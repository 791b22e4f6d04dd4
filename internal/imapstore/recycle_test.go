package imapstore

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestPoolRecyclesWornSessions: a session of an owners' slot that read
// the states of Options.RecycleAfter other users' folders is logged out
// when it is returned, and the next operation logs in afresh; listings go
// to a slot of their own, whose session is kept whatever it listed (its
// first LIST made Dovecot set up every sharer's namespace, which the next
// session would pay for again); a discovery pass logs in afresh in that
// slot, and its session then serves the listings.
func TestPoolRecyclesWornSessions(t *testing.T) {
	srv := testbed.Get(t)
	var logins atomic.Int32
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		RecycleAfter: 2,
		Observe: func(cmd string, _ error, _ time.Duration) {
			if cmd == "LOGIN" {
				logins.Add(1)
			}
		}}, 2)
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	const states, list, directory = "STATUS", "LIST", "directory"
	for i, step := range []struct {
		op, owner string
		logins    int32
	}{
		{states, "alice", 1},
		{states, "alice", 1},
		{states, "bob", 1}, // the second user: worn once returned
		{states, "carol", 2},
		{states, "alice", 2}, // worn again
		{list, "dave", 3},    // the listings' session
		{states, "alice", 4},
		{list, "bob", 4}, // the listings' session is kept
		{list, "alice", 4},
		{directory, "", 5}, // logs in afresh in its place
		{list, "dave", 5},  // and serves the listings
		{states, "alice", 5},
	} {
		var err error
		switch step.op {
		case states:
			_, err = p.States(ctx, []string{srv.SharedName(step.owner, "Calendar")})
		case list:
			_, err = p.OwnerFolders(ctx, step.owner)
		case directory:
			_, _, err = p.Directory(ctx)
		}
		if err != nil {
			t.Fatalf("step %d (%s %s): %v", i, step.op, step.owner, err)
		}
		if got := logins.Load(); got != step.logins {
			t.Errorf("step %d (%s %s): %d logins so far, want %d", i, step.op, step.owner, got, step.logins)
		}
	}
}

// TestStatesNeverOnListedSession: the states of folders are never read
// on a session that has listed: on Dovecot its first LIST set up every
// sharer's namespace, which makes each STATUS on it dearer in proportion
// to the sharers (bench/README.md). With one session only, there is no
// other to read on, and the listed one is kept.
func TestStatesNeverOnListedSession(t *testing.T) {
	srv := testbed.Get(t)
	for _, size := range []int{1, 2, 4} {
		p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy)}, size)
		ctx := t.Context()
		if _, err := p.LookupOwner(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		for _, owner := range []string{"alice", "bob", "carol", "dave", "alice"} {
			var listed bool
			err := p.doNamed(ctx, func(s *Session) error {
				s.mu.Lock()
				listed = s.listed
				s.mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := size == 1; listed != want {
				t.Errorf("pool of %d: states of %s read on a session that listed: %v, want %v", size, owner, listed, want)
			}
		}
		p.Close()
	}
}

// TestFreshWithinPoolSize: a session that logs in for Fresh (discovery,
// a look-up) takes the place of an idle one when the pool is full, so the
// proxy never holds more connections than the pool's size (planned
// against the server's limit per user and address).
func TestFreshWithinPoolSize(t *testing.T) {
	srv := testbed.Get(t)
	onConns, most := mostConnections()
	const size = 2
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		OnConnections: onConns}, size)
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	// Two sessions in use at once, then both idle.
	hold := make(chan struct{})
	var both sync.WaitGroup
	both.Add(size)
	var done sync.WaitGroup
	for range size {
		done.Go(func() {
			p.Do(ctx, func(*Session) error { both.Done(); <-hold; return nil })
		})
	}
	both.Wait()
	close(hold)
	done.Wait()
	for i := range 3 {
		if _, _, err := p.Directory(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.LookupOwner(ctx, "nobody-at-all"); err != nil {
			t.Fatal(err)
		}
		if got := most.Load(); got > size {
			t.Fatalf("round %d: %d connections at once, pool size %d", i, got, size)
		}
	}
	if got := most.Load(); got != size {
		t.Errorf("at most %d connections, want %d (the pool's two sessions)", got, size)
	}
}

// TestListingsGoOnDuringFresh: while a session logs in and lists for
// Fresh (a discovery pass takes tens of seconds at 20,000 sharers), the
// listings' session goes on serving look-ups; the fresh session then
// serves the listings in its place, and the pool never holds more than
// its size.
func TestListingsGoOnDuringFresh(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	var logins atomic.Int32
	onConns, most := mostConnections()
	const size = 4
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(cmd string, _ error, _ time.Duration) {
			if cmd == "LOGIN" {
				logins.Add(1)
			}
		},
		OnConnections: onConns}, size)
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	// Every slot with a session: three reading states at once, and the
	// listings'.
	hold := make(chan struct{})
	var busy, done sync.WaitGroup
	busy.Add(size - 1)
	for range size - 1 {
		done.Go(func() {
			p.States(ctx, []string{srv.SharedName("alice", "Calendar")})
			p.doNamed(ctx, func(*Session) error { busy.Done(); <-hold; return nil })
		})
	}
	busy.Wait()
	close(hold)
	done.Wait()
	if _, err := p.OwnerFolders(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	before := logins.Load()

	listing := make(chan struct{})
	release := make(chan struct{})
	freshDone := make(chan error, 1)
	go func() {
		freshDone <- p.Fresh(ctx, func(s *Session) error {
			close(listing)
			<-release
			_, err := s.OwnerFolders(ctx, "alice")
			return err
		})
	}()
	<-listing
	during, cancel := context.WithTimeout(ctx, 5*time.Second)
	fs, err := p.OwnerFolders(during, "alice")
	cancel()
	if err != nil || len(fs) == 0 {
		close(release)
		t.Fatalf("a look-up while Fresh runs: %v, %v", fs, err)
	}
	if got := logins.Load(); got != before+1 {
		t.Errorf("%d logins during Fresh, want 1 (its own)", got-before)
	}
	close(release)
	if err := <-freshDone; err != nil {
		t.Fatal(err)
	}
	if fs, err := p.OwnerFolders(ctx, "alice"); err != nil || len(fs) == 0 {
		t.Fatalf("a look-up after Fresh: %v, %v", fs, err)
	}
	if got := logins.Load(); got != before+1 {
		t.Errorf("%d logins after Fresh, want 1: its session serves the listings", got-before)
	}
	if got := most.Load(); got > size {
		t.Errorf("%d connections at once, pool size %d", got, size)
	}
}

// mostConnections returns an Options.OnConnections and the most
// connections it saw open at once.
func mostConnections() (func(delta int), *atomic.Int32) {
	var open, most atomic.Int32
	return func(d int) {
		n := open.Add(int32(d))
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
	}, &most
}

// TestListAfterTheHour: Dovecot sets every sharer up again at a session's
// first LIST an hour or more after its first (SharersRetry), which costs
// it what the first did, so such a LIST may take as long as a first one
// (firstListTimeouts), while one within the hour gets the usual timeout.
func TestListAfterTheHour(t *testing.T) {
	var slow atomic.Bool
	f := newFakeServer(t, "IMAP4rev1", nil, func(cmd string) string {
		if strings.HasPrefix(cmd, "LIST") && slow.Load() {
			time.Sleep(600 * time.Millisecond) // twice the timeout, half the first LIST's
		}
		return "OK done"
	})
	ctx := t.Context()
	dial := func() *Session {
		s, err := Dial(ctx, Options{Addr: f.addr, TLS: TLSNone, User: "fbproxy", Password: "pw", Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	slow.Store(true)
	s := dial()
	if _, err := s.Folders(ctx); err != nil {
		t.Fatalf("a session's first LIST, 600 ms with a timeout of 300 ms: %v", err)
	}
	s.mu.Lock()
	s.listedAt = s.listedAt.Add(-30 * time.Minute)
	s.mu.Unlock()
	if _, err := s.Folders(ctx); err == nil {
		t.Errorf("a slow LIST 30 minutes after the first succeeded: it had more than the usual timeout")
	}

	s = dial()
	if _, err := s.Folders(ctx); err != nil {
		t.Fatalf("a session's first LIST: %v", err)
	}
	s.mu.Lock()
	s.listedAt = s.listedAt.Add(-SharersRetry)
	s.mu.Unlock()
	for i := range 2 {
		if _, err := s.Folders(ctx); err != nil {
			t.Errorf("LIST %d an hour after the session's first, 600 ms with a timeout of 300 ms: %v", i+2, err)
		}
	}
}
