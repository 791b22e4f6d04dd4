package imapstore

import (
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
