package feed

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// counting wraps the proxy's pool and counts what crosses the wire.
type counting struct {
	*imapstore.Pool
	mu       sync.Mutex
	commands map[string]int
	bodies   atomic.Int64 // messages or message parts fetched
	// afterSelect, when set, runs once right after a SELECT: the moment
	// between reading the folder state and fetching its messages.
	afterSelect func()
}

func (c *counting) count(cmd string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commands[cmd]
}

func (c *counting) reset() {
	c.mu.Lock()
	c.commands = map[string]int{}
	c.mu.Unlock()
	c.bodies.Store(0)
}

func (c *counting) Fetch(ctx context.Context, folder string, q imapstore.Query) (*imapstore.Listing, error) {
	if received := q.Received; received != nil {
		q.Received = func(m imapstore.Message) {
			c.bodies.Add(1) // fetched whole, handed over as it arrived
			received(m)
		}
	}
	l, err := c.Pool.Fetch(ctx, folder, q)
	if l != nil {
		for _, m := range l.Messages {
			if m.Raw != nil {
				c.bodies.Add(1) // fetched whole
			}
			for _, p := range m.Parts {
				if p.Body != nil {
					c.bodies.Add(1)
				}
			}
		}
	}
	return l, err
}

type fixture struct {
	srv   *testbed.Server
	src   *counting
	cache *Cache
	m     *metrics.Metrics
	skew  atomic.Int64 // added to the real clock, to make states stale
	// frozen, when non-zero, is the clock's reading (unix nanoseconds),
	// so that a test's timing cannot outlast a check interval.
	frozen atomic.Int64
}

func (f *fixture) advance(d time.Duration) { f.skew.Add(int64(d)) }

func newFixture(t *testing.T, interval time.Duration) *fixture {
	t.Helper()
	return newFixtureOn(t, testbed.Get(t), interval)
}

// newFixtureOn is newFixture against a given server.
func newFixtureOn(t *testing.T, srv *testbed.Server, interval time.Duration) *fixture {
	t.Helper()
	f := &fixture{srv: srv, m: metrics.Discard()}
	f.src = &counting{commands: map[string]int{}}
	f.src.Pool = imapstore.NewPool(imapstore.Options{
		Addr: f.srv.Addr, TLS: imapstore.TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
		Observe: func(cmd string, err error, d time.Duration) {
			f.src.mu.Lock()
			f.src.commands[cmd]++
			hook := f.src.afterSelect
			if cmd == "SELECT" {
				f.src.afterSelect = nil
			}
			f.src.mu.Unlock()
			if cmd == "SELECT" && hook != nil {
				hook()
			}
		},
	}, 4)
	t.Cleanup(func() { f.src.Pool.Close() })
	f.cache = New(Options{Source: f.src, CheckInterval: interval, Metrics: f.m, Proxy: testbed.Proxy,
		Now: func() time.Time {
			if n := f.frozen.Load(); n != 0 {
				return time.Unix(0, n)
			}
			return time.Now().Add(time.Duration(f.skew.Load()))
		}})
	return f
}

func event(uid, summary string, day time.Time, hour int) string {
	return strings.ReplaceAll(fmt.Sprintf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:%s
DTSTAMP:20250101T000000Z
DTSTART:%sT%02d0000Z
DURATION:PT1H
SUMMARY:%s
END:VEVENT
END:VCALENDAR
`, uid, day.Format("20060102"), hour, summary), "\n", "\r\n")
}

// appendMany appends n events to alice's Calendar on one connection,
// pipelined, and returns their UIDs.
func appendMany(t *testing.T, c *imapclient.Client, folder string, n int, prefix string) []imap.UID {
	t.Helper()
	day := time.Now().UTC()
	cmds := make([]*imapclient.AppendCommand, 0, n)
	for i := 0; i < n; i++ {
		msg := testbed.CalendarMessage(prefix, event(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s %d", prefix, i), day.AddDate(0, 0, i%60), 6+i%12))
		cmd := c.Append(folder, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	uids := make([]imap.UID, 0, n)
	for _, cmd := range cmds {
		d, err := cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, d.UID)
	}
	return uids
}

func expunge(t *testing.T, c *imapclient.Client, folder string, uid imap.UID) {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.UIDSetNum(uid)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(set).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) feed(t *testing.T) string {
	t.Helper()
	a, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
	if err != nil {
		t.Fatalf("Calendar: %v", err)
	}
	return string(a.Body)
}

func setupAlice(t *testing.T, srv *testbed.Server) *imapclient.Client {
	t.Helper()
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	return srv.Dial(t, "alice")
}

// TestIncremental: in a large folder, changing one message costs one
// message body at the next request, deleting one costs none, and both
// answers are right.
func TestIncremental(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			n := 10000
			if testing.Short() || srv.Kind == testbed.Cyrus {
				n = 2000 // Cyrus appends more slowly; the paths are the same
			}
			incrementalOn(t, srv, n)
		})
	}
}

func incrementalOn(t *testing.T, srv *testbed.Server, n int) {
	f := newFixtureOn(t, srv, 0)
	alice := setupAlice(t, f.srv)
	uids := appendMany(t, alice, "Calendar", n, "ev")

	body := f.feed(t)
	if got := strings.Count(body, "BEGIN:VEVENT"); got != n {
		t.Fatalf("cold feed has %d events, want %d", got, n)
	}
	if got := f.src.bodies.Load(); got != int64(n) {
		t.Errorf("cold build fetched %d bodies, want %d", got, n)
	}

	// Change one event: clients write a new message and expunge the old.
	f.src.reset()
	appendMany(t, alice, "Calendar", 1, "changed")
	expunge(t, alice, "Calendar", uids[42])
	body = f.feed(t)
	if got := f.src.bodies.Load(); got != 1 {
		t.Errorf("after changing one event, fetched %d bodies, want 1", got)
	}
	if !strings.Contains(body, "SUMMARY:changed 0") || strings.Contains(body, "SUMMARY:ev 42\r\n") {
		t.Errorf("feed does not show the change")
	}
	if got := strings.Count(body, "BEGIN:VEVENT"); got != n {
		t.Errorf("feed has %d events after a change, want %d", got, n)
	}

	// Delete one event.
	f.src.reset()
	expunge(t, alice, "Calendar", uids[7])
	body = f.feed(t)
	if got := f.src.bodies.Load(); got != 0 {
		t.Errorf("after deleting one event, fetched %d bodies, want 0", got)
	}
	if got := f.src.count("UID SEARCH"); got != 1 {
		t.Errorf("after deleting one event, %d UID SEARCH, want 1 (the expunge must be found)", got)
	}
	if strings.Contains(body, "SUMMARY:ev 7\r\n") || strings.Count(body, "BEGIN:VEVENT") != n-1 {
		t.Errorf("feed still shows the deleted event, or lost others")
	}

	// Add one event: nothing was expunged, so the UID list is derived
	// from the count and no UID SEARCH is needed; the expunges above
	// needed one each.
	f.src.reset()
	appendMany(t, alice, "Calendar", 1, "added")
	body = f.feed(t)
	if got := f.src.count("UID SEARCH"); got != 0 {
		t.Errorf("after adding one event, %d UID SEARCH, want 0", got)
	}
	if !strings.Contains(body, "SUMMARY:added 0") || strings.Count(body, "BEGIN:VEVENT") != n {
		t.Errorf("feed does not show the added event, or lost others")
	}

	// Nothing changed: no SELECT at all.
	f.src.reset()
	f.feed(t)
	if got := f.src.count("SELECT"); got != 0 {
		t.Errorf("unchanged folder: %d SELECTs, want 0", got)
	}
}

// TestHerd: 500 concurrent requests for one stale feed cause exactly one
// folder check, one sync and one render.
func TestHerd(t *testing.T) {
	f := newFixture(t, time.Second)
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 50, "herd")
	f.feed(t)

	appendMany(t, alice, "Calendar", 1, "new")
	f.advance(2 * time.Second) // the checked state is now stale
	// No time passes during the herd: on a loaded machine 500 requests
	// may take longer than the check interval, and a second check would
	// then be right, not a failure to share.
	f.frozen.Store(time.Now().Add(2 * time.Second).UnixNano())
	f.src.reset()
	renders := testutil.ToFloat64(f.m.Renders.WithLabelValues("calendar"))
	sharedNow := func() float64 {
		var n float64
		for _, op := range metrics.Operations {
			n += testutil.ToFloat64(f.m.Shared.WithLabelValues(op))
		}
		return n
	}
	shared := sharedNow()

	const n = 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	bodies := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
			if err != nil {
				t.Error(err)
				return
			}
			bodies[i] = string(a.Body)
		}()
	}
	close(start)
	wg.Wait()
	if got := f.src.count("LIST") + f.src.count("STATUS"); got != 1 {
		t.Errorf("%d LIST and STATUS commands (folder checks), want 1", got)
	}
	if got := f.src.count("SELECT"); got != 1 {
		t.Errorf("%d SELECT commands (syncs), want 1", got)
	}
	if got := testutil.ToFloat64(f.m.Renders.WithLabelValues("calendar")) - renders; got != 1 {
		t.Errorf("%v renders, want 1", got)
	}
	// Requests that arrive once the render is done are plain hits, so
	// which step they shared depends on timing; that some did does not.
	if got := sharedNow() - shared; got < 1 {
		t.Errorf("no request was counted as shared")
	}
	for i, b := range bodies {
		if !strings.Contains(b, "SUMMARY:new 0") {
			t.Fatalf("request %d did not get the new event", i)
		}
	}
}

// TestNoLostUpdate: a change that lands between the state read and the
// fetch is seen by the next request, and with a zero check interval every
// request made after a change sees it.
func TestNoLostUpdate(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { noLostUpdate(t, srv) })
	}
}

func noLostUpdate(t *testing.T, srv *testbed.Server) {
	f := newFixtureOn(t, srv, 0)
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 5, "base")
	f.feed(t)

	injector := f.srv.Dial(t, "alice")
	for round := 0; round < 5; round++ {
		// A change lands right after fbpub selected the folder, before it
		// fetches: the snapshot's state predates it.
		appendMany(t, alice, "Calendar", 1, fmt.Sprintf("before-%d", round))
		f.src.mu.Lock()
		f.src.afterSelect = func() { appendMany(t, injector, "Calendar", 1, fmt.Sprintf("racing-%d", round)) }
		f.src.mu.Unlock()
		if body := f.feed(t); !strings.Contains(body, fmt.Sprintf("SUMMARY:before-%d 0", round)) {
			t.Fatalf("round %d: a change made before the request is missing", round)
		}
		if body := f.feed(t); !strings.Contains(body, fmt.Sprintf("SUMMARY:racing-%d 0", round)) {
			t.Fatalf("round %d: the change that raced the fetch is missing from the next request", round)
		}
	}
}

// TestOutage: with Dovecot gone mid-way, requests keep getting the last
// good answer, marked stale; when it is back, the next check recovers
// without a restart.
func TestOutage(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { outageOn(t, srv) })
	}
}

func outageOn(t *testing.T, srv *testbed.Server) {
	f := newFixtureOn(t, srv, 0)
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 3, "keep")
	good := f.feed(t)
	alice.Close()

	f.srv.Stop(t)
	// The pool's idle session died with the server.
	for i := 0; i < 3; i++ {
		a, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
		if err != nil {
			t.Fatalf("during the outage: %v", err)
		}
		if !a.Stale || a.Result != "stale" || string(a.Body) != good {
			t.Fatalf("during the outage: stale=%v result=%q, body changed=%v", a.Stale, a.Result, string(a.Body) != good)
		}
	}
	f.srv.Start(t)
	alice = f.srv.Dial(t, "alice")
	appendMany(t, alice, "Calendar", 1, "after")
	deadline := time.Now().Add(45 * time.Second) // the circuit's backoff is at most 30 s
	for {
		a, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
		if err == nil && !a.Stale && strings.Contains(string(a.Body), "SUMMARY:after 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fbpub did not recover after the server came back (err=%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRestartWarm: with persisted snapshots, the first request after a
// restart fetches no message bodies when nothing changed, and answers the
// same bytes with the same ETag.
func TestRestartWarm(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, 0)
	f.cache.opts.StateDir = dir
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 200, "warm")
	before, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
	if err != nil {
		t.Fatal(err)
	}

	restarted := newFixture(t, 0)
	restarted.cache.opts.StateDir = dir
	after, err := restarted.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.src.bodies.Load(); got != 0 {
		t.Errorf("first request after restart fetched %d bodies, want 0", got)
	}
	if got := restarted.src.count("SELECT"); got != 0 {
		t.Errorf("first request after restart selected %d folders, want 0", got)
	}
	if string(after.Body) != string(before.Body) || after.ETag != before.ETag {
		t.Errorf("answer after restart differs (ETag %s vs %s)", after.ETag, before.ETag)
	}

	// A change while fbpub was down is still seen, at the cost of one body.
	appendMany(t, alice, "Calendar", 1, "while-down")
	third := newFixture(t, 0)
	third.cache.opts.StateDir = dir
	if body := third.feed(t); !strings.Contains(body, "SUMMARY:while-down 0") {
		t.Errorf("change made while fbpub was down is missing")
	}
	if got := third.src.bodies.Load(); got != 1 {
		t.Errorf("after a change while down, fetched %d bodies, want 1", got)
	}
}

// TestRevokedGrant: when the owner takes the proxy's grant back, the
// folder leaves every view at the next check.
func TestRevokedGrant(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { revokedGrantOn(t, srv) })
	}
}

func revokedGrantOn(t *testing.T, srv *testbed.Server) {
	f := newFixtureOn(t, srv, 0)
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 2, "revoke")
	f.feed(t)
	f.srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "")
	if _, err := f.cache.Calendar(context.Background(), CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}}); err != ErrNotFound {
		t.Errorf("feed after the grant was revoked: err = %v, want ErrNotFound", err)
	}
	if _, err := f.cache.FreeBusy(context.Background(), FreeBusyQuery{Owner: "alice", Window: freebusy.Window{Start: time.Now(), End: time.Now().AddDate(0, 1, 0)}}); err != ErrNotFound {
		t.Errorf("free/busy after the grant was revoked: err = %v, want ErrNotFound", err)
	}
}

// TestKolabFolderType: a folder whose Kolab folder-type annotation says
// event is a calendar whatever its name; one that names another type is
// not, whatever its name. That holds where no one but the owner, the
// proxy and editors may write the annotation: on Dovecot, bob, who may
// only read them, could have (RFC 5464 §3.2), and the folders are then
// decided by their names.
func TestKolabFolderType(t *testing.T) {
	f := newFixture(t, 0)
	f.srv.Reset(t)
	for _, folder := range []string{"Kalender", "Calendar", "Calendar/Notes"} {
		f.srv.CreateFolder(t, "alice", folder)
		f.srv.SetACL(t, "alice", folder, testbed.Proxy, "lra")
	}
	f.srv.SetMetadata(t, "alice", "Kalender", "/shared/vendor/kolab/folder-type", "event.default")
	// A /private value is the setting user's own: the proxy sees only
	// /shared ones (and its own /private), as on Cyrus.
	f.srv.SetMetadata(t, "alice", "Calendar/Notes", "/shared/vendor/kolab/folder-type", "note")
	published := func() string {
		t.Helper()
		dir, err := f.cache.OwnerFolders(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range dir {
			got = append(got, d.Path())
		}
		return strings.Join(got, ",")
	}
	if got := published(); got != "Calendar,Kalender" {
		t.Errorf("published %v, want Calendar and Kalender (annotated event), not Calendar/Notes (annotated note)", got)
	}
	for _, folder := range []string{"Kalender", "Calendar/Notes"} {
		f.srv.SetACL(t, "alice", folder, "bob", "lr")
	}
	if got := published(); got != "Calendar,Calendar/Notes" {
		t.Errorf("with bob reading the annotated folders: published %v, want Calendar and Calendar/Notes, by their names", got)
	}
	f.srv.SetACL(t, "alice", "Kalender", "bob", "lrswite")
	if got := published(); got != "Calendar,Calendar/Notes,Kalender" {
		t.Errorf("with bob editing Kalender: published %v, want Kalender by its annotation again", got)
	}
}

// TestIncidencesFor: Kolab's incidences-for annotation decides whose
// free/busy a folder counts for: "readers" adds every user with the r
// right, "nobody" takes even the owner out; the feed is not affected.
func TestIncidencesFor(t *testing.T) {
	f := newFixture(t, 0)
	alice := setupAlice(t, f.srv)
	appendMany(t, alice, "Calendar", 1, "team")
	f.srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
	f.srv.SetACL(t, "alice", "Calendar", "bob", "lrswite") // may edit it: the annotation is trusted
	f.srv.SetACL(t, "alice", "Calendar", "carol", "l")
	f.srv.CreateFolder(t, "bob", "Calendar")
	f.srv.SetACL(t, "bob", "Calendar", testbed.Proxy, "lr")
	win := freebusy.Window{Start: time.Now().UTC().AddDate(0, 0, -1), End: time.Now().UTC().AddDate(0, 0, 62)}
	busy := func(user string) bool {
		t.Helper()
		a, err := f.cache.FreeBusy(context.Background(), FreeBusyQuery{Owner: user, Window: win, Viewer: acl.Requester{Anonymous: true}})
		if errors.Is(err, ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(a.Body), "FREEBUSY;FBTYPE=BUSY:")
	}
	if !busy("alice") || busy("bob") || busy("carol") {
		t.Fatalf("without the annotation: alice %v, bob %v, carol %v; want alice only", busy("alice"), busy("bob"), busy("carol"))
	}
	f.srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/incidences-for", "readers")
	if !busy("alice") || !busy("bob") || busy("carol") {
		t.Errorf("incidences-for readers: alice %v, bob %v, carol %v; want alice and bob (r), not carol (l)", busy("alice"), busy("bob"), busy("carol"))
	}
	if busy(testbed.Proxy) {
		t.Errorf("incidences-for readers: the proxy, which reads every published folder, has a free/busy of its own")
	}
	f.srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/incidences-for", "nobody")
	if busy("alice") || busy("bob") {
		t.Errorf("incidences-for nobody: alice %v, bob %v; want neither", busy("alice"), busy("bob"))
	}
	// dave may only read it: on Dovecot he could have written the
	// annotation himself, so it is not used.
	f.srv.SetACL(t, "alice", "Calendar", "dave", "lr")
	if !busy("alice") || busy("bob") {
		t.Errorf("incidences-for nobody, dave a reader: alice %v, bob %v; want alice only, as without the annotation", busy("alice"), busy("bob"))
	}
	if body := f.feed(t); !strings.Contains(body, "SUMMARY:team 0") {
		t.Errorf("the feed lost the folder")
	}
}

// TestUnusableMessages: in a folder read by body structure (its last
// message keeps its calendar in part 2), a message without a calendar
// part and one whose calendar is broken are skipped and counted by
// reason; every other event is still published. On both servers.
func TestUnusableMessages(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			setupAlice(t, srv)
			day := time.Now().UTC()
			srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("first", event("u-first", "First", day, 9)))
			srv.Append(t, "alice", "Calendar", []byte("Subject: not a calendar\r\n\r\nhello\r\n"))
			srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("broken", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u-broken\r\nSUMMARY;X=\"a\"b:Broken\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
			srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("last", event("u-last", "Last", day, 11)))
			f := newFixtureOn(t, srv, time.Second)
			body := f.feed(t)
			for _, want := range []string{"SUMMARY:First", "SUMMARY:Last"} {
				if !strings.Contains(body, want) {
					t.Errorf("feed lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(body, "Broken") {
				t.Errorf("feed shows the broken event:\n%s", body)
			}
			for reason, want := range map[string]float64{"no_calendar": 1, "malformed": 1} {
				if got := testutil.ToFloat64(f.m.ParseFailures.WithLabelValues(reason)); got != want {
					t.Errorf("parse failures %s = %v, want %v", reason, got, want)
				}
			}
			if f.src.count("FETCH") != 1 {
				t.Errorf("%d FETCH (the probe), want 1: the folder was not read by structure", f.src.count("FETCH"))
			}
		})
	}
}

// TestTriggerListsOwner: the Kolab trigger for an owner fbpub knows
// lists their folders, so that a folder a client has just created, and
// then calls the trigger for, is published at once rather than at the
// next discovery pass; a check (an upload's, before and after it writes)
// reads the states of the folders fbpub knows, one STATUS each.
func TestTriggerListsOwner(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			ctx := t.Context()
			setupAlice(t, srv)
			f := newFixtureOn(t, srv, time.Hour)
			if fs, err := f.cache.OwnerFolders(ctx, "alice"); err != nil || len(fs) != 1 {
				t.Fatalf("alice's folders: %v, %v; want her Calendar", fs, err)
			}
			// Dovecot tells whether the owner's list of folders others
			// may see changed by its file's modification time, in whole
			// seconds: a folder shared within the second its session last
			// read the list stays unseen until the next change.
			time.Sleep(1100 * time.Millisecond)
			srv.CreateFolder(t, "alice", "Calendar/Work")
			srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
			f.src.reset()
			if err := f.cache.Check(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			if n, s := f.src.count("LIST"), f.src.count("STATUS"); n != 0 || s != 1 {
				t.Errorf("a check of alice sent %d LIST and %d STATUS, want 0 and 1", n, s)
			}
			if err := f.cache.Trigger(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			fs, err := f.cache.OwnerFolders(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range fs {
				names = append(names, f.Path())
			}
			if !slices.Contains(names, "Calendar/Work") {
				t.Errorf("after the trigger, alice's folders are %q: Calendar/Work, created before it, is not published", names)
			}
		})
	}
}

// TestFeedOneCopyPerUID: where a folder holds two copies of one event (a
// client that appends the new copy before it deletes the old, an
// interrupted upload), the feed gives the newest only, as free/busy
// counts it: by SEQUENCE, then the copy appended last. That holds across
// the folders of an answer, in every view.
func TestFeedOneCopyPerUID(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			ctx := t.Context()
			setupAlice(t, srv)
			// Created first: both servers give a new folder its parent's ACL.
			srv.CreateFolder(t, "alice", "Calendar/Private")
			srv.SetACL(t, "alice", "Calendar/Private", testbed.Proxy, "lra")
			srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lra")
			srv.SetACL(t, "alice", "Calendar", "bob", "lr")
			f := newFixtureOn(t, srv, 0)
			day := time.Now().UTC().AddDate(0, 0, 1)
			copyOf := func(uid, summary string, seq, hour int) []byte {
				return testbed.CalendarMessage(uid, strings.Replace(event(uid, summary, day, hour), "SUMMARY:", fmt.Sprintf("SEQUENCE:%d\r\nSUMMARY:", seq), 1))
			}
			for _, m := range []struct {
				folder string
				body   []byte
			}{
				{"Calendar", copyOf("standup", "Standup v1", 1, 9)},
				{"Calendar", copyOf("standup", "Standup v0", 0, 8)}, // appended later, but older
				{"Calendar", copyOf("retro", "Retro first", 0, 10)},
				{"Calendar", copyOf("retro", "Retro second", 0, 11)}, // a tie: the later copy
				{"Calendar", copyOf("other", "Other", 0, 13)},
				{"Calendar/Private", copyOf("other", "Other moved", 5, 15)},
			} {
				srv.Append(t, "alice", m.folder, m.body)
			}
			feed := func(viewer string, folder ...string) string {
				t.Helper()
				a, err := f.cache.Calendar(ctx, CalendarQuery{Owner: "alice", Folder: folder, Viewer: acl.Requester{User: viewer, Confirmed: true}})
				if err != nil {
					t.Fatalf("Calendar: %v", err)
				}
				return string(a.Body)
			}
			at := func(hour int) string { return fmt.Sprintf("DTSTART:%sT%02d0000Z", day.Format("20060102"), hour) }
			for _, tc := range []struct {
				viewer    string
				folder    []string
				want, not []int // hours of the events shown, and not shown
			}{
				{"alice", []string{"Calendar"}, []int{9, 11, 13}, []int{8, 10, 15}},
				{"alice", nil, []int{9, 11, 15}, []int{8, 10, 13}},
				{"bob", []string{"Calendar"}, []int{9, 11, 13}, []int{8, 10, 15}},
				{"bob", nil, []int{9, 11, 15}, []int{8, 10, 13}}, // the newer copy, as busy time
			} {
				body := feed(tc.viewer, tc.folder...)
				for _, h := range tc.want {
					if !strings.Contains(body, at(h)) {
						t.Errorf("%s's feed of %q: no event at %02d:00:\n%s", tc.viewer, tc.folder, h, body)
					}
				}
				for _, h := range tc.not {
					if strings.Contains(body, at(h)) {
						t.Errorf("%s's feed of %q: the older copy at %02d:00 is still there:\n%s", tc.viewer, tc.folder, h, body)
					}
				}
				if n := strings.Count(body, "BEGIN:VEVENT"); n != 3 {
					t.Errorf("%s's feed of %q has %d events, want 3 (one per UID)", tc.viewer, tc.folder, n)
				}
			}
		})
	}
}
