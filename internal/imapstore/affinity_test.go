package imapstore

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestPoolKeepsOwnersOnTheirSession: state reads, fetches and listings of
// one owner's folders land on one pooled session (the one holding the
// owner's slot), so that Dovecot sets that owner's namespace up once per
// session rather than on every session of the pool; the pool logs in no
// more sessions than the owners' slots need.
func TestPoolKeepsOwnersOnTheirSession(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	var logins atomic.Int32
	const size = 4
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(cmd string, _ error, _ time.Duration) {
			if cmd == "LOGIN" {
				logins.Add(1)
			}
		}}, size)
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	owners := []string{"alice", "bob", "carol", "dave"}
	slots := map[int]bool{}
	for _, o := range owners {
		srv.CreateFolder(t, o, "Affinity")
		srv.SetACL(t, o, "Affinity", testbed.Proxy, "lr")
	}
	// The first operation logs in before any name can be placed: one of
	// the proxy's own folders, which has no slot.
	if _, err := p.States(ctx, []string{"INBOX"}); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		for _, o := range owners {
			name := srv.SharedName(o, "Affinity")
			if _, err := p.States(ctx, []string{name}); err != nil {
				t.Fatalf("round %d: States(%s): %v", round, o, err)
			}
			if _, err := p.Fetch(ctx, name, Query{}); err != nil {
				t.Fatalf("round %d: Fetch(%s): %v", round, o, err)
			}
			slots[p.slotOf(o)] = true
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	holders := map[string][]int{}
	for i, s := range p.slots {
		if s == nil {
			continue
		}
		for o := range s.touched {
			holders[o] = append(holders[o], i)
		}
	}
	for _, o := range owners {
		if want := []int{p.slotOf(o)}; len(holders[o]) != 1 || holders[o][0] != want[0] {
			t.Errorf("%s was read on the sessions of slots %v, want only %v", o, holders[o], want)
		}
	}
	// The first session took a free slot, maybe one no owner has.
	if got, most := logins.Load(), int32(len(slots)+1); got > most {
		t.Errorf("%d logins for %d slots, want at most %d", got, len(slots), most)
	}
}

// TestPoolOwnerSessionBusy: when the owner's session is in use, a state
// read of that owner does not wait for it beyond AffinityWait: it runs on
// another session.
func TestPoolOwnerSessionBusy(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	p := NewPool(Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy)}, 2)
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	srv.CreateFolder(t, "alice", "AffinityBusy")
	srv.SetACL(t, "alice", "AffinityBusy", testbed.Proxy, "lr")
	name := srv.SharedName("alice", "AffinityBusy")
	if _, err := p.States(ctx, []string{name}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan *Session), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.DoFor(ctx, "alice", func(s *Session) error { held <- s; <-release; return nil })
	}()
	busy := <-held
	if _, err := p.States(ctx, []string{name}); err != nil {
		t.Fatalf("States while alice's session is busy: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if busy.slot != p.slotOf("alice") {
		t.Errorf("alice's DoFor ran on the session of slot %d, want %d", busy.slot, p.slotOf("alice"))
	}
}
