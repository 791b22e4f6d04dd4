package imapstore

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestPoolRecyclesWornSessions: a pooled session that touched
// Options.RecycleAfter other users' folders (listed them, or read their
// states) is logged out when it is returned, and the next operation logs
// in afresh; until then the session is reused, whatever it reads.
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
	for i, step := range []struct {
		owner  string
		states bool // read a folder's state instead of listing
		logins int32
	}{
		{"alice", false, 1},
		{"alice", true, 1},
		{"bob", false, 1}, // the second user: worn once returned
		{"carol", true, 2},
		{"carol", false, 2},
		{testbed.Proxy, false, 2}, // its own folders are no other user's
		{"alice", true, 2},        // worn again
		{"dave", false, 3},
	} {
		var err error
		if step.states {
			_, err = p.States(ctx, []string{srv.SharedName(step.owner, "Calendar")})
		} else {
			_, err = p.OwnerFolders(ctx, step.owner)
		}
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, step.owner, err)
		}
		if got := logins.Load(); got != step.logins {
			t.Errorf("step %d (%s): %d logins so far, want %d", i, step.owner, got, step.logins)
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
