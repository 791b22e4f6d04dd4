package feed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed/feedtest"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
)

// The persisted directory (dirstate.go), in the fast tier: the fake is
// wrapped in feedtest.Pooled, so that the cache reads known folders'
// states by STATUS and discovers by one listing, as over imapstore.Pool.

// pooledUnit is a unit whose cache has the pool's reads (States,
// Directory) and keeps its state in dir.
func pooledUnit(t *testing.T, dir string, revalidate time.Duration) *unit {
	t.Helper()
	u := newUnit(t, Options{StateDir: dir, Revalidate: revalidate}, false)
	u.restart()
	return u
}

// restart makes u's cache a new one over u's source and state
// directory, as a new process would make it, and returns it.
func (u *unit) restart() *Cache {
	o := u.cache.opts
	o.Source = feedtest.Pooled{Source: u.src}
	u.cache = New(o)
	return u.cache
}

// learn has c discover the owners, answer a request for each of owners,
// and write its directory as Run does when it ends.
func (u *unit) learn(t *testing.T, c *Cache, owners ...string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, owner := range owners {
		if _, err := c.Calendar(ctx, CalendarQuery{Owner: owner, Viewer: acl.Requester{User: owner, Confirmed: true}}); err != nil {
			t.Fatalf("Calendar(%s): %v", owner, err)
		}
	}
	c.saveDirectoryIfDirty()
}

// TestRestartServesKnownOwnerByStatus: after a restart, the first request
// for an owner the persisted directory names costs one STATUS of each of
// its folders, nothing else (no LIST of the owner, no look-up, no details
// when they are recent, no fetch: the snapshot persisted too), even when
// that listing is older than relistAfter; so do the next ones, until the
// first discovery pass of the new process has run, or relistAfter after
// the start when none has. Without the persisted directory the owner is
// looked up (a LIST: tens of seconds on a Dovecot of 20,000 sharers).
func TestRestartServesKnownOwnerByStatus(t *testing.T) {
	ctx := context.Background()
	u := pooledUnit(t, t.TempDir(), 24*time.Hour)
	u.share("alice", "Calendar", "lr", "Planning")
	u.share("bob", "Calendar", "lr", "Gym")
	u.learn(t, u.cache, "alice")
	first := u.mustCalendar(t, "alice", asOwner)

	u.advance(3 * u.cache.relistAfter()) // down for a while
	c := u.restart()
	u.src.ResetCalls()
	a, err := c.Calendar(ctx, CalendarQuery{Owner: "alice", Viewer: asOwner})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"States", "OwnerFolders", "LookupOwner", "Directory", "Owners", "Details", "Fetch"}
	if got := u.calls(all...); got != "States=1 OwnerFolders=0 LookupOwner=0 Directory=0 Owners=0 Details=0 Fetch=0" {
		t.Errorf("first request for alice after a restart: %s; want one States and nothing else", got)
	}
	if string(a.Body) != string(first.Body) {
		t.Errorf("alice after a restart:\n%s\nwant\n%s", a.Body, first.Body)
	}
	// bob was only named by the pass: his states, and his details
	// (never read), no LIST.
	u.src.ResetCalls()
	if _, err := c.Calendar(ctx, CalendarQuery{Owner: "bob", Viewer: asOwner}); err != nil {
		t.Fatal(err)
	}
	if got := u.calls("States", "OwnerFolders", "LookupOwner", "Details"); got != "States=1 OwnerFolders=0 LookupOwner=0 Details=1" {
		t.Errorf("first request for bob, named by the persisted pass: %s", got)
	}
	// Later checks still read states until a pass has listed the owners.
	u.advance(time.Minute)
	u.src.ResetCalls()
	u.mustCalendar(t, "alice", asOwner)
	if got := u.calls("States", "OwnerFolders"); got != "States=1 OwnerFolders=0" {
		t.Errorf("a later check before the first pass: %s; want one States", got)
	}
	// relistAfter after the start with no pass: the normal rule, a LIST.
	u.advance(c.relistAfter())
	u.src.ResetCalls()
	if _, err := c.Calendar(ctx, CalendarQuery{Owner: "alice", Viewer: asOwner}); err != nil {
		t.Fatal(err)
	}
	if got := u.calls("States", "OwnerFolders"); got != "States=0 OwnerFolders=1" {
		t.Errorf("relistAfter after the start, no pass: %s; want the owner listed", got)
	}
}

// TestRestartPassReplacesListing: a folder an owner made while fbpub was
// down is not published from the persisted listing, and is once the first
// discovery pass of the new process has listed it (the pass finds the
// owner's folders changed and lists them). The pass keeps the persisted
// details of an owner no request read yet, so the next check of that
// owner reads no details.
func TestRestartPassReplacesListing(t *testing.T) {
	ctx := context.Background()
	u := pooledUnit(t, t.TempDir(), 24*time.Hour)
	u.share("alice", "Calendar", "lr", "Planning")
	u.share("bob", "Calendar", "lr", "Gym")
	u.learn(t, u.cache, "alice", "bob")
	u.share("alice", "Calendar/Work", "lr", "Standup")

	c := u.restart()
	fs, err := c.OwnerFolders(ctx, "alice")
	if err != nil || len(fs) != 1 {
		t.Fatalf("before the first pass: %v, %v; want alice's Calendar only", fs, err)
	}
	u.advance(time.Second)
	u.src.ResetCalls()
	if err := c.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := u.calls("Directory", "OwnerFolders", "Details"); got != "Directory=1 OwnerFolders=1 Details=1" {
		t.Errorf("the first pass: %s; want the listing, then a LIST of alice and the details of her new folder", got)
	}
	fs, err = c.OwnerFolders(ctx, "alice")
	if err != nil || len(fs) != 2 {
		t.Fatalf("after the first pass: %v, %v; want Calendar and Calendar/Work", fs, err)
	}
	u.src.ResetCalls()
	if _, err := c.OwnerFolders(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := u.calls("States", "OwnerFolders", "Details"); got != "States=1 OwnerFolders=0 Details=0" {
		t.Errorf("bob, restored, then named by the pass: %s; want his state only", got)
	}
}

// TestRestartRevokedWhileDown: a grant taken back while fbpub was down is
// not published after the restart: the proxy's (the folder's state moved,
// so its rights are read again; Dovecot answers STATUS for it all the
// same), a reader's (likewise), and a folder deleted (it answers no
// STATUS: the owner is listed). Where a revocation moves no state (Cyrus,
// an annotation), the details persisted are trusted for Revalidate after
// they were read, not after the restart.
func TestRestartRevokedWhileDown(t *testing.T) {
	ctx := context.Background()
	const revalidate = 8 * time.Minute // within relistAfter: STATUS all along
	u := pooledUnit(t, t.TempDir(), revalidate)
	carol := u.share("carol", "Calendar", "lra", "Gym")
	alice := u.share("alice", "Calendar", "lra", "Planning")
	dave := u.share("dave", "Calendar", "lr", "Run")
	erin := u.share("erin", "Calendar", "lra", "Swim") // a: her ACL tells no one else may annotate
	u.src.SetType(erin, "event")
	u.src.SetACL(alice, map[string]string{"alice": "lrswipkxtecda", "bob": "lr"})
	u.learn(t, u.cache, "alice", "carol", "dave", "erin")
	bob := acl.Requester{User: "bob", Confirmed: true}
	fs, err := u.cache.OwnerFolders(ctx, "alice")
	if err != nil || len(fs) != 1 || u.cache.Access(bob, fs[0]) != acl.ReadAccess {
		t.Fatalf("before: alice's folders %v, %v; want one bob reads", fs, err)
	}

	u.src.SetRights(carol, "")
	u.src.SetACL(alice, map[string]string{"alice": "lrswipkxtecda"})
	u.src.Delete(dave)
	u.src.SetType(erin, "mail") // moves no state
	u.advance(revalidate / 2)
	c := u.restart()
	u.src.ResetCalls()
	if fs, err := c.OwnerFolders(ctx, "carol"); !errors.Is(err, ErrNotFound) {
		t.Errorf("carol, whose grant to the proxy was taken back: %v, %v; want ErrNotFound", fs, err)
	}
	if got := u.calls("States", "Details", "OwnerFolders"); got != "States=1 Details=1 OwnerFolders=0" {
		t.Errorf("carol: %s; want her state, then her rights read again", got)
	}
	fs, err = c.OwnerFolders(ctx, "alice")
	if err != nil || len(fs) != 1 {
		t.Fatalf("alice after the restart: %v, %v", fs, err)
	}
	if a := c.Access(bob, fs[0]); a == acl.ReadAccess {
		t.Errorf("bob, whose grant was taken back while fbpub was down: %v", a)
	}
	u.src.ResetCalls()
	if fs, err := c.OwnerFolders(ctx, "dave"); !errors.Is(err, ErrNotFound) {
		t.Errorf("dave, whose folder was deleted: %v, %v; want ErrNotFound", fs, err)
	}
	if got := u.calls("States", "OwnerFolders"); got != "States=1 OwnerFolders=1" {
		t.Errorf("dave: %s; want a STATUS that fails, then a LIST", got)
	}
	if _, err := c.OwnerFolders(ctx, "erin"); err != nil {
		t.Errorf("erin within Revalidate of her details' read: %v; want published still", err)
	}
	u.advance(revalidate / 2)
	if fs, err := c.OwnerFolders(ctx, "erin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("erin Revalidate after her details were read (before the restart): %v, %v; want ErrNotFound", fs, err)
	}
}

// TestRestartUnknownNameLookedUp: a name the persisted directory does not
// list is looked up after a restart, as before any pass (the user may
// have started sharing while fbpub was down), never answered 404 from the
// file.
func TestRestartUnknownNameLookedUp(t *testing.T) {
	ctx := context.Background()
	u := pooledUnit(t, t.TempDir(), time.Hour)
	u.share("alice", "Calendar", "lr", "Planning")
	u.learn(t, u.cache, "alice")
	u.share("zed", "Calendar", "lr", "Gym")

	c := u.restart()
	u.src.ResetCalls()
	fs, err := c.OwnerFolders(ctx, "zed")
	if err != nil || len(fs) != 1 {
		t.Errorf("zed, who started sharing while fbpub was down: %v, %v; want his Calendar", fs, err)
	}
	if _, err := c.OwnerFolders(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("nobody: %v, want ErrNotFound", err)
	}
	if got := u.src.Calls("LookupOwner"); got != 2 {
		t.Errorf("%d look-ups, want 2: zed and nobody", got)
	}
}

// TestLookupJoinsFirstPass: while the first discovery pass is under way
// (Run starts it at once), a request for an owner the cache does not know
// waits for that pass and is answered from it, rather than list the owner
// apart: on Dovecot both set up every sharer's namespace. When the pass
// fails, or none is under way, the owner is looked up on its own.
func TestLookupJoinsFirstPass(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		fail    bool
		lookups int
	}{{"the pass succeeds", false, 0}, {"the pass fails", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			u := pooledUnit(t, t.TempDir(), time.Hour)
			u.share("alice", "Calendar", "lr", "Planning")
			src := &heldDirectory{Pooled: feedtest.Pooled{Source: u.src}, fail: tc.fail,
				held: make(chan struct{}), release: make(chan struct{})}
			o := u.cache.opts
			o.Source = src
			c := New(o)
			u.src.ResetCalls()
			passed := make(chan error, 1)
			go func() { passed <- c.Discover(ctx) }()
			<-src.held // the pass is under way
			answered := make(chan error, 1)
			go func() {
				fs, err := c.OwnerFolders(ctx, "alice")
				if err == nil && len(fs) != 1 {
					err = fmt.Errorf("%d folders, want her Calendar", len(fs))
				}
				answered <- err
			}()
			time.Sleep(50 * time.Millisecond) // the request waits for the pass
			close(src.release)
			if err := <-answered; err != nil {
				t.Fatalf("alice: %v", err)
			}
			<-passed
			if got := u.src.Calls("LookupOwner"); got != tc.lookups {
				t.Errorf("%d look-ups of alice, want %d", got, tc.lookups)
			}
		})
	}
	// No pass under way: a look-up, as before.
	u := pooledUnit(t, t.TempDir(), time.Hour)
	u.share("alice", "Calendar", "lr", "Planning")
	u.src.ResetCalls()
	if _, err := u.cache.OwnerFolders(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := u.calls("LookupOwner"); got != "LookupOwner=1" {
		t.Errorf("no pass under way: %s; want a look-up", got)
	}
}

// heldDirectory is a pooled Source whose listing of the directory closes
// held, waits for release, then lists (or fails, with fail).
type heldDirectory struct {
	feedtest.Pooled
	fail          bool
	held, release chan struct{}
}

func (h *heldDirectory) Directory(ctx context.Context) ([]string, []imapstore.Folder, error) {
	close(h.held)
	<-h.release
	if h.fail {
		return nil, nil, errors.New("listing refused")
	}
	return h.Pooled.Directory(ctx)
}

// TestDirectoryFileIgnored: a directory file of another version, or that
// does not decode, is ignored (the cache starts cold, its first request
// looks the owner up); the next write replaces it.
func TestDirectoryFileIgnored(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"used", func(b []byte) []byte { return b }},
		{"other version", func(b []byte) []byte {
			return []byte(strings.Replace(string(b), fmt.Sprintf(`{"v":%d,`, dirVersion), `{"v":999,`, 1))
		}},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"not JSON", func([]byte) []byte { return []byte("\x00\x01garbage") }},
		{"owner without folders", func([]byte) []byte {
			return fmt.Appendf(nil, `{"v":%d,"saved":1,"owners":[{"n":"alice","f":[]}]}`, dirVersion)
		}},
		{"another owner's folder", func([]byte) []byte {
			return fmt.Appendf(nil, `{"v":%d,"saved":1,"owners":[{"n":"alice","f":[{"n":"shared/bob/Calendar","o":"bob","p":"Calendar"}]}]}`, dirVersion)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			u := pooledUnit(t, dir, time.Hour)
			u.share("alice", "Calendar", "lr", "Planning")
			u.learn(t, u.cache, "alice")
			path := filepath.Join(dir, dirFileName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.edit(b), 0o600); err != nil {
				t.Fatal(err)
			}
			c := u.restart()
			u.src.ResetCalls()
			if _, err := c.OwnerFolders(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			lookups := u.src.Calls("LookupOwner")
			if want := map[bool]int{true: 0, false: 1}[tc.name == "used"]; lookups != want {
				t.Errorf("alice after a restart on this file: %d look-ups, want %d", lookups, want)
			}
			if err := c.Discover(ctx); err != nil {
				t.Fatal(err)
			}
			b, err = os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := decodeDirectory(b, time.Unix(0, u.now.Load())); err != nil {
				t.Errorf("after a pass the file is still unusable: %v", err)
			}
		})
	}
}

// TestDirectoryRoundTrip: what the file keeps of an owner's entry comes
// back as it was, times rounded down to the second (a little older, never
// younger); details read "in the future" (the clock went back) and
// details never read come back as never read.
func TestDirectoryRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 500, time.UTC)
	pass := now.Add(-time.Hour)
	full := imapstore.Folder{Name: "shared/Alice/Calendar", Delim: '/', Namespace: imapstore.OtherUsers, Owner: "Alice", Path: "Calendar",
		Rights: "lra", RightsKnown: true, State: imapstore.State{UIDValidity: 7, HighestModSeq: 1 << 40, UIDNext: 12, Messages: 9}, HasState: true,
		ACL: map[string]string{"bob": "lr", "$team": "l"}, ACLKnown: true, IncidencesFor: "readers", Type: "event.default"}
	named := imapstore.Folder{Name: "shared/Alice/Calendar/Work", Delim: '/', Namespace: imapstore.OtherUsers, Owner: "Alice", Path: "Calendar/Work"}
	future := imapstore.Folder{Name: "shared/Alice/Calendar/Later", Delim: '/', Namespace: imapstore.OtherUsers, Owner: "Alice", Path: "Calendar/Later",
		Rights: "lr", RightsKnown: true}
	shared := imapstore.Folder{Name: "Shared/Team", Delim: '/', Namespace: imapstore.Shared, Path: "Team", Rights: "lr", RightsKnown: true}
	es := []*ownerEntry{
		{name: "Alice", listedAt: pass.Add(30 * time.Minute), checked: now,
			listed:    map[string]imapstore.Folder{full.Name: full, named.Name: named, future.Name: future},
			detailsAt: map[string]time.Time{full.Name: now.Add(-time.Minute), future.Name: now.Add(time.Hour)}},
		{name: "", listedAt: pass, listed: map[string]imapstore.Folder{shared.Name: shared}, detailsAt: map[string]time.Time{shared.Name: pass}},
		{name: "carol", listed: map[string]imapstore.Folder{"shared/carol/Calendar": {Name: "shared/carol/Calendar", Owner: "carol"}}},
	}
	b, err := encodeDirectory(es, pass, now)
	if err != nil {
		t.Fatal(err)
	}
	got, gotPass, err := decodeDirectory(b, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := pass.Truncate(time.Second); !gotPass.Equal(want) {
		t.Errorf("pass = %v, want %v", gotPass, want)
	}
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"", "alice", "carol"}) {
		t.Fatalf("owners %q", keys)
	}
	a := got["alice"]
	if a.name != "Alice" || !a.listedAt.Equal(es[0].listedAt.Truncate(time.Second)) || !a.checked.IsZero() {
		t.Errorf("alice: name %q, listed %v, checked %v", a.name, a.listedAt, a.checked)
	}
	future.Rights, future.RightsKnown = "", false // never read, as far as the file knows
	for _, want := range []imapstore.Folder{full, named, future} {
		if g := a.listed[want.Name]; fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("%s:\n got %+v\nwant %+v", want.Name, g, want)
		}
	}
	if at := a.detailsAt[full.Name]; !at.Equal(now.Add(-time.Minute).Truncate(time.Second)) {
		t.Errorf("details of %s read at %v", full.Name, at)
	}
	if len(a.detailsAt) != 1 {
		t.Errorf("details read, by folder: %v; want only %s", a.detailsAt, full.Name)
	}
	if s := got[""]; !s.listedAt.Equal(gotPass) || fmt.Sprint(s.listed[shared.Name]) != fmt.Sprint(shared) {
		t.Errorf("the shared folders: listed %v, %+v", s.listedAt, s.listed[shared.Name])
	}
	if c := got["carol"]; !c.listedAt.IsZero() {
		t.Errorf("carol, never listed: listed %v", c.listedAt)
	}
}

// TestRestartByStatus: against Dovecot and Cyrus, a restart on the state
// directory of an earlier cache serves a known owner with no LIST and no
// message body; a grant taken back while fbpub was down is not published
// after it (the proxy's: Dovecot answers STATUS but the SETACL moved the
// state, so the rights are read again, Cyrus refuses the STATUS and the
// owner is listed; a reader's: the SETACL moved the state, on Cyrus 3.6
// too, and in any case past publish.revalidate after the last read), and
// a user who started sharing while it was down is looked up.
func TestRestartByStatus(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { restartByStatusOn(t, srv) })
	}
}

func restartByStatusOn(t *testing.T, srv *testbed.Server) {
	ctx := context.Background()
	dir := t.TempDir()
	const revalidate = 5 * time.Minute // within relistAfter: no LIST of alice all along
	now := time.Now()
	start := func(at time.Duration) *fixture {
		f := newFixtureOn(t, srv, time.Second)
		f.frozen.Store(now.Add(at).UnixNano())
		o := f.cache.opts
		o.StateDir, o.Revalidate = dir, revalidate
		f.cache = New(o)
		return f
	}
	setupAlice(t, srv)
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Planning", event("planning", "Planning", now.UTC(), 10)))
	srv.CreateFolder(t, "carol", "Calendar")
	srv.SetACL(t, "carol", "Calendar", testbed.Proxy, "lr")
	bob := acl.Requester{User: "bob", Confirmed: true}
	request := func(f *fixture, owner string) ([]Folder, error) {
		t.Helper()
		if _, err := f.cache.Calendar(ctx, CalendarQuery{Owner: owner, Viewer: acl.Requester{User: owner, Confirmed: true}}); err != nil {
			return nil, err
		}
		return f.cache.OwnerFolders(ctx, owner)
	}

	f := start(0)
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"alice", "carol"} {
		if _, err := request(f, owner); err != nil {
			t.Fatalf("%s before the restart: %v", owner, err)
		}
	}
	f.cache.saveDirectoryIfDirty()
	if fs, _ := f.cache.OwnerFolders(ctx, "alice"); len(fs) != 1 || f.cache.Access(bob, fs[0]) != acl.ReadAccess {
		t.Fatalf("bob on alice's Calendar before the restart: %v", fs)
	}

	// Down: the proxy loses carol's Calendar, bob alice's; dave starts
	// sharing.
	srv.SetACL(t, "carol", "Calendar", testbed.Proxy, "")
	srv.SetACL(t, "alice", "Calendar", "bob", "")
	srv.CreateFolder(t, "dave", "Calendar")
	srv.SetACL(t, "dave", "Calendar", testbed.Proxy, "lr")

	g := start(time.Minute)
	g.src.reset()
	fs, err := request(g, "alice")
	if err != nil || len(fs) != 1 {
		t.Fatalf("alice after the restart: %v, %v", fs, err)
	}
	first := g.src.commandsNow()
	t.Logf("alice's first request after the restart: %v", first)
	if first["LIST"] != 0 || g.src.bodies.Load() != 0 {
		t.Errorf("alice's first request after the restart sent %v and fetched %d bodies; want no LIST, no body", first, g.src.bodies.Load())
	}
	if a := g.cache.Access(bob, fs[0]); a == acl.ReadAccess {
		t.Errorf("bob after the restart: %v; want his grant gone (the SETACL moved the state)", a)
	}
	g.src.reset()
	if fs, err := request(g, "carol"); !errors.Is(err, ErrNotFound) {
		t.Errorf("carol, whose grant to the proxy was taken back while fbpub was down: %v, %v; want ErrNotFound", fs, err)
	}
	t.Logf("carol's first request after the restart: %v", g.src.commandsNow())
	if fs, err := request(g, "dave"); err != nil || len(fs) != 1 {
		t.Errorf("dave, who started sharing while fbpub was down: %v, %v; want his Calendar", fs, err)
	}
	if _, err := request(g, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob, who shares nothing: %v, want ErrNotFound", err)
	}

	// Revalidate after the details were read, on every server.
	g.frozen.Store(now.Add(revalidate + 2*time.Second).UnixNano())
	g.src.reset()
	fs, err = request(g, "alice")
	if err != nil || len(fs) != 1 {
		t.Fatalf("alice past Revalidate: %v, %v", fs, err)
	}
	if a := g.cache.Access(bob, fs[0]); a == acl.ReadAccess {
		t.Errorf("bob past Revalidate after the last read: %v; want his grant gone", a)
	}
	if got := g.src.count("LIST"); got != 0 {
		t.Errorf("alice past Revalidate, before any pass: %d LIST, want none", got)
	}
}

// BenchmarkDirectoryFile measures the directory file of a site of 20,000
// sharers after a first request for each (every folder with its state and
// details), with one or three folders each: its size (file-bytes), the
// time to write it (encode) and to read it back (New, which restores it).
func BenchmarkDirectoryFile(b *testing.B) {
	const owners = 20000
	now := time.Now()
	for _, perOwner := range []int{1, 3} {
		paths := []string{"Calendar", "Calendar/Work", "Tasks"}[:perOwner]
		es := make([]*ownerEntry, owners)
		for i := range es {
			name := fmt.Sprintf("u%05d", i)
			o := &ownerEntry{name: name, listedAt: now.Add(-time.Minute), checked: now,
				listed: map[string]imapstore.Folder{}, detailsAt: map[string]time.Time{}}
			for j, p := range paths {
				f := imapstore.Folder{Name: "shared/" + name + "/" + p, Delim: '/', Namespace: imapstore.OtherUsers, Owner: name, Path: p,
					Rights: "lr", RightsKnown: true, HasState: true, Type: "event",
					State: imapstore.State{UIDValidity: 1733500000 + uint32(i), HighestModSeq: uint64(40 + j), UIDNext: 31, Messages: 30}}
				o.listed[f.Name], o.detailsAt[f.Name] = f, now.Add(-time.Duration(i)*time.Millisecond)
			}
			es[i] = o
		}
		data, err := encodeDirectory(es, now.Add(-time.Minute), now)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("folders=%d/encode", perOwner), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeDirectory(es, now.Add(-time.Minute), now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "file-bytes")
		})
		b.Run(fmt.Sprintf("folders=%d/restore", perOwner), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, dirFileName), data, 0o600); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c := New(Options{StateDir: dir})
				if n := len(c.dir.owners); n != owners {
					b.Fatalf("%d owners restored, want %d", n, owners)
				}
			}
			b.ReportMetric(float64(len(data)), "file-bytes")
		})
	}
}
