package imapstore

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestPoolRecyclesWornSessions: a pooled session that read the states of
// Options.RecycleAfter other users' folders is logged out when it is
// returned, and the next operation logs in afresh; one that has listed
// folders is kept, whatever it touched (its first LIST made Dovecot set
// up every sharer's namespace, which the next session would pay for
// again), and the session that listed the directory is not kept.
func TestPoolRecyclesWornSessions(t *testing.T) {
	srv := testbed.Get(t)
	var logins atomic.Int32
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		RecycleAfter: 2,
		Observe: func(cmd string, _ error, _ time.Duration) {
			if cmd == "LOGIN" {
				logins.Add(1)
			}
		}}, 1)
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
		{list, "dave", 3},
		{states, "alice", 3}, // it listed: kept
		{states, "bob", 3},
		{directory, "", 4}, // logs in afresh, and is not kept
		{states, "bob", 5},
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

// TestFreshWithinPoolSize: a session that logs in for Fresh (discovery,
// a look-up) takes the place of an idle one when the pool is full, so the
// proxy never holds more connections than the pool's size (planned
// against the server's limit per user and address).
func TestFreshWithinPoolSize(t *testing.T) {
	srv := testbed.Get(t)
	var open, most atomic.Int32
	const size = 2
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		OnConnections: func(d int) {
			n := open.Add(int32(d))
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
		}}, size)
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
