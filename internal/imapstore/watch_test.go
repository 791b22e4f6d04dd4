package imapstore

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/mutf7"
	"github.com/fbpub/fbpub/internal/testbed"
)

// events records what a Watcher reports.
type events struct {
	mu     sync.Mutex
	got    map[string]int
	resync atomic.Int32
}

func newEvents() *events { return &events{got: map[string]int{}} }

func (e *events) changed(folder string) {
	e.mu.Lock()
	e.got[folder]++
	e.mu.Unlock()
}

func (e *events) count(folder string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got[folder]
}

// waitFor polls cond for up to 20 s: pushes take milliseconds, but a
// loaded CI machine must not fail the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitChange waits until folder is reported more often than before.
func waitChange(t *testing.T, ev *events, folder string, before int, what string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s: a change of %q", what, folder), func() bool { return ev.count(folder) > before })
}

var emptyCalendar = testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")

// aliceCalendar resets the test bed, makes alice's Calendar with the proxy
// granted "lr", and returns its name as the proxy sees it.
func aliceCalendar(t testing.TB, srv *testbed.Server) string {
	t.Helper()
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	return srv.SharedName("alice", "Calendar")
}

func proxyOptions(srv *testbed.Server) Options {
	return Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy), Timeout: 5 * time.Second}
}

// flagDeleted flags alice's first message in folder \Deleted, then
// (after the caller's check, in between) expunges it.
func flagDeleted(t *testing.T, srv *testbed.Server, folder string) (expunge func()) {
	t.Helper()
	c := srv.Dial(t, "alice")
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	flags := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := c.Store(imap.SeqSetNum(1), flags, nil).Close(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := c.Expunge().Close(); err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
	}
}

// TestWatcherNotify watches alice's shared folders with NOTIFY: every
// kind of change is pushed, only for the folders watched, under the names
// the proxy sees, and the watch survives a server restart.
func TestWatcherNotify(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	const cal, other, spaced, amp = "Calendar", "Other", "Réunions d'équipe", "R&D"
	for _, f := range []string{cal, other, spaced, amp} {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	shared := func(f string) string { return srv.SharedName("alice", f) }
	// The proxy's own folder: the personal namespace.
	srv.CreateFolder(t, testbed.Proxy, "Calendar")

	before := runtime.NumGoroutine()
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), Changed: ev.changed, Resync: func() { ev.resync.Add(1) }})
	defer w.Close()
	if m := w.Mode(); m != WatchOff {
		t.Errorf("Mode() before Watch = %q, want off", m)
	}
	watched := []string{shared(cal), shared(spaced), shared(amp), "Calendar"}
	w.Watch(watched)
	waitFor(t, "the NOTIFY connection", func() bool { return ev.resync.Load() == 1 })
	if m := w.Mode(); m != WatchNotify {
		t.Fatalf("Mode() = %q, want notify", m)
	}
	// "R&D" is left to the regular checks: Dovecot would announce it as
	// "R&D", which go-imap cannot decode (see notifiable).
	if got, want := w.Watching(), slices.Sorted(slices.Values([]string{shared(cal), shared(spaced), "Calendar"})); !slices.Equal(got, want) {
		t.Errorf("Watching() = %q, want %q", got, want)
	}

	// A message appended to a folder not watched, then one to a watched
	// folder: the server reports in order, so once the second is seen,
	// the first would have been too.
	srv.Append(t, "alice", other, emptyCalendar)
	n := ev.count(shared(cal))
	srv.Append(t, "alice", cal, emptyCalendar)
	waitChange(t, ev, shared(cal), n, "APPEND")
	if got := ev.count(shared(other)); got != 0 {
		t.Errorf("folder not watched reported %d times", got)
	}

	n = ev.count(shared(cal))
	expunge := flagDeleted(t, srv, cal)
	waitChange(t, ev, shared(cal), n, `STORE +FLAGS (\Deleted)`)
	n = ev.count(shared(cal))
	expunge()
	waitChange(t, ev, shared(cal), n, "EXPUNGE")

	n = ev.count(shared(spaced))
	srv.Append(t, "alice", spaced, emptyCalendar)
	waitChange(t, ev, shared(spaced), n, "APPEND")
	n = ev.count("Calendar")
	srv.Append(t, testbed.Proxy, "Calendar", emptyCalendar)
	waitChange(t, ev, "Calendar", n, "APPEND to the proxy's own folder")

	// The list changes: a resync (changes between NOTIFY NONE and
	// NOTIFY SET may have been missed), then a new folder is reported
	// with every change; a folder dropped is no longer reported.
	w.Watch([]string{shared(other), shared(cal)})
	waitFor(t, "a resync for the new list", func() bool { return ev.resync.Load() == 2 })
	n = ev.count(shared(other))
	nSpaced := ev.count(shared(spaced))
	srv.Append(t, "alice", spaced, emptyCalendar)
	srv.Append(t, "alice", other, emptyCalendar)
	waitChange(t, ev, shared(other), n, "APPEND to the folder added")
	if got := w.Watching(); !slices.Equal(got, []string{shared(cal), shared(other)}) {
		t.Errorf("Watching() after the change = %q", got)
	}
	// The same folders in another order: nothing to do.
	w.Watch([]string{shared(cal), shared(other)})
	n = ev.count(shared(cal))
	srv.Append(t, "alice", cal, emptyCalendar)
	waitChange(t, ev, shared(cal), n, "APPEND after reordering")
	if r := ev.resync.Load(); r != 2 {
		t.Errorf("Resync called %d times for one change of the list", r)
	}

	// A server restart: the watcher comes back, asks for a resync, and
	// changes are pushed again.
	srv.Stop(t)
	srv.Start(t)
	waitFor(t, "a resync after the restart", func() bool { return ev.resync.Load() > 2 })
	n = ev.count(shared(cal))
	srv.Append(t, "alice", spaced, emptyCalendar)
	srv.Append(t, "alice", cal, emptyCalendar)
	waitChange(t, ev, shared(cal), n, "APPEND after the restart")
	if got := ev.count(shared(spaced)); got != nSpaced {
		t.Errorf("a folder no longer watched was reported %d times", got-nSpaced)
	}

	// A watched folder deleted is announced too (a renamed one is not).
	n = ev.count(shared(cal))
	c := srv.Dial(t, "alice")
	if err := c.Delete(cal).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	waitChange(t, ev, shared(cal), n, "DELETE")

	w.Close()
	if m := w.Mode(); m != WatchOff {
		t.Errorf("Mode() after Close = %q, want off", m)
	}
	waitFor(t, "the watcher's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestWatcherIdle forces IDLE: the two most wanted of three folders are
// watched, the watch moves with the list, survives a restart, and the
// number of goroutines stays bounded however often it moves.
func TestWatcherIdle(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	names := []string{"Calendar", "Calendar/Work", "Calendar/Home"}
	for _, f := range names {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	shared := func(i int) string { return srv.SharedName("alice", names[i]) }
	before := runtime.NumGoroutine()
	ev := newEvents()
	var logins atomic.Int32
	opts := proxyOptions(srv)
	opts.Observe = func(cmd string, err error, _ time.Duration) {
		if cmd == "LOGIN" && err == nil {
			logins.Add(1)
		}
	}
	w := NewWatcherWith(WatchOptions{Options: opts, MaxIdle: 2, NoNotify: true, Changed: ev.changed})
	defer w.Close()

	w.Watch([]string{shared(0), shared(1), shared(2)})
	// Each watch reports its folder once IDLE has begun.
	waitChange(t, ev, shared(0), 0, "the first watch")
	waitChange(t, ev, shared(1), 0, "the second watch")
	if m := w.Mode(); m != WatchIdle {
		t.Fatalf("Mode() = %q, want idle", m)
	}
	if got := w.Watching(); !slices.Equal(got, []string{shared(0), shared(1)}) {
		t.Fatalf("Watching() = %q, want the two most wanted", got)
	}
	n := ev.count(shared(0))
	srv.Append(t, "alice", names[0], emptyCalendar)
	waitChange(t, ev, shared(0), n, "APPEND")
	n = ev.count(shared(1))
	expunge := flagDeleted(t, srv, names[0])
	expunge()
	srv.Append(t, "alice", names[1], emptyCalendar)
	waitChange(t, ev, shared(1), n, "APPEND")
	if got := ev.count(shared(2)); got != 0 {
		t.Errorf("the folder not watched was reported %d times", got)
	}

	// The priorities change: the watch moves.
	w.Watch([]string{shared(2), shared(0)})
	waitChange(t, ev, shared(2), 0, "the moved watch")
	waitFor(t, "the watch list", func() bool { return slices.Equal(w.Watching(), []string{shared(0), shared(2)}) })
	n = ev.count(shared(2))
	srv.Append(t, "alice", names[2], emptyCalendar)
	waitChange(t, ev, shared(2), n, "APPEND in the moved watch")

	// Moving back and forth: never more than two watches, and no
	// goroutines left behind.
	for i := range 10 {
		w.Watch([]string{shared(i % 3), shared((i + 1) % 3)})
	}
	w.Watch([]string{shared(2), shared(1)})
	waitFor(t, "the last list", func() bool {
		return slices.Equal(w.Watching(), slices.Sorted(slices.Values([]string{shared(1), shared(2)})))
	})
	if g := runtime.NumGoroutine(); g > before+2*8+2 {
		t.Errorf("%d goroutines with two watches, %d before", g, before)
	}

	// A restart: the watches come back and report their folders.
	n = ev.count(shared(2))
	srv.Stop(t)
	srv.Start(t)
	waitChange(t, ev, shared(2), n, "the watch after the restart")
	n = ev.count(shared(2))
	srv.Append(t, "alice", names[2], emptyCalendar)
	waitChange(t, ev, shared(2), n, "APPEND after the restart")

	w.Close()
	waitFor(t, "the watch goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if l := logins.Load(); l > 20 {
		t.Errorf("%d logins for a dozen moves and one restart", l)
	}
}

// TestWatcherNotifyRefused runs the watcher against a fake
// server whose NOTIFY refuses every filter: the watcher says so and
// watches with IDLE (which the fake cannot, so it just keeps trying).
func TestWatcherNotifyRefused(t *testing.T) {
	f := newFakeServer(t, "IMAP4rev1 NOTIFY", nil, func(cmd string) string {
		if strings.HasPrefix(cmd, "NOTIFY") {
			return "NO [BADEVENT] not these"
		}
		return "OK done"
	})
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: Options{Addr: f.addr, TLS: TLSNone, User: "u", Password: "p", Timeout: 5 * time.Second}, Changed: ev.changed})
	defer w.Close()
	w.Watch([]string{"Calendar"})
	waitFor(t, "the fall back to IDLE", func() bool { return w.Mode() == WatchIdle })
}

// TestWatcherNotifyTooLong: a NOTIFY SET longer than the server takes
// (Dovecot: imap_max_line_length, 64 KiB) is refused; the watcher then
// halves what one SET carries until the server takes it, and keeps
// watching with NOTIFY the folders that fit, instead of giving NOTIFY up.
func TestWatcherNotifyTooLong(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	const cal = "Calendar"
	srv.CreateFolder(t, "alice", cal)
	srv.SetACL(t, "alice", cal, testbed.Proxy, "lr")
	// 400 names of about 210 bytes: 84 KB, in one NOTIFY SET.
	want := []string{srv.SharedName("alice", cal)}
	for i := range 400 {
		want = append(want, srv.SharedName("alice", fmt.Sprintf("%s%03d", strings.Repeat("x", 190), i)))
	}
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), NotifyConns: 1, MaxNotify: len(want),
		Changed: ev.changed, Resync: func() { ev.resync.Add(1) }})
	defer w.Close()
	w.bounds.bytes = 1 << 20 // more than the server takes
	w.Watch(want)
	waitFor(t, "a NOTIFY SET the server takes", func() bool { return ev.resync.Load() > 0 })
	if m := w.Mode(); m != WatchNotify {
		t.Fatalf("Mode() = %q, want notify", m)
	}
	got := w.Watching()
	if !slices.Contains(got, want[0]) || len(got) >= len(want) {
		t.Fatalf("Watching() has %d of %d folders (Calendar: %v), want the first ones of a shorter SET",
			len(got), len(want), slices.Contains(got, want[0]))
	}
	if n := setCost(got); n > 64<<10 {
		t.Errorf("the NOTIFY SET taken carries %d bytes of names, more than Dovecot takes", n)
	}
	n := ev.count(want[0])
	srv.Append(t, "alice", cal, emptyCalendar)
	waitChange(t, ev, want[0], n, "APPEND after the shorter NOTIFY SET")
}

// TestNotifyFakeServer drives the NOTIFY watch against a scripted server
// without LITERAL+: a password that needs a synchronizing literal, a
// server that refuses names in UTF-8 (and gets modified UTF-7 alone), and
// announcements in modified UTF-7, quoted, and in literals. A name with
// "&" that differs from its modified UTF-7 is not watched (see
// notifiable).
func TestNotifyFakeServer(t *testing.T) {
	pushes := make(chan string, 10)
	f := newFakeServer(t, "IMAP4rev1 NOTIFY LIST-EXTENDED", pushes, func(cmd string) string {
		if strings.HasPrefix(cmd, "NOTIFY SET") && strings.Contains(cmd, "ré") {
			return "BAD 8-bit names"
		}
		return "OK done"
	})
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{
		Options: Options{Addr: f.addr, TLS: TLSNone, User: "user", Password: "pässwörd \"q\"", Timeout: 5 * time.Second},
		Changed: ev.changed, Resync: func() { ev.resync.Add(1) }, Keepalive: 20 * time.Millisecond,
	})
	defer w.Close()
	w.Watch([]string{"réunion", `a "b" \c`, "R&D", "Sp ace"})
	waitFor(t, "the NOTIFY SET", func() bool { return ev.resync.Load() == 1 })
	if got, want := w.Watching(), []string{"Sp ace", `a "b" \c`, "réunion"}; !slices.Equal(got, want) {
		t.Errorf("Watching() = %q, want %q", got, want)
	}
	pushes <- "* STATUS r&AOk-union (MESSAGES 1)\r\n"
	waitChange(t, ev, "réunion", 0, "a modified UTF-7 name")
	pushes <- `* STATUS "a \"b\" \\c" (MESSAGES 1)` + "\r\n"
	waitChange(t, ev, `a "b" \c`, 0, "a quoted name")
	pushes <- "* LIST () \"/\" {6}\r\nSp ace\r\n"
	waitChange(t, ev, "Sp ace", 0, "a name in a literal")
	pushes <- "* STATUS Other (MESSAGES 1)\r\n* STATUS {8}\r\nr\xc3\xa9union (MESSAGES 2)\r\n"
	waitChange(t, ev, "réunion", 1, "a UTF-8 name in a literal")
	if n := ev.count("Other"); n != 0 {
		t.Errorf("a folder not watched was reported %d times", n)
	}

	log := f.log()
	wantLogin := "LOGIN \"user\" {14}\r\npässwörd \"q\""
	if !strings.Contains(log, wantLogin) {
		t.Errorf("the server saw\n%s\nwant a LOGIN with a synchronizing literal: %q", log, wantLogin)
	}
	wantNotify := `NOTIFY SET (mailboxes ("r&AOk-union" "a \"b\" \\c" "Sp ace") (MessageNew MessageExpunge FlagChange MailboxName))`
	if !strings.Contains(log, wantNotify) {
		t.Errorf("the server saw\n%s\nwant %s", log, wantNotify)
	}
	for _, list := range []string{`EXAMINE "r&AOk-union"`, `EXAMINE "a \"b\" \\c"`, `EXAMINE "Sp ace"`} {
		if !strings.Contains(log, list) {
			t.Errorf("the server saw\n%s\nwant %s", log, list)
		}
	}
	if strings.Contains(log, "R&-D") {
		t.Errorf("the server saw\n%s\nwant no R&-D", log)
	}
	waitFor(t, "a NOOP to keep the connection alive", func() bool { return strings.Contains(f.log(), " NOOP\n") })
}

// TestNotifyDeadServer: a server that stops answering is found out by the
// keepalive NOOP; the watcher reconnects and asks for a resync.
func TestNotifyDeadServer(t *testing.T) {
	var noops atomic.Int32
	f := newFakeServer(t, "IMAP4rev1 NOTIFY", nil, func(cmd string) string {
		if strings.HasPrefix(cmd, "NOOP") && noops.Add(1) == 1 {
			return "" // no answer, ever
		}
		return "OK done"
	})
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{
		Options: Options{Addr: f.addr, TLS: TLSNone, User: "u", Password: "p", Timeout: 200 * time.Millisecond},
		Changed: ev.changed, Resync: func() { ev.resync.Add(1) }, Keepalive: 20 * time.Millisecond,
	})
	defer w.Close()
	w.Watch([]string{"Calendar"})
	waitFor(t, "a resync after the server stopped answering", func() bool { return ev.resync.Load() >= 2 })
	if m := w.Mode(); m != WatchNotify {
		t.Errorf("Mode() = %q, want notify", m)
	}
}

// testTLS returns a server configuration with a test certificate for
// example.com and a client configuration that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(hs.Close)
	client = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	client.ServerName = "example.com"
	return &tls.Config{Certificates: hs.TLS.Certificates}, client
}

// TestNotifyTLS logs in over implicit TLS and over STARTTLS, verifying
// the server's certificate.
func TestNotifyTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, mode := range []TLSMode{TLSImplicit, TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			f := startFake(t, "IMAP4rev1 STARTTLS NOTIFY", nil, serverTLS, mode == TLSImplicit, func(string) string { return "OK done" })
			ev := newEvents()
			w := NewWatcherWith(WatchOptions{
				Options: Options{Addr: f.addr, TLS: mode, TLSConfig: clientTLS, User: "u", Password: "p", Timeout: 5 * time.Second},
				Changed: ev.changed, Resync: func() { ev.resync.Add(1) },
			})
			defer w.Close()
			w.Watch([]string{"Calendar"})
			waitFor(t, "the NOTIFY SET", func() bool { return ev.resync.Load() == 1 })
			log := f.log()
			if mode == TLSStartTLS && !strings.Contains(log, " STARTTLS\n") {
				t.Errorf("the server saw\n%s\nwant STARTTLS", log)
			}
			if !strings.Contains(log, `LOGIN "u" "p"`) {
				t.Errorf("the server saw\n%s\nwant a LOGIN", log)
			}
		})
	}
	// A certificate that does not verify: no login.
	f := startFake(t, "IMAP4rev1 NOTIFY", nil, serverTLS, true, func(string) string { return "OK done" })
	w := NewWatcherWith(WatchOptions{Options: Options{Addr: f.addr, TLS: TLSImplicit, User: "u", Password: "p", Timeout: 5 * time.Second}})
	_, err := w.dialNotify(t.Context(), w.slots[0])
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("dialNotify with an unknown certificate: %v, want a TLS error", err)
	}
}

// fakeServer is a scripted IMAP server for one connection at a time: it
// answers each command with answer(command line), asks for synchronizing
// literals with "+", and writes what is sent on pushes.
type fakeServer struct {
	addr   string
	pushes chan string
	mu     sync.Mutex
	buf    bytes.Buffer // what clients sent; guarded by mu
}

func (f *fakeServer) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.buf.String()
}

func newFakeServer(t *testing.T, caps string, pushes chan string, answer func(cmd string) string) *fakeServer {
	return startFake(t, caps, pushes, nil, false, answer)
}

// startFake starts a fake server; with tlsConfig, it speaks TLS at once
// (implicit) or after STARTTLS.
func startFake(t *testing.T, caps string, pushes chan string, tlsConfig *tls.Config, implicit bool, answer func(cmd string) string) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: ln.Addr().String(), pushes: pushes}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if implicit {
				c = tls.Server(c, tlsConfig)
			}
			wg.Go(func() {
				defer func() { c.Close() }()
				done := make(chan struct{})
				defer close(done)
				var wmu sync.Mutex
				write := func(s string) {
					wmu.Lock()
					defer wmu.Unlock()
					c.Write([]byte(s))
				}
				if f.pushes != nil {
					go func() {
						for {
							select {
							case p := <-f.pushes:
								write(p)
							case <-done:
								return
							}
						}
					}()
				}
				write("* OK [CAPABILITY " + caps + "] fake ready\r\n")
				br := bufio.NewReader(c)
				for {
					line, err := readLine(br)
					if err != nil {
						return
					}
					cmd := line
					for {
						n, _, ok := literalAt(line)
						if !ok {
							break
						}
						write("+ go on\r\n")
						b := make([]byte, n)
						if _, err := io.ReadFull(br, b); err != nil {
							return
						}
						if line, err = readLine(br); err != nil {
							return
						}
						cmd += "\r\n" + string(b) + line
					}
					f.mu.Lock()
					f.buf.WriteString(cmd + "\n")
					f.mu.Unlock()
					tag, rest, _ := strings.Cut(cmd, " ")
					switch {
					case strings.HasPrefix(rest, "LOGOUT"):
						write("* BYE\r\n" + tag + " OK bye\r\n")
						return
					case strings.HasPrefix(rest, "STARTTLS") && tlsConfig != nil && !implicit:
						write(tag + " OK begin TLS\r\n")
						wmu.Lock()
						c = tls.Server(c, tlsConfig)
						wmu.Unlock()
						br = bufio.NewReader(c)
					case strings.HasPrefix(rest, "CAPABILITY"):
						write("* CAPABILITY " + caps + "\r\n" + tag + " OK done\r\n")
					default:
						if a := answer(rest); a != "" {
							write(tag + " " + a + "\r\n")
						}
					}
				}
			})
		}
	})
	return f
}

// literalAt finds a literal announcement ("{12}" or "{12+}") at the end
// of a line the fake server read: its size.
func literalAt(line string) (n int, at int, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, 0, false
	}
	at = strings.LastIndexByte(line, '{')
	if at < 0 {
		return 0, 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[at+1:len(line)-1], "+"))
	return n, at, err == nil
}

func TestMUTF7(t *testing.T) {
	tests := []struct{ utf8, mutf7 string }{
		{"Calendar", "Calendar"},
		{"R&D", "R&-D"},
		{"&", "&-"},
		{"Sp ét", "Sp &AOk-t"},
		{"Réunions d'équipe", "R&AOk-unions d'&AOk-quipe"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"😀", "&2D3eAA-"},
		{"a\tb", "a&AAk-b"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := mutf7.Encode(tt.utf8); got != tt.mutf7 {
			t.Errorf("mutf7.Encode(%q) = %q, want %q", tt.utf8, got, tt.mutf7)
		}
		if got, err := mutf7.Decode(tt.mutf7); err != nil || got != tt.utf8 {
			t.Errorf("mutf7.Decode(%q) = %q, %v, want %q", tt.mutf7, got, err, tt.utf8)
		}
	}
	for _, bad := range []string{
		"R&D",      // & not closed
		"&AOk",     // not closed either
		"&AOk!-",   // not base64
		"&AGE-",    // "a" shifted
		"&AO-",     // odd number of bytes
		"&2D0-",    // a lone surrogate
		"&3gDYPQ-", // surrogates in the wrong order
		"é",        // 8-bit
		"a\tb",     // a control character
	} {
		if got, err := mutf7.Decode(bad); err == nil {
			t.Errorf("mutf7.Decode(%q) = %q, want an error", bad, got)
		}
	}
}

// TestWatcherCyrusIdle runs the default watcher against Cyrus 3.6, which
// has no NOTIFY: it watches with IDLE on its own, within MaxIdle
// connections, and reports a change in a watched folder.
func TestWatcherCyrusIdle(t *testing.T) {
	srv := testbed.GetCyrus(t)
	srv.Reset(t)
	names := []string{"Calendar", "Other"}
	for _, f := range names {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), MaxIdle: 1, Changed: ev.changed})
	defer w.Close()
	cal, other := srv.SharedName("alice", names[0]), srv.SharedName("alice", names[1])
	w.Watch([]string{cal, other})
	waitChange(t, ev, cal, 0, "the IDLE watch to begin")
	if m := w.Mode(); m != WatchIdle {
		t.Fatalf("Mode() = %q against Cyrus, want idle", m)
	}
	if got := w.Watching(); !slices.Equal(got, []string{cal}) {
		t.Errorf("Watching() = %q, want only the most wanted folder", got)
	}
	n := ev.count(cal)
	srv.Append(t, "alice", names[1], emptyCalendar)
	srv.Append(t, "alice", names[0], emptyCalendar)
	waitChange(t, ev, cal, n, "APPEND")
	if got := ev.count(other); got != 0 {
		t.Errorf("the folder beyond MaxIdle was reported %d times", got)
	}
}

// TestMailboxesFilter: the NOTIFY filter go-imap writes out verbatim
// names each folder in modified UTF-7 and, where that differs, in UTF-8,
// quoted; and only folders whose announcements go-imap can read are
// watched.
func TestMailboxesFilter(t *testing.T) {
	got := mailboxesFilter([]string{"inbox", "Réunion", `a "b" \c`}, true)
	want := `mailboxes ("INBOX" "R&AOk-union" "Réunion" "a \"b\" \\c")`
	if string(got) != want {
		t.Errorf("mailboxesFilter(…, true) = %s, want %s", got, want)
	}
	if got := mailboxesFilter([]string{"Réunion"}, false); string(got) != `mailboxes ("R&AOk-union")` {
		t.Errorf("mailboxesFilter(Réunion, false) = %s", got)
	}
	for f, want := range map[string]bool{"Calendar": true, "Réunion": true, "R&D": false, "Ré&union": false, "a\r\nb": false} {
		if got := notifiable(f); got != want {
			t.Errorf("notifiable(%q) = %v, want %v", f, got, want)
		}
	}
}

// TestWatcherNotifyHold: with WatchOptions.Hold, a list that would only
// swap the folders of a full NOTIFY set for others is not taken within
// Hold (each swap costs the server a NOTIFY SET, an EXAMINE per new folder and
// a resync of everything): Watching, and what the server reports, stay as
// they were. A list that fits more folders is taken at once.
func TestWatcherNotifyHold(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	const a, b, c = "HoldA", "HoldB", "HoldC"
	for _, f := range []string{a, b, c} {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	shared := func(f string) string { return srv.SharedName("alice", f) }
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), MaxNotify: 2, NotifyConns: 1, Hold: time.Hour,
		Changed: ev.changed, Resync: func() { ev.resync.Add(1) }})
	defer w.Close()
	w.Watch([]string{shared(a), shared(b)})
	waitFor(t, "the NOTIFY connection", func() bool { return ev.resync.Load() == 1 })

	// Full (MaxNotify 2): a swap is held.
	w.Watch([]string{shared(c), shared(a)})
	if got, want := w.Watching(), []string{shared(a), shared(b)}; !slices.Equal(got, want) {
		t.Errorf("Watching() after a swap within Hold = %q, want %q", got, want)
	}
	srv.Append(t, "alice", c, emptyCalendar)
	n := ev.count(shared(b))
	srv.Append(t, "alice", b, emptyCalendar)
	waitChange(t, ev, shared(b), n, "APPEND to a folder of the set that stands")
	if got := ev.count(shared(c)); got != 0 {
		t.Errorf("folder of the held list reported %d times", got)
	}
	if got := ev.resync.Load(); got != 1 {
		t.Errorf("%d resyncs, want 1: the set was replaced", got)
	}

	// Not full: taken at once.
	w2 := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), MaxNotify: 3, NotifyConns: 1, Hold: time.Hour,
		Changed: func(string) {}, Resync: func() {}})
	defer w2.Close()
	w2.Watch([]string{shared(a)})
	// Mode says NOTIFY once the connection is up; its folders count as
	// watched once its first NOTIFY SET is done.
	waitFor(t, "the second watcher's NOTIFY SET", func() bool {
		return w2.Mode() == WatchNotify && slices.Equal(w2.Watching(), []string{shared(a)})
	})
	w2.Watch([]string{shared(c)})
	if got, want := w2.Watching(), []string{shared(c)}; !slices.Equal(got, want) {
		t.Errorf("Watching() after a list that fits = %q, want %q", got, want)
	}
}

// TestWatcherNotifyAnnouncesRights: Dovecot announces a change of a
// watched folder's ACL (a reader's grant, the proxy's own rights) and of
// its annotations as it does a new message. The cache relies on it to
// check a watched owner only every publish.revalidate_watched
// (feed.Options.RevalidateWatched) instead of every publish.revalidate.
func TestWatcherNotifyAnnouncesRights(t *testing.T) {
	srv := testbed.Get(t)
	f := aliceCalendar(t, srv)
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), Changed: ev.changed, Resync: func() { ev.resync.Add(1) }})
	defer w.Close()
	w.Watch([]string{f})
	waitFor(t, "the NOTIFY connection", func() bool { return ev.resync.Load() == 1 })
	for _, step := range []struct {
		what string
		do   func()
	}{
		{"a reader's grant", func() { srv.SetACL(t, "alice", "Calendar", "bob", "lr") }},
		{"a reader's grant narrowed", func() { srv.SetACL(t, "alice", "Calendar", "bob", "l") }},
		{"the folder's Kolab type", func() {
			srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/folder-type", "event")
		}},
		{"the proxy's r revoked", func() { srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "l") }},
	} {
		n := ev.count(f)
		step.do()
		waitChange(t, ev, f, n, step.what)
	}
}

// TestWatcherNotifySettled: with Settled, a NOTIFY connection reports the
// state of each folder once its NOTIFY SET is in effect, read after the
// SET: a message that arrived while the folder was not watched shows in
// it; a folder whose STATUS fails (it does not exist) is reported Changed.
func TestWatcherNotifySettled(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	for _, f := range []string{"SetA", "SetB", "SetC"} {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	a, b, c := srv.SharedName("alice", "SetA"), srv.SharedName("alice", "SetB"), srv.SharedName("alice", "SetC")
	ev := newEvents()
	var mu sync.Mutex
	settled := map[string][]State{}
	last := func(f string) (State, int) {
		mu.Lock()
		defer mu.Unlock()
		l := settled[f]
		if len(l) == 0 {
			return State{}, 0
		}
		return l[len(l)-1], len(l)
	}
	w := NewWatcherWith(WatchOptions{Options: proxyOptions(srv), Changed: ev.changed,
		Settled: func(f string, st State) {
			mu.Lock()
			settled[f] = append(settled[f], st)
			mu.Unlock()
		}})
	defer w.Close()
	w.Watch([]string{a, b})
	waitFor(t, "the first NOTIFY SET settled", func() bool {
		_, na := last(a)
		_, nb := last(b)
		return na == 1 && nb == 1
	})
	if st, _ := last(a); st.UIDValidity == 0 || st.UIDNext == 0 {
		t.Errorf("Settled(%q) = %+v, want a state read by STATUS", a, st)
	}
	if n := ev.count(a) + ev.count(b); n != 0 {
		t.Errorf("Changed called %d times for folders whose state was read", n)
	}

	// b leaves the watch; a message arrives in it unseen; b comes back.
	before, _ := last(b)
	w.Watch([]string{a})
	waitFor(t, "b dropped", func() bool { return slices.Equal(w.Watching(), []string{a}) })
	srv.Append(t, "alice", "SetB", emptyCalendar)
	_, n := last(b)
	w.Watch([]string{a, b, c})
	waitFor(t, "b settled again", func() bool { _, m := last(b); return m > n })
	if st, _ := last(b); st.Messages != before.Messages+1 || st.UIDNext <= before.UIDNext {
		t.Errorf("Settled(%q) after an unseen APPEND = %+v, before %+v: want one more message", b, st, before)
	}
	waitFor(t, "c settled", func() bool { _, m := last(c); return m == 1 })

	// A folder that does not exist (any more) answers no STATUS: Changed,
	// not Settled.
	gone := srv.SharedName("alice", "Gone")
	w.Watch([]string{a, b, c, gone})
	waitFor(t, "the missing folder reported changed", func() bool { return ev.count(gone) > 0 })
	if _, m := last(gone); m != 0 {
		t.Errorf("Settled called for a folder whose STATUS failed")
	}
}

// TestWatcherWatchedOnceSettled: a folder counts as watched (Watched) only
// once the NOTIFY SET that names it is in effect and its state was read
// after it (Settled); while a SET replaces another, the folders of both
// do not (after NOTIFY NONE the server announces nothing, and what
// changed meanwhile is known only once their states are read again), so
// the cache checks them as without NOTIFY for that while.
func TestWatcherWatchedOnceSettled(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	for _, f := range []string{"WatchedA", "WatchedB"} {
		srv.CreateFolder(t, "alice", f)
		srv.SetACL(t, "alice", f, testbed.Proxy, "lr")
	}
	a, b := srv.SharedName("alice", "WatchedA"), srv.SharedName("alice", "WatchedB")
	var w *Watcher
	var settled record[string] // "name watched=bool", as Settled saw it
	// w is set before Watch starts the goroutines that call Settled.
	w = NewWatcherWith(WatchOptions{Options: proxyOptions(srv), Changed: func(string) {},
		Settled: func(f string, _ State) { settled.add(fmt.Sprintf("%s watched=%v", f, w.Watched(f))) }})
	defer w.Close()
	seen := settled.all

	w.Watch([]string{a})
	waitFor(t, "the first NOTIFY SET settled", func() bool { return len(seen()) == 1 })
	waitFor(t, "a watched", func() bool { return w.Watched(a) })
	if w.Watched(b) {
		t.Errorf("Watched(%q) before any SET names it", b)
	}

	w.Watch([]string{a, b})
	waitFor(t, "the second NOTIFY SET settled", func() bool { return len(seen()) == 3 })
	waitFor(t, "a and b watched", func() bool { return w.Watched(a) && w.Watched(b) })
	want := []string{a + " watched=false", a + " watched=false", b + " watched=false"}
	got := seen()
	slices.Sort(got[1:])
	if !slices.Equal(got, want) {
		t.Errorf("Watched as each folder's state was read after its SET:\n got %q\nwant %q", got, want)
	}
	if watching := w.Watching(); !slices.Equal(watching, []string{a, b}) {
		t.Errorf("Watching() = %q, want %q", watching, []string{a, b})
	}

	w.Close()
	if w.Watched(a) || w.Watched(b) {
		t.Errorf("Watched after Close: a %v, b %v", w.Watched(a), w.Watched(b))
	}
}

// BenchmarkWatched: what the cache's request path pays to ask whether a
// folder is watched, with four NOTIFY connections of 2,000 folders each,
// for a folder of the last one and for one none watches; "map" is the
// baseline, one look-up in a map of all 8,000 (the list the cache was
// given every 2 s before Watched).
func BenchmarkWatched(b *testing.B) {
	w := NewWatcherWith(WatchOptions{NotifyConns: 4})
	all := map[string]bool{}
	for i, s := range w.slots {
		var names []string
		for j := range 2000 {
			names = append(names, fmt.Sprintf("shared/u%05d/Calendar", i*2000+j))
			all[names[j]] = true
		}
		s.setSettled(names)
		s.live.Store(true)
	}
	for _, c := range []struct {
		name, folder string
		watched      func(string) bool
	}{
		{"map/watched", "shared/u07999/Calendar", func(f string) bool { return all[f] }},
		{"map/not", "shared/u09999/Calendar", func(f string) bool { return all[f] }},
		{"Watched/watched", "shared/u07999/Calendar", w.Watched},
		{"Watched/not", "shared/u09999/Calendar", w.Watched},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			want := strings.HasSuffix(c.name, "/watched")
			for b.Loop() {
				if c.watched(c.folder) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// TestNotifyOverflowUnwatches: a server that drops the NOTIFY SET
// (NOTIFICATIONOVERFLOW) announces nothing until it is set again, so its
// folders stop counting as watched at once, before the resync that follows
// (and come back once the new SET is done).
func TestNotifyOverflowUnwatches(t *testing.T) {
	pushes := make(chan string, 1)
	f := newFakeServer(t, "IMAP4rev1 NOTIFY LIST-EXTENDED", pushes, func(string) string { return "OK done" })
	var w *Watcher
	var atResync record[bool] // Watched("Calendar") as each resync began
	w = NewWatcherWith(WatchOptions{
		Options: Options{Addr: f.addr, TLS: TLSNone, User: "user", Password: "pw", Timeout: 5 * time.Second},
		Resync:  func() { atResync.add(w.Watched("Calendar")) },
	})
	defer w.Close()
	resyncs := atResync.all
	w.Watch([]string{"Calendar"})
	waitFor(t, "the NOTIFY SET", func() bool { return w.Watched("Calendar") })
	pushes <- "* OK [NOTIFICATIONOVERFLOW] too many\r\n"
	waitFor(t, "the resync after the overflow", func() bool { return len(resyncs()) >= 2 })
	waitFor(t, "the NOTIFY SET again", func() bool { return w.Watched("Calendar") })
	if got := resyncs(); slices.Contains(got, true) {
		t.Errorf("Watched(Calendar) as each resync began: %v, want false: nothing was announced then", got)
	}
}

// record is a list that callbacks on other goroutines append to.
type record[T any] struct {
	mu   sync.Mutex
	list []T
}

func (r *record[T]) add(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, v)
}

func (r *record[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// TestWatcherFindsHungServer: a server that stops answering announces
// nothing, which looks like nothing changing. Once a keepalive NOOP goes
// unanswered for KeepaliveTimeout, the folders are no longer watched, so
// that the cache checks them (and, while that fails, answers stale)
// instead of calling them fresh until the IMAP timeout, or for as long
// as the server hangs. When it answers again they are watched again.
func TestWatcherFindsHungServer(t *testing.T) {
	srv := testbed.Get(t)
	folder := aliceCalendar(t, srv)
	var hung atomic.Bool
	addr := testbed.Relay(t, srv.Addr, func(int64) testbed.Fault {
		if hung.Load() {
			return testbed.Stall
		}
		return testbed.Forward
	})
	opts := proxyOptions(srv)
	opts.Addr, opts.Timeout = addr, time.Minute
	ev := newEvents()
	w := NewWatcherWith(WatchOptions{Options: opts, Changed: ev.changed, Resync: func() {},
		Keepalive: 200 * time.Millisecond, KeepaliveTimeout: 300 * time.Millisecond})
	defer w.Close()
	w.Watch([]string{folder})
	waitFor(t, "the folder watched", func() bool { return w.Watched(folder) })
	hung.Store(true)
	start := time.Now()
	waitFor(t, "the folder no longer watched while the server hangs", func() bool { return !w.Watched(folder) })
	// Well within the IMAP timeout (a minute): the keepalive's bound.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the hang was found after %v", took)
	}
	hung.Store(false)
	waitFor(t, "the folder watched again", func() bool { return w.Watched(folder) })
}
