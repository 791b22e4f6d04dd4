package imapstore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// dialAs logs in as a test bed user through Dial; the session is closed
// when the test ends.
func dialAs(t *testing.T, srv *testbed.Server, user string, observe func(string, error, time.Duration)) *Session {
	t.Helper()
	s, err := Dial(t.Context(), Options{
		Addr: srv.Addr, TLS: TLSNone, User: user, Password: testbed.Password(user),
		Timeout: 10 * time.Second, Observe: observe,
	})
	if err != nil {
		t.Fatalf("Dial as %s: %v", user, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// asUser runs f on a new session of user and closes it at once (Dovecot
// limits a user to 10 connections from one address).
func asUser(t *testing.T, srv *testbed.Server, user string, f func(*Session)) {
	t.Helper()
	s, err := Dial(t.Context(), Options{Addr: srv.Addr, TLS: TLSNone, User: user, Password: testbed.Password(user), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("Dial as %s: %v", user, err)
	}
	defer s.Close()
	f(s)
}

// aclCase is one ACL of the differential test: the entries set on alice's
// Calendar besides her own (owner) entry, identifier → rights. Empty rights
// make an entry without rights (SETACL with ""), which Dovecot keeps.
type aclCase struct {
	name    string
	entries map[string]string
}

// differentialCases covers the identifiers Dovecot knows (users, anyone,
// authenticated, the group $team that dave is in, negative entries of each)
// and the combinations where Dovecot's precedence layers (anyone <
// authenticated < groups < user) give another answer than the RFC union.
//
// group is the server's spelling of the group dave is in ($team, or
// group:team on Cyrus); override says whether the server knows group
// overrides ("!$team", Dovecot only).
func differentialCases(group string, override bool) []aclCase {
	cases := []aclCase{
		{"no entries", map[string]string{}},
		{"proxy lr", map[string]string{"fbproxy": "lr"}},
		{"user with k x t e", map[string]string{"bob": "lrswipkxte"}},
		{"user with a", map[string]string{"bob": "lra"}},
		{"anyone", map[string]string{"anyone": "lr"}},
		{"authenticated", map[string]string{"authenticated": "lrs"}},
		{"group", map[string]string{group: "lrw"}},
		{"user replaces anyone", map[string]string{"anyone": "lrw", "bob": "l"}},
		{"user replaces authenticated", map[string]string{"authenticated": "lrwi", "carol": "lr"}},
		{"group replaces anyone", map[string]string{"anyone": "lrw", group: "l"}},
		{"user replaces group", map[string]string{group: "lrw", "dave": "l"}},
		{"authenticated replaces anyone", map[string]string{"anyone": "lrwi", "authenticated": "l"}},
		{"negative user", map[string]string{"authenticated": "lr", "-bob": "r"}},
		{"negative user, all", map[string]string{"anyone": "lr", "-bob": "lr"}},
		{"negative user, own grant", map[string]string{"bob": "lrw", "-bob": "w"}},
		{"negative group", map[string]string{group: "lrwi", "-" + group: "w"}},
		{"negative group on anyone", map[string]string{"anyone": "lr", "-" + group: "r"}},
		{"negative group, user grant", map[string]string{"-" + group: "r", "dave": "lr"}},
		{"negative anyone", map[string]string{"anyone": "lr", "-anyone": "r"}},
		{"negative anyone, user grant", map[string]string{"-anyone": "r", "bob": "lr", "authenticated": "lrw"}},
		{"negative authenticated", map[string]string{"authenticated": "lrw", "-authenticated": "w", "carol": "lrw"}},
		{"negative user replaces negative anyone", map[string]string{"anyone": "lrw", "-anyone": "w", "-bob": "r"}},
		{"anonymous is a user", map[string]string{"anonymous": "lr", "authenticated": "l"}},
		{"empty user entry", map[string]string{"anyone": "lr", "bob": ""}},
		{"empty group entry", map[string]string{"authenticated": "lrw", group: ""}},
		{"post only", map[string]string{"bob": "p"}},
		{"seen and write only", map[string]string{"bob": "sw"}},
		{"insert only", map[string]string{"bob": "i"}},
		{"obsolete c and d", map[string]string{"bob": "lrcd"}},
		{"mixed", map[string]string{
			"anyone": "l", "authenticated": "lr", group: "lrsw", "-" + group: "s",
			"bob": "lrswipkxtea", "-bob": "a", "fbproxy": "lr", "-carol": "l",
		}},
	}
	if override {
		cases = append(cases,
			aclCase{"group override beats user", map[string]string{"!" + group: "l", "dave": "lrw"}},
			aclCase{"negative group override", map[string]string{"anyone": "lrw", "-!" + group: "w", "dave": "lrw"}},
		)
	}
	return cases
}

// requesters are the users the differential test logs in as, with their
// groups as the test bed's userdb gives them.
var requesters = []acl.Requester{
	{User: testbed.Proxy},
	{User: "bob"},
	{User: "carol"},
	{User: "dave", Groups: []string{testbed.Group}},
}

// TestMyRightsDifferential logs in to Dovecot and to Cyrus as each test
// user, asks MYRIGHTS on alice's Calendar, and compares the answer with
// fbpub's own evaluation (acl.Dovecot, acl.Cyrus) of the GETACL answer
// that alice, the owner, reads, for every ACL of differentialCases. A NO
// answer to MYRIGHTS agrees with rights that hide the folder: on Dovecot
// (cmd_myrights) no rights or "p" alone, as the post right does not reveal
// that a folder exists ("s w", say, is answered as such, although RFC 4314
// §3.5 would allow a NO without l r i k x a); on Cyrus any rights without
// "l". The test also logs where the plain RFC
// union would have differed.
func TestMyRightsDifferential(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { myRightsDifferential(t, srv) })
	}
}

func myRightsDifferential(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	const owner, folder = "alice", "Calendar"
	shared := srv.SharedName(owner, folder)
	// How the server combines entries, for a requester other than the
	// owner: Dovecot's precedence layers, or Cyrus's union.
	// A NO answer to MYRIGHTS means the server hides the folder from
	// this user: Dovecot does so for no rights or "p" alone, Cyrus for any
	// rights without "l".
	semantics := acl.Dovecot(owner)
	hidden := func(x acl.Rights) bool { return x&^acl.Post == 0 }
	if srv.Kind == testbed.Cyrus {
		semantics = acl.Cyrus()
		hidden = func(x acl.Rights) bool { return !x.Has(acl.Lookup) }
	}
	srv.CreateFolder(t, owner, folder)
	ctx := t.Context()
	admin := srv.Dial(t, owner)

	var table, mismatches, unionDiffs []string
	for _, c := range differentialCases(srv.GroupIdentifier(), srv.Kind == testbed.Dovecot) {
		// Start from alice's own entry only.
		for id := range srv.GetACL(t, owner, folder) {
			if id != owner {
				srv.SetACL(t, owner, folder, id, "")
			}
		}
		for _, id := range slices.Sorted(maps.Keys(c.entries)) {
			err := admin.SetACL(folder, imap.RightsIdentifier(id), imap.RightModificationReplace, imap.RightSet(c.entries[id])).Wait()
			if err != nil {
				t.Fatalf("%s: SETACL %q %q %q: %v", c.name, folder, id, c.entries[id], err)
			}
		}

		var raw map[string]string
		var err error
		asUser(t, srv, owner, func(s *Session) { raw, err = s.GetACL(ctx, folder) })
		if err != nil {
			t.Fatalf("%s: GetACL as %s: %v", c.name, owner, err)
		}
		a, err := acl.Parse(raw)
		if err != nil {
			t.Fatalf("%s: acl.Parse(%q): %v", c.name, raw, err)
		}
		checkGetACL(t, c, owner, raw)
		desc := fmt.Sprintf("%s {%s}", c.name, formatACL(raw))

		for _, r := range requesters {
			var got string
			var err error
			asUser(t, srv, r.User, func(s *Session) { got, err = s.MyRights(ctx, shared) })
			no := errors.Is(err, ErrNotFound)
			if err != nil && !no {
				t.Fatalf("%s: MyRights(%q) as %s: %v", c.name, shared, r.User, err)
			}
			server, err := acl.ParseRights(got)
			if err != nil {
				t.Fatalf("%s: MYRIGHTS as %s answered %q: %v", c.name, r.User, got, err)
			}
			serverText := fmt.Sprintf("%q", server)
			if no {
				serverText = "NO"
			}
			agrees := func(x acl.Rights) bool {
				if no {
					return hidden(x)
				}
				return x == server
			}
			fb := a.EffectiveWith(r, semantics)
			table = append(table, fmt.Sprintf("%-70s %-8s server %-14s fbpub %-14q union %q", desc, r.User, serverText, fb, a.Effective(r)))
			if !agrees(fb) {
				mismatches = append(mismatches, fmt.Sprintf("%-70s %-8s server %-14s fbpub %q", desc, r.User, serverText, fb))
			} else if no && fb != 0 {
				t.Logf("%s: %s: MYRIGHTS says NO, fbpub finds %q (the server hides the folder from this user)", desc, r.User, fb)
			}
			if u := a.Effective(r); !agrees(u) {
				unionDiffs = append(unionDiffs, fmt.Sprintf("%-70s %-8s server %-14s union %q", desc, r.User, serverText, u))
			}
		}
	}
	t.Logf("every row (ACL, user, MYRIGHTS, acl.Dovecot, RFC union):\n%s", strings.Join(table, "\n"))
	if len(unionDiffs) > 0 {
		t.Logf("where the plain RFC union (acl.Effective) differs from Dovecot (%d rows):\n%s", len(unionDiffs), strings.Join(unionDiffs, "\n"))
	}
	if len(mismatches) > 0 {
		t.Errorf("MYRIGHTS differs from fbpub's evaluation of GETACL (%d rows):\n%s", len(mismatches), strings.Join(mismatches, "\n"))
	}
}

// checkGetACL reports an entry set by the case that GETACL does not show
// with the same rights (Dovecot adds the obsolete "c" and "d", which
// ParseRights ignores).
func checkGetACL(t *testing.T, c aclCase, owner string, raw map[string]string) {
	t.Helper()
	for id, want := range c.entries {
		got, ok := raw[id]
		if !ok {
			if want != "" {
				t.Errorf("%s: GETACL %q lacks %s", c.name, raw, id)
			}
			continue
		}
		if acl.MustParseRights(want) != acl.MustParseRights(got) {
			t.Errorf("%s: GETACL gives %s %q, set %q", c.name, id, got, want)
		}
	}
	for id := range raw {
		if _, ok := c.entries[id]; !ok && id != owner {
			t.Errorf("%s: GETACL %q has %s, which was not set", c.name, raw, id)
		}
	}
}

// formatACL prints a GETACL answer as sorted "identifier rights" pairs.
func formatACL(raw map[string]string) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(raw)) {
		parts = append(parts, fmt.Sprintf("%s %q", id, raw[id]))
	}
	return strings.Join(parts, ", ")
}

func TestGetACLNoPermission(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	shared := testbed.SharedName("alice", "Calendar")

	// bob sees the folder but may not administer it: NOPERM.
	got, err := dialAs(t, srv, "bob", nil).GetACL(t.Context(), shared)
	if !errors.Is(err, ErrNoPermission) || errors.Is(err, ErrNotFound) {
		t.Errorf("GetACL(%q) as bob (lr) = %v, %v; want ErrNoPermission", shared, got, err)
	}
	// carol has no rights at all: Dovecot says the folder does not exist.
	got, err = dialAs(t, srv, "carol", nil).GetACL(t.Context(), shared)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("GetACL(%q) as carol (no rights) = %v, %v; want ErrNotFound", shared, got, err)
	}
	// With "a", bob reads it.
	srv.SetACL(t, "alice", "Calendar", "bob", "lra")
	got, err = dialAs(t, srv, "bob", nil).GetACL(t.Context(), shared)
	if err != nil || acl.MustParseRights(got["bob"]) != acl.MustParseRights("lra") {
		t.Errorf("GetACL(%q) as bob (lra) = %v, %v; want bob lra", shared, got, err)
	}
	// Dovecot 2.3 leaves the owner's entry out when another user reads
	// the ACL (alice sees it under her own name): an ACL read by the proxy
	// says nothing about the owner's rights.
	t.Logf("GetACL(%q) as bob (lra) = %v", shared, got)
}

func TestMyRightsNotFound(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	shared := testbed.SharedName("alice", "Calendar")
	s := dialAs(t, srv, "carol", nil)
	for _, name := range []string{shared, testbed.SharedName("alice", "Missing")} {
		got, err := s.MyRights(t.Context(), name)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("MyRights(%q) as carol = %q, %v; want ErrNotFound", name, got, err)
		}
	}
	srv.SetACL(t, "alice", "Calendar", "carol", "lr")
	got, err := s.MyRights(t.Context(), shared)
	if err != nil || acl.MustParseRights(got) != acl.MustParseRights("lr") {
		t.Errorf("MyRights(%q) as carol (lr) = %q, %v; want \"lr\"", shared, got, err)
	}
	// The session is still usable after the NO answers.
	if err := s.Noop(t.Context()); err != nil {
		t.Errorf("Noop after MyRights: %v", err)
	}
}

func TestServer(t *testing.T) {
	srv := testbed.Get(t)
	var ids atomic.Int32
	s := dialAs(t, srv, testbed.Proxy, func(cmd string, err error, _ time.Duration) {
		if cmd == "ID" {
			ids.Add(1)
			if err != nil {
				t.Errorf("ID: %v", err)
			}
		}
	})
	// Concurrent first calls, interleaved with other operations: one ID,
	// the same answer everywhere, no deadlock.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got := s.Server(); got != ServerDovecot {
				t.Errorf("Server() = %q, want %q", got, ServerDovecot)
			}
			if err := s.Noop(t.Context()); err != nil {
				t.Errorf("Noop: %v", err)
			}
		})
	}
	wg.Wait()
	if n := ids.Load(); n != 1 {
		t.Errorf("%d ID commands for 8 calls of Server, want 1", n)
	}
}

func TestServerName(t *testing.T) {
	for _, c := range []struct {
		id   *imap.IDData
		want string
	}{
		{nil, ""},
		{&imap.IDData{}, ""},
		{&imap.IDData{Name: "Dovecot"}, ServerDovecot},
		{&imap.IDData{Name: "Dovecot Pro"}, ServerDovecot},
		{&imap.IDData{Name: "Cyrus IMAPD", Version: "3.6.1", Vendor: "Project Cyrus"}, ServerCyrus},
		{&imap.IDData{Vendor: "Project Cyrus"}, ServerCyrus},
		{&imap.IDData{Name: "GImap", Vendor: "Google, Inc."}, ""},
	} {
		if got := serverName(c.id); got != c.want {
			t.Errorf("serverName(%+v) = %q, want %q", c.id, got, c.want)
		}
	}
}
