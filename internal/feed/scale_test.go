package feed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
)

// sharers makes users u<from>..u<to-1> on srv, each sharing a Calendar
// with the proxy, of one event when withEvent is set.
func sharers(t *testing.T, srv *testbed.Server, from, to int, withEvent bool) []string {
	t.Helper()
	var users []string
	for i := from; i < to; i++ {
		users = append(users, fmt.Sprintf("u%04d", i))
	}
	srv.AddUsers(t, users)
	var msg []byte
	if withEvent {
		msg = testbed.CalendarMessage("scale", event("scale", "busy", time.Now().UTC(), 10))
	}
	srv.ShareFolder(t, users, "Calendar", testbed.Proxy, "lr", msg)
	return users
}

func (c *counting) commandsNow() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.commands)
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestRequestCostFlat: the IMAP commands of a request for one owner are
// the same with 50 and with 500 mailboxes on the server: for an owner
// fbpub does not know yet (a look-up), for a known one whose check
// interval ran out (one STATUS of its folder), and after a discovery
// pass; and so are the commands of the discovery pass itself (one
// listing of the directory, no command per owner). Before, every check
// read the whole directory: a LIST, then MYRIGHTS and GETMETADATA of
// every folder (logged, for comparison).
func TestRequestCostFlat(t *testing.T) {
	srv := testbed.Private(t)
	ctx := context.Background()
	win := freebusy.Window{Start: time.Now().UTC().AddDate(0, 0, -1), End: time.Now().UTC().AddDate(0, 0, 30)}
	request := func(f *fixture, owner string) {
		t.Helper()
		a, err := f.cache.FreeBusy(ctx, FreeBusyQuery{Owner: owner, Window: win, Viewer: acl.Requester{Anonymous: true}})
		if err != nil {
			t.Fatalf("FreeBusy(%s): %v", owner, err)
		}
		if !strings.Contains(string(a.Body), "FBTYPE=BUSY") {
			t.Fatalf("FreeBusy(%s) has no busy time", owner)
		}
	}
	type costs struct{ lookUp, recheck, discovery, afterDiscovery, wholeDirectory map[string]int }
	measure := func() costs {
		var c costs
		// An owner fbpub does not know: looked up, then read.
		f := newFixtureOn(t, srv, time.Second)
		f.cache.opts.Revalidate = time.Hour
		now := time.Now()
		f.frozen.Store(now.UnixNano())
		request(f, "u0007")
		c.lookUp = f.src.commandsNow()
		// The check interval runs out: one check of that owner.
		f.src.reset()
		f.frozen.Store(now.Add(2 * time.Second).UnixNano())
		request(f, "u0007")
		c.recheck = f.src.commandsNow()
		// Another owner, after discovery (which fbpub runs in the
		// background) found them.
		f.src.reset()
		if err := f.cache.Discover(ctx); err != nil {
			t.Fatal(err)
		}
		c.discovery = f.src.commandsNow()
		f.src.reset()
		request(f, "u0011")
		c.afterDiscovery = f.src.commandsNow()
		// What one check cost before: the whole directory.
		f.src.reset()
		if _, err := f.src.Folders(ctx); err != nil {
			t.Fatal(err)
		}
		c.wholeDirectory = f.src.commandsNow()
		return c
	}
	sharers(t, srv, 0, 50, true)
	small := measure()
	sharers(t, srv, 50, 500, false)
	large := measure()
	t.Logf("50 mailboxes: look-up %v, re-check %v, discovery %v, after discovery %v; whole-directory check (before) %d commands",
		small.lookUp, small.recheck, small.discovery, small.afterDiscovery, total(small.wholeDirectory))
	t.Logf("500 mailboxes: look-up %v, re-check %v, discovery %v, after discovery %v; whole-directory check (before) %d commands",
		large.lookUp, large.recheck, large.discovery, large.afterDiscovery, total(large.wholeDirectory))
	for _, c := range []struct {
		what         string
		small, large map[string]int
	}{
		{"a look-up", small.lookUp, large.lookUp},
		{"a re-check", small.recheck, large.recheck},
		{"a discovery pass", small.discovery, large.discovery},
		{"a request after discovery", small.afterDiscovery, large.afterDiscovery},
	} {
		if !maps.Equal(c.small, c.large) {
			t.Errorf("%s: %v at 50 mailboxes, %v at 500", c.what, c.small, c.large)
		}
	}
	// The session that read the owner's folder still has it selected, and
	// Dovecot answers STATUS for a selected folder from the session's own
	// view, which lags: the re-check unselects it first. STATUS, not a
	// LIST of the owner: on a Dovecot of thousands of sharers the LIST
	// costs it ten times more.
	if want := map[string]int{"STATUS": 1, "UNSELECT": 1}; !maps.Equal(large.recheck, want) {
		t.Errorf("a re-check of an unchanged owner costs %v, want %v", large.recheck, want)
	}
	if total(large.wholeDirectory) <= total(small.wholeDirectory) {
		t.Errorf("the whole-directory read did not grow with the directory: %v", large.wholeDirectory)
	}
}

// TestDiscoveryFindsNewSharer: a user who starts sharing after fbpub's
// sessions logged in (which Dovecot does not show them) is found by the
// next discovery pass, without a request; an owner a look-up did not find
// is not looked up again within the negative cache's time, so made-up
// names cannot make fbpub log in again and again.
func TestDiscoveryFindsNewSharer(t *testing.T) {
	srv := testbed.Private(t)
	ctx := context.Background()
	sharers(t, srv, 0, 3, true)
	srv.AddUsers(t, []string{"zed", "xav", "yan"})
	f := newFixtureOn(t, srv, 0)
	f.cache.opts.NegativeTTL = time.Hour
	if _, err := f.cache.OwnerFolders(ctx, "u0001"); err != nil {
		t.Fatal(err) // the pool's session logs in now, before zed shares
	}
	if _, err := f.cache.OwnerFolders(ctx, "zed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("zed before sharing: %v, want ErrNotFound", err)
	}
	msg := testbed.CalendarMessage("new", event("new", "busy", time.Now().UTC(), 10))
	srv.ShareFolder(t, []string{"zed"}, "Calendar", testbed.Proxy, "lr", msg)
	f.src.reset()
	for range 10 {
		if _, err := f.cache.OwnerFolders(ctx, "zed"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("zed within the negative cache: %v, want ErrNotFound", err)
		}
	}
	if got := total(f.src.commandsNow()); got != 0 {
		t.Errorf("requests for an owner known missing sent %d IMAP commands, want 0", got)
	}
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	f.src.reset()
	fs, err := f.cache.OwnerFolders(ctx, "zed")
	if err != nil || len(fs) != 1 || fs[0].Name != "shared/zed/Calendar" {
		t.Fatalf("zed after a discovery pass: %v, %v; want shared/zed/Calendar", fs, err)
	}
	if got := f.src.count("LOGIN"); got != 0 {
		t.Errorf("zed after discovery needed %d logins, want 0 (no look-up)", got)
	}

	// An owner the discovery pass has listed but not read yet is checked
	// like a known one: no look-up, no login.
	srv.ShareFolder(t, []string{"yan"}, "Calendar", testbed.Proxy, "lr", msg)
	names, err := f.src.Owners(ctx)
	if err != nil || !slices.Contains(names, "yan") {
		t.Fatalf("Owners() = %q, %v; want yan among them", names, err)
	}
	f.cache.know(names)
	f.src.reset()
	if fs, err := f.cache.OwnerFolders(ctx, "yan"); err != nil || len(fs) != 1 {
		t.Fatalf("yan, listed but not read yet: %v, %v", fs, err)
	}
	if got := f.src.count("LOGIN"); got != 0 {
		t.Errorf("yan, listed by discovery, needed %d logins, want 0 (no look-up)", got)
	}

	// Run discovers on its cadence: xav appears without any request.
	f.cache.opts.Discovery = 100 * time.Millisecond
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.cache.Run(rctx) }()
	defer func() { cancel(); <-done }()
	srv.ShareFolder(t, []string{"xav"}, "Calendar", testbed.Proxy, "lr", msg)
	deadline := time.Now().Add(30 * time.Second)
	for !f.cache.knows("xav") {
		if time.Now().After(deadline) {
			t.Fatal("Run did not discover xav")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// knows reports whether the cache holds owner without asking the server.
func (c *Cache) knows(owner string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dir.owners[ownerKey(owner)] != nil
}

// TestRevokedReaderWithinBound: when the owner takes a reader's grant
// back, the reader loses it within the documented bound: at the next check
// on Dovecot (a SETACL moves the folder's HIGHESTMODSEQ, so the ACL is
// read again), within publish.revalidate plus the check interval
// everywhere.
func TestRevokedReaderWithinBound(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { revokedReaderOn(t, srv) })
	}
}

func revokedReaderOn(t *testing.T, srv *testbed.Server) {
	ctx := context.Background()
	const interval, revalidate = time.Second, time.Minute
	f := newFixtureOn(t, srv, interval)
	f.cache.opts.Revalidate = revalidate
	setupAlice(t, f.srv)
	f.srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
	f.srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	now := time.Now()
	f.frozen.Store(now.UnixNano())
	bob := acl.Requester{User: "bob"}
	access := func() acl.Access {
		t.Helper()
		fs, err := f.cache.OwnerFolders(ctx, "alice")
		if err != nil || len(fs) != 1 {
			t.Fatalf("OwnerFolders(alice) = %v, %v", fs, err)
		}
		return f.cache.Access(bob, fs[0])
	}
	if a := access(); a != acl.ReadAccess {
		t.Fatalf("bob with lr: %v, want read", a)
	}
	f.srv.SetACL(t, "alice", "Calendar", "bob", "")
	f.frozen.Store(now.Add(interval + time.Millisecond).UnixNano())
	if a := access(); srv.Kind == testbed.Dovecot && a != acl.FreeBusyAccess {
		t.Errorf("bob one check interval after the revocation: %v, want free/busy only (the SETACL moved the state)", a)
	}
	f.frozen.Store(now.Add(revalidate + 2*interval).UnixNano())
	if a := access(); a != acl.FreeBusyAccess {
		t.Errorf("bob past revalidate + check interval after the revocation: %v, want free/busy only", a)
	}
}

// stallingSource counts owner checks, for the hung-server test.
type stallingSource struct {
	*imapstore.Pool
	checks atomic.Int32
}

func (s *stallingSource) OwnerFolders(ctx context.Context, owner string) ([]imapstore.Folder, error) {
	s.checks.Add(1)
	return s.Pool.OwnerFolders(ctx, owner)
}

func (s *stallingSource) States(ctx context.Context, names []string) (map[string]imapstore.State, error) {
	s.checks.Add(1)
	return s.Pool.States(ctx, names)
}

// TestHungServerAnswersStale: when the server accepts connections but
// stops answering, a request that finds its owner due for a check waits
// the check budget, not the IMAP timeout, and gets the last good answer
// marked stale; the check goes on in the background, one for all.
func TestHungServerAnswersStale(t *testing.T) {
	srv := testbed.Get(t)
	alice := setupAlice(t, srv)
	appendMany(t, alice, "Calendar", 2, "hang")
	var hung atomic.Bool
	addr := testbed.Relay(t, srv.Addr, func(int64) testbed.Fault {
		if hung.Load() {
			return testbed.Stall
		}
		return testbed.Forward
	})
	const imapTimeout = 20 * time.Second
	src := &stallingSource{Pool: imapstore.NewPool(imapstore.Options{Addr: addr, TLS: imapstore.TLSNone,
		User: testbed.Proxy, Password: testbed.Password(testbed.Proxy), Timeout: imapTimeout}, 4)}
	t.Cleanup(func() { src.Pool.Close() })
	c := New(Options{Source: src, CheckInterval: 0, CheckBudget: 300 * time.Millisecond})
	q := CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}}
	good, err := c.Calendar(context.Background(), q)
	if err != nil || good.Stale {
		t.Fatalf("before the hang: %v, stale %v", err, good.Stale)
	}
	checks := src.checks.Load()
	hung.Store(true)
	for i := range 3 {
		start := time.Now()
		a, err := c.Calendar(context.Background(), q)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("request %d while the server hangs: %v", i, err)
		}
		if !a.Stale || !slices.Equal(a.Body, good.Body) {
			t.Errorf("request %d while the server hangs: stale %v, same body %v; want the last good answer, stale", i, a.Stale, slices.Equal(a.Body, good.Body))
		}
		// A generous bound: the point is not waiting the IMAP timeout.
		if took > imapTimeout/2 {
			t.Errorf("request %d while the server hangs took %v, IMAP timeout %v", i, took, imapTimeout)
		}
	}
	if got := src.checks.Load() - checks; got != 1 {
		t.Errorf("%d checks started while the server hung, want 1 (shared, in the background)", got)
	}
}

// aliceOnClock is a fixture with alice's calendar, a clock that at sets
// to d after now, and Revalidate one hour; checks asks for alice's
// folders and returns the LIST and STATUS that cost (the fixture's
// source counts the other commands until the next call).
func aliceOnClock(t *testing.T) (f *fixture, at func(d time.Duration), checks func() int) {
	f = newFixture(t, time.Second)
	f.cache.opts.Revalidate = time.Hour
	setupAlice(t, f.srv)
	now := time.Now()
	at = func(d time.Duration) { f.frozen.Store(now.Add(d).UnixNano()) }
	checks = func() int {
		t.Helper()
		f.src.reset()
		if _, err := f.cache.OwnerFolders(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		return f.src.count("LIST") + f.src.count("STATUS")
	}
	return f, at, checks
}

// TestWatchedNotPolled: the folders a NOTIFY connection watches are not
// checked every interval: an owner whose folders are all watched is
// checked again when the server announces a change (or everything may
// have changed), and every Revalidate.
func TestWatchedNotPolled(t *testing.T) {
	f, at, checks := aliceOnClock(t)
	at(0)
	checks()
	f.cache.SetWatched([]string{"shared/alice/Calendar"})
	for i, step := range []struct {
		what  string
		do    func()
		lists int
	}{
		{"the interval ran out, nothing announced", func() { at(2 * time.Second) }, 0},
		{"a change announced", func() { f.cache.Changed("shared/alice/Calendar") }, 1},
		{"nothing since", func() { at(4 * time.Second) }, 0},
		{"everything may have changed", func() { f.cache.Changed("") }, 1},
		{"revalidate ran out", func() { at(time.Hour + 5*time.Second) }, 1},
		{"no longer watched, interval ran out", func() { f.cache.SetWatched(nil); at(time.Hour + 7*time.Second) }, 1},
	} {
		step.do()
		if got := checks(); got != step.lists {
			t.Errorf("step %d, %s: %d LIST or STATUS, want %d", i, step.what, got, step.lists)
		}
	}
}

// liveSet is a Watched whose answer the test changes without telling the
// cache, as a NOTIFY connection that drops or replaces its set does.
type liveSet struct{ on atomic.Bool }

func (l *liveSet) Watched(string) bool { return l.on.Load() }

// TestWatchedByLive: with WatchedBy, the cache asks at each request: the
// moment the watcher stops watching a folder (its connection lost, its
// NOTIFY SET being replaced), the next request past the interval checks,
// though nobody told the cache.
func TestWatchedByLive(t *testing.T) {
	f, at, checks := aliceOnClock(t)
	at(0)
	checks()
	var w liveSet
	w.on.Store(true)
	f.cache.WatchedBy(&w)
	at(2 * time.Second)
	if got := checks(); got != 0 {
		t.Errorf("watched, interval ran out: %d LIST or STATUS, want 0", got)
	}
	w.on.Store(false)
	if got := checks(); got != 1 {
		t.Errorf("the watcher stopped watching: %d LIST or STATUS, want 1", got)
	}
	w.on.Store(true)
	at(4 * time.Second)
	if got := checks(); got != 0 {
		t.Errorf("watched again (its states read after the SET): %d LIST or STATUS, want 0", got)
	}
	f.cache.WatchedBy(nil)
	at(6 * time.Second)
	if got := checks(); got != 1 {
		t.Errorf("no watcher, interval ran out: %d LIST or STATUS, want 1", got)
	}
}

// TestWatchedRevalidateWatched: an owner whose folders NOTIFY watches is
// checked again after RevalidateWatched, not Revalidate, and that check
// reads the rights again (they are older than Revalidate); once the
// folders are no longer watched, Revalidate and the interval apply again.
func TestWatchedRevalidateWatched(t *testing.T) {
	f, at, checks := aliceOnClock(t)
	f.cache.opts.RevalidateWatched = 3 * time.Hour
	request := func() (int, int) {
		t.Helper()
		n := checks()
		return n, f.src.count("MYRIGHTS")
	}
	at(0)
	request()
	f.cache.SetWatched([]string{"shared/alice/Calendar"})
	for i, step := range []struct {
		what           string
		at             time.Duration
		checks, rights int
	}{
		{"Revalidate ran out, watched", time.Hour + 5*time.Second, 0, 0},
		{"two hours on, watched", 2 * time.Hour, 0, 0},
		{"RevalidateWatched ran out", 3*time.Hour + 5*time.Second, 1, 1},
		{"just after", 3*time.Hour + 10*time.Second, 0, 0},
	} {
		at(step.at)
		checks, rights := request()
		if checks != step.checks || rights != step.rights {
			t.Errorf("step %d, %s: %d LIST or STATUS and %d MYRIGHTS, want %d and %d",
				i, step.what, checks, rights, step.checks, step.rights)
		}
	}
	f.cache.SetWatched(nil)
	at(3*time.Hour + 12*time.Second)
	if checks, _ := request(); checks != 1 {
		t.Errorf("no longer watched, interval ran out: %d LIST or STATUS, want 1", checks)
	}
}

// TestSettled: a NOTIFY SET that takes a folder in reports its state
// (Settled): the same state as the owner's last check leaves that check
// standing, another one makes the next request check again, as does a
// folder the cache does not publish yet.
func TestSettled(t *testing.T) {
	f, at, checks := aliceOnClock(t)
	at(0)
	checks()
	const cal = "shared/alice/Calendar"
	f.cache.SetWatched([]string{cal})
	f.cache.mu.Lock()
	held := f.cache.dir.owners[f.cache.dir.folderOwner[cal]].listed[cal].State
	f.cache.mu.Unlock()
	moved := held
	moved.UIDNext++
	for i, step := range []struct {
		what  string
		do    func()
		check int
	}{
		{"the state held", func() { f.cache.Settled(cal, held) }, 0},
		{"a state that moved", func() { f.cache.Settled(cal, moved) }, 1},
		{"a folder not published yet", func() { f.cache.Settled("shared/alice/New", held) }, 1},
	} {
		at(time.Duration(i+1) * 2 * time.Second)
		step.do()
		if got := checks(); got != step.check {
			t.Errorf("step %d, %s: %d LIST or STATUS, want %d", i, step.what, got, step.check)
		}
	}
}

// TestWatchlist: the folders requested far more than the others (see
// isHot) come first, then those watched now, then the others requested, then the rest
// by name; a folder no longer published is left out. So a watcher that is
// full (IDLE on a few folders, NOTIFY past what its connections carry)
// moves a watch only for a folder requested far more than the others, not
// for every folder the last half minute of random requests happened to
// name.
func TestWatchlist(t *testing.T) {
	c := &Cache{dir: newDirectory(), hits: map[string]int{}}
	for _, f := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		c.dir.folderOwner["shared/"+f+"/Calendar"] = f
	}
	cal := func(owners string) []string {
		var out []string
		for _, o := range strings.Fields(owners) {
			out = append(out, "shared/"+o+"/Calendar")
		}
		return out
	}
	for _, step := range []struct {
		what    string
		hits    map[string]int
		current string
		want    string
	}{
		{"nothing watched, nothing asked for", nil, "", "a b c d e f g"},
		{"asked for a few times: after what is watched, most first", map[string]int{"f": 1, "g": 4}, "c d", "c d g f a b e"},
		{"asked for five times, four times the median: first", map[string]int{"f": 1, "g": 2, "e": 8}, "c d", "e c d g f a b"},
		{"two hot, most first", map[string]int{"a": 1, "b": 1, "f": 1, "g": 20, "e": 30}, "c d", "e g c d a b f"},
		{"alone asked for", map[string]int{"f": 5}, "c d", "f c d a b e g"},
		{"random requests: none is hot", map[string]int{"a": 2, "b": 3, "e": 1, "f": 1, "g": 4}, "c d", "c d g b a e f"},
		{"a watched folder no longer published", map[string]int{"x": 5}, "x c", "c a b d e f g"},
	} {
		c.hits = map[string]int{}
		for o, n := range step.hits {
			c.hits["shared/"+o+"/Calendar"] = n
		}
		if got, want := c.Watchlist(cal(step.current)), cal(step.want); !slices.Equal(got, want) {
			t.Errorf("%s: Watchlist(%q) = %q, want %q", step.what, step.current, got, want)
		}
		if len(c.hits) != 0 {
			t.Errorf("%s: the requests were not counted anew", step.what)
		}
	}
}

// TestCadenceFollowsSlowPasses: where listing the directory is slow (25-30 s
// at 20,000 sharers on Dovecot), passes come discoveryShare times that
// apart, not every Options.Discovery; what relies on a recent pass (a
// name the pass did not list is not looked up; an owner's listing is
// trusted for STATUS checks) counts on that cadence, or it would lapse
// between passes and send look-ups (a fresh login that sets up every
// sharer) and LISTs in place of STATUS.
func TestCadenceFollowsSlowPasses(t *testing.T) {
	now := time.Now()
	c := &Cache{dir: newDirectory(), opts: Options{Discovery: 5 * time.Minute}}
	c.dir.discovered = now.Add(-30 * time.Minute)
	missing := now.Add(-20 * time.Minute) // a name the pass did not list, asked for since
	for _, tt := range []struct {
		took   time.Duration
		recent bool
	}{
		{0, false},               // a quick pass: 10 minutes of authority
		{time.Second, false},     // 100 s apart: the cadence of 5 minutes rules
		{30 * time.Second, true}, // 50 minutes apart: 100 minutes of authority
		{200 * time.Millisecond, false},
	} {
		c.dir.passTook = tt.took
		if got := c.listedRecently(now); got != tt.recent {
			t.Errorf("pass of %s, 30 min ago: listedRecently = %v, want %v", tt.took, got, tt.recent)
		}
		c.mu.Lock()
		since, relist := c.sincePass(missing, now), c.relistAfter()
		c.mu.Unlock()
		if since != tt.recent {
			t.Errorf("pass of %s, 30 min ago: sincePass = %v, want %v", tt.took, since, tt.recent)
		}
		if trusted := relist > 30*time.Minute; trusted != tt.recent {
			t.Errorf("pass of %s: a listing 30 min old trusted = %v (relistAfter %s), want %v", tt.took, trusted, relist, tt.recent)
		}
	}
}

// TestPassesRenewListingsWithinTheHour: the listings' session, which
// listed when the last pass began, is replaced by the next pass before
// Dovecot sets every sharer up in it again (imapstore.SharersRetry after
// its first LIST), which would cost a look-up's LIST what a pass costs:
// at 40 s a pass (beyond 20,000 sharers), a hundred times that would be
// 67 minutes. Below that, the hundredth share rules as before.
func TestPassesRenewListingsWithinTheHour(t *testing.T) {
	for _, tt := range []struct {
		took, want time.Duration // want 0: only the bound is checked
	}{
		{time.Second, 5 * time.Minute}, // Options.Discovery
		{27 * time.Second, 45 * time.Minute},
		{40 * time.Second, 0},
		{2 * time.Minute, 0},
		{10 * time.Minute, 0}, // imapstore.DirectoryTimeout
	} {
		c := &Cache{dir: newDirectory(), opts: Options{Discovery: 5 * time.Minute}}
		c.dir.passTook = tt.took
		c.mu.Lock()
		next := c.cadence()
		c.mu.Unlock()
		if tt.want != 0 && next != tt.want {
			t.Errorf("pass of %s: next in %s, want %s", tt.took, next, tt.want)
		}
		if age := tt.took + next + tt.took; age >= imapstore.SharersRetry {
			t.Errorf("pass of %s: next in %s, so the listings' session is %s old when the next pass replaces it, past imapstore.SharersRetry (%s)", tt.took, next, age, imapstore.SharersRetry)
		}
	}
}

// TestLookupsBounded: requests for ever-new names that exist nowhere
// cost at most a burst of look-ups (one LIST each, and at most one login),
// then none until the rate allows more; a name holding a LIST wildcard is
// never looked up.
func TestLookupsBounded(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, time.Second)
	setupAlice(t, f.srv)
	f.frozen.Store(time.Now().UnixNano())
	f.src.reset()
	for _, name := range []string{"*", "%", "al*", "a%"} {
		if _, err := f.cache.OwnerFolders(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("OwnerFolders(%q): %v, want ErrNotFound", name, err)
		}
	}
	if got := total(f.src.commandsNow()); got != 0 {
		t.Errorf("names with wildcards sent %d IMAP commands, want 0", got)
	}
	refused := 0
	for i := range 3 * lookupBurst {
		_, err := f.cache.OwnerFolders(ctx, fmt.Sprintf("nobody%d", i))
		switch {
		case errors.Is(err, ErrNotFound):
		case errors.Is(err, ErrUnavailable):
			refused++
		default:
			t.Fatalf("unknown owner %d: %v", i, err)
		}
	}
	// Each look-up is one MYRIGHTS (of the name's Calendar) on a pooled
	// session, once the listings' session has listed (not the first),
	// and one LIST on the listings' session; a fresh login (to
	// see a user who only just started sharing) at most once per
	// imapstore.FreshLookupEvery, however many names are made up: a login
	// of the proxy costs a large server far more than a LIST.
	if want := 3 + lookupBurst/imapstore.FindRecycle; f.src.count("LOGIN") > want {
		t.Errorf("%d look-ups of unknown names logged in %d times, want at most %d (the pool's listings' and names' sessions, one fresh look-up, the finding session once per %d names)",
			3*lookupBurst, f.src.count("LOGIN"), want, imapstore.FindRecycle)
	}
	if got := f.src.count("LIST"); got < lookupBurst || got > lookupBurst+1 {
		t.Errorf("%d look-ups (%d allowed by the rate) sent %d LISTs, want one each", 3*lookupBurst, lookupBurst, got)
	}
	if got := f.src.count("MYRIGHTS"); got != lookupBurst-1 {
		t.Errorf("%d look-ups (%d allowed by the rate) sent %d MYRIGHTS, want one each but the first", 3*lookupBurst, lookupBurst, got)
	}
	if refused != 2*lookupBurst {
		t.Errorf("%d look-ups refused, want %d", refused, 2*lookupBurst)
	}
}

// TestLookupsBeyondRateAfterDiscovery: once a discovery pass has listed
// the owners, a name beyond the look-up rate that it did not list is
// answered "not found" (nobody publishes under it as of that pass), not
// "try again later", and costs no IMAP command.
func TestLookupsBeyondRateAfterDiscovery(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, time.Second)
	setupAlice(t, f.srv)
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	f.frozen.Store(time.Now().UnixNano())
	for i := range lookupBurst {
		f.cache.OwnerFolders(ctx, fmt.Sprintf("early%d", i))
	}
	f.src.reset()
	for i := range lookupBurst {
		if _, err := f.cache.OwnerFolders(ctx, fmt.Sprintf("late%d", i)); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("look-up %d beyond the rate after a discovery pass: %v, want ErrNotFound", i, err)
		}
	}
	if got := total(f.src.commandsNow()); got != 0 {
		t.Errorf("look-ups beyond the rate sent %d IMAP commands, want 0", got)
	}
	if _, err := f.cache.OwnerFolders(ctx, "alice"); err != nil {
		t.Errorf("alice, listed by discovery: %v", err)
	}
}

// TestKnownOwnerFolders: a check of an owner fbpub knows reads the
// states of the folders it knows (one STATUS each, no LIST); a new
// folder of that owner and a new sharer appear at the next discovery
// pass; a folder the proxy may no longer read is gone at the next check
// (its state moved, or its STATUS failed and a LIST of the owner says
// what is left).
func TestKnownOwnerFolders(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { knownOwnerFoldersOn(t, srv) })
	}
}

func knownOwnerFoldersOn(t *testing.T, srv *testbed.Server) {
	ctx := context.Background()
	f := newFixtureOn(t, srv, time.Second)
	f.cache.opts.Revalidate = time.Hour
	setupAlice(t, srv)
	now := time.Now()
	at := func(d time.Duration) { f.frozen.Store(now.Add(d).UnixNano()) }
	names := func(owner string) []string {
		t.Helper()
		fs, err := f.cache.OwnerFolders(ctx, owner)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("OwnerFolders(%s): %v", owner, err)
		}
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	calendar, work := srv.SharedName("alice", "Calendar"), srv.SharedName("alice", "Calendar/Work")
	at(0)
	if got := names("alice"); !slices.Equal(got, []string{calendar}) {
		t.Fatalf("alice: %q, want %q", got, calendar)
	}

	srv.CreateFolder(t, "alice", "Calendar/Work")
	srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
	f.src.reset()
	at(2 * time.Second)
	names("alice")
	if got, want := f.src.commandsNow(), map[string]int{"STATUS": 1}; !maps.Equal(got, want) {
		t.Errorf("a check of alice, who has one known folder: %v, want %v", got, want)
	}
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names("alice"); !slices.Equal(got, []string{calendar, work}) {
		t.Errorf("alice after a discovery pass: %q, want %q and %q", got, calendar, work)
	}

	// carol starts sharing: the next pass names her, without a request.
	if f.cache.knows("carol") {
		t.Fatal("carol known before she shares anything")
	}
	srv.CreateFolder(t, "carol", "Calendar")
	srv.SetACL(t, "carol", "Calendar", testbed.Proxy, "lr")
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.cache.knows("carol") {
		t.Error("carol, sharing since the last pass, not known after it")
	}

	srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "")
	f.src.reset()
	at(4 * time.Second)
	if got := names("alice"); !slices.Equal(got, []string{calendar}) {
		t.Errorf("alice one check interval after the proxy lost Calendar/Work: %q, want %q", got, calendar)
	}
	// Dovecot still answers STATUS for it (the change moved its state,
	// so MYRIGHTS is read again); Cyrus refuses it (so a LIST is sent).
	t.Logf("the check that found Calendar/Work gone sent %v", f.src.commandsNow())
}

// TestLookupsAfterPass: before any discovery pass a request for a name
// fbpub does not know looks it up (and, finding nothing, not again within
// the negative cache's time). Once a pass has listed the owners, a name
// it did not list is asked about by its Calendar's rights alone, one
// MYRIGHTS and no LIST (on Dovecot, a LIST of a name that shares nothing
// costs what the pass did), and not again before the next pass; a user
// who starts sharing after the pass is published at the first request
// after, by the sessions that logged in before they shared, with no
// login; one asked about before they shared, by the next pass. The Kolab
// trigger (Check) still looks a name up.
func TestLookupsAfterPass(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { lookupsAfterPassOn(t, srv) })
	}
}

func lookupsAfterPassOn(t *testing.T, srv *testbed.Server) {
	ctx := context.Background()
	f := newFixtureOn(t, srv, time.Second)
	f.cache.opts.NegativeTTL = time.Minute
	f.cache.opts.Discovery = time.Hour
	setupAlice(t, f.srv)
	now := time.Now()
	at := func(d time.Duration) { f.frozen.Store(now.Add(d).UnixNano()) }
	// Whether a request for name looked it up (one LIST, or two when it
	// logged in afresh for it).
	lookedUp := func(name string) bool {
		t.Helper()
		f.src.reset()
		if _, err := f.cache.OwnerFolders(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("OwnerFolders(%s): %v, want ErrNotFound", name, err)
		}
		return total(f.src.commandsNow()) > 0
	}
	at(0)
	if !lookedUp("nobody") {
		t.Fatal("nobody before any pass: not looked up")
	}
	if lookedUp("nobody") {
		t.Error("nobody again within the negative cache: looked up")
	}
	at(2 * time.Minute)
	if !lookedUp("nobody") {
		t.Error("nobody past the negative cache, no discovery pass: not looked up again")
	}
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	// find asks for name and returns its folders (none: not found) and
	// the commands the request sent.
	find := func(name string) ([]Folder, map[string]int) {
		t.Helper()
		f.src.reset()
		fs, err := f.cache.OwnerFolders(ctx, name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("OwnerFolders(%s): %v", name, err)
		}
		return fs, f.src.commandsNow()
	}
	asked := func(cmds map[string]int) bool { return total(cmds) > 0 }
	byRights := func(name string, cmds map[string]int) {
		t.Helper()
		// The finding session may log in first (see imapstore.FindRecycle).
		if cmds["MYRIGHTS"] != 1 || total(cmds)-cmds["LOGIN"]-cmds["NAMESPACE"]-cmds["ID"] != 1 {
			t.Errorf("%s, not listed by the pass: sent %v, want one MYRIGHTS (of their Calendar) and nothing else", name, cmds)
		}
	}
	at(3 * time.Minute)
	for _, name := range []string{"nobody", "carol"} {
		fs, cmds := find(name)
		if len(fs) != 0 {
			t.Fatalf("%s: %v, want not found", name, fs)
		}
		byRights(name, cmds)
	}
	// bob and carol start sharing, after the pass and after every
	// session of the pool logged in.
	for _, u := range []string{"bob", "carol"} {
		f.srv.CreateFolder(t, u, "Calendar")
		f.srv.SetACL(t, u, "Calendar", testbed.Proxy, "lr")
	}
	at(10 * time.Minute)
	if _, cmds := find("nobody"); asked(cmds) {
		t.Errorf("nobody 7 min after being asked about, before the next pass: sent %v, want nothing", cmds)
	}
	fs, cmds := find("bob")
	if len(fs) != 1 {
		t.Fatalf("bob, sharing since the pass, at his first request: %v, want his Calendar", fs)
	}
	if cmds["LOGIN"] != 0 || cmds["LIST"] != 1 {
		t.Errorf("finding bob sent %v, want one LIST and no login", cmds)
	}
	if fs, cmds := find("carol"); len(fs) != 0 || asked(cmds) {
		t.Errorf("carol, asked about before she shared, before the next pass: %v (sent %v), want not found, nothing sent", fs, cmds)
	}
	at(100 * time.Minute)
	if _, cmds := find("nobody"); asked(cmds) {
		t.Errorf("nobody 97 min after being asked about, before the next pass: sent %v, want nothing", cmds)
	}
	// The next pass finds carol; nobody may be asked about again.
	if err := f.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if fs, _ := find("carol"); len(fs) != 1 {
		t.Errorf("carol after the next pass: %v, want her Calendar", fs)
	}
	at(101 * time.Minute)
	if _, cmds := find("nobody"); !asked(cmds) {
		t.Error("nobody after the next pass: not asked about again")
	} else {
		byRights("nobody", cmds)
	}
	// dave shares nothing; the trigger still looks him up (a LIST).
	f.src.reset()
	if err := f.cache.Check(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	if got := f.src.count("LIST"); got == 0 {
		t.Error("the trigger for dave sent no LIST")
	}
}
