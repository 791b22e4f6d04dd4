package imapstore

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestOwnerFolders: Owners names the users who share something with the
// proxy without listing their folders; OwnerFolders lists one owner's
// folders with their states, and nothing of anyone else's, whatever the
// name holds; Details adds the rights, ACL and annotations.
func TestOwnerFolders(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			for _, owner := range []string{"alice", "bob"} {
				srv.CreateFolder(t, owner, "Calendar")
				srv.SetACL(t, owner, "Calendar", testbed.Proxy, "lra")
			}
			srv.CreateFolder(t, "alice", "Calendar/Work")
			srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
			srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/incidences-for", "readers")
			srv.CreateFolder(t, testbed.Proxy, "Calendar")
			var commands []string
			s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { commands = append(commands, cmd) })
			ctx := t.Context()

			owners, err := s.Owners(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"alice", "bob", testbed.Proxy} {
				if !slices.Contains(owners, want) {
					t.Errorf("Owners() = %q, want %q among them", owners, want)
				}
			}

			commands = nil
			fs, err := s.OwnerFolders(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range fs {
				names = append(names, f.Name)
				if !f.HasState || f.State.UIDValidity == 0 || f.Owner != "alice" {
					t.Errorf("%s: owner %q, state %+v (has %v)", f.Name, f.Owner, f.State, f.HasState)
				}
			}
			slices.Sort(names)
			if want := []string{srv.SharedName("alice", "Calendar"), srv.SharedName("alice", "Calendar/Work")}; !slices.Equal(names, want) {
				t.Errorf("OwnerFolders(alice) = %q, want %q", names, want)
			}
			if want := []string{"LIST"}; !slices.Equal(commands, want) {
				t.Errorf("OwnerFolders(alice) sent %q, want %q (LIST-STATUS)", commands, want)
			}

			for _, name := range []string{"*", "%", "a%", "alice/Calendar", "nobody"} {
				if fs, err := s.OwnerFolders(ctx, name); err != nil || len(fs) != 0 {
					t.Errorf("OwnerFolders(%q) = %v, %v; want nothing", name, fs, err)
				}
			}

			fs, err = s.OwnerFolders(ctx, testbed.Proxy)
			if err != nil {
				t.Fatal(err)
			}
			names = nil
			for _, f := range fs {
				names = append(names, f.Name)
			}
			if !slices.Contains(names, "Calendar") || slices.ContainsFunc(names, func(n string) bool { return n != "INBOX" && n != "Calendar" }) {
				t.Errorf("OwnerFolders(%s) = %q, want its INBOX and Calendar only", testbed.Proxy, names)
			}

			fs, _ = s.OwnerFolders(ctx, "alice")
			if err := s.Details(ctx, fs); err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				cal := f.Path == "Calendar"
				if !f.RightsKnown || !f.ACLKnown == cal || (f.IncidencesFor == "readers") != cal {
					t.Errorf("%s after Details: rights %q (known %v), ACL known %v, incidences-for %q", f.Name, f.Rights, f.RightsKnown, f.ACLKnown, f.IncidencesFor)
				}
			}
		})
	}
}

// TestFindOwner: once the pool's listings' session has listed, FindOwner
// tells a name that shares nothing by one MYRIGHTS of its Calendar,
// without a LIST; finds a user who started sharing after every session
// logged in, with one LIST and no login; and before any listing, or in a
// pool of one session, sends nothing (ErrNoListing).
func TestFindOwner(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			srv.CreateFolder(t, "alice", "Calendar")
			srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
			srv.CreateFolder(t, "bob", "Calendar")
			var mu sync.Mutex
			var commands []string
			opts := Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
				Timeout: 10 * time.Second, Observe: func(cmd string, _ error, _ time.Duration) {
					mu.Lock()
					commands = append(commands, cmd)
					mu.Unlock()
				}}
			sent := func() []string {
				mu.Lock()
				defer mu.Unlock()
				out := commands
				commands = nil
				return out
			}
			ctx := t.Context()
			paths := []string{"Calendar"}

			one := NewPool(opts, 1)
			defer one.Close()
			p := NewPool(opts, 3)
			defer p.Close()
			for _, pool := range []*Pool{one, p} {
				if _, err := pool.FindOwner(ctx, "alice", paths); !errors.Is(err, ErrNoListing) {
					t.Errorf("FindOwner before a listing, pool of %d: %v, want ErrNoListing", len(pool.slots), err)
				}
				if _, err := pool.Owners(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// Every session logs in now, before bob shares.
			if _, err := p.States(ctx, []string{srv.SharedName("alice", "Calendar")}); err != nil {
				t.Fatal(err)
			}
			sent()
			if _, err := one.FindOwner(ctx, "alice", paths); !errors.Is(err, ErrNoListing) {
				t.Errorf("FindOwner in a pool of one session: %v, want ErrNoListing", err)
			}
			if got := sent(); len(got) != 0 {
				t.Errorf("FindOwner without a listings' session to use sent %q, want nothing", got)
			}

			count := func(cmds []string, cmd string) int {
				n := 0
				for _, c := range cmds {
					if c == cmd {
						n++
					}
				}
				return n
			}
			for _, name := range []string{"bob", "carol", "nobody"} {
				fs, err := p.FindOwner(ctx, name, paths)
				if err != nil || len(fs) != 0 {
					t.Errorf("FindOwner(%s) = %v, %v; want nothing", name, fs, err)
				}
				if got := sent(); count(got, "MYRIGHTS") != 1 || count(got, "LIST") != 0 {
					t.Errorf("FindOwner(%s), who shares nothing, sent %q, want one MYRIGHTS and no LIST", name, got)
				}
			}
			// The question went to the finding session, not to the one
			// that reads owners' states (on Dovecot it costs in
			// proportion to the sharers a session holds).
			if fs := p.slots[p.ownerSlots()-1].s; fs == nil || fs.touchedCount() != 3 {
				t.Error("the finding session does not hold the three names asked about")
			}
			if s0 := p.slots[0].s; s0 == nil || s0.touchedCount() != 1 {
				t.Error("the owners' session holds more than alice, whose state it read")
			}
			// The finding session is logged out once it holds more than
			// FindRecycle users: on Dovecot, what a MYRIGHTS of a name
			// that shares nothing costs grows with the sharers it holds.
			var all []string
			for i := range 2 * FindRecycle {
				p.FindOwner(ctx, fmt.Sprintf("nobody%d", i), paths)
				all = append(all, sent()...)
			}
			if got := count(all, "LOGIN"); got != 2 {
				t.Errorf("%d more names found nothing with %d logins, want 2 (the finding session made anew after %d users)", 2*FindRecycle, got, FindRecycle)
			}

			srv.SetACL(t, "bob", "Calendar", testbed.Proxy, "lr")
			fs, err := p.FindOwner(ctx, "bob", paths)
			if err != nil || len(fs) != 1 || fs[0].Name != srv.SharedName("bob", "Calendar") || !fs[0].HasState {
				t.Fatalf("FindOwner(bob), sharing since the listing: %+v, %v; want his Calendar with its state", fs, err)
			}
			got := sent()
			if count(got, "LOGIN") != 0 || count(got, "LIST") != 1 || count(got, "MYRIGHTS") != 2 || len(got) != 3 {
				t.Errorf("finding bob sent %q, want two MYRIGHTS and one LIST, no login", got)
			}
		})
	}
}
