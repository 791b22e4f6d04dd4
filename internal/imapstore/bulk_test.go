package imapstore

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/testbed"
)

const bulkWholeBelow = 64 << 10

// fetchResult is what one Fetch gave: its listing and, sorted by UID, the
// messages it handed to Received.
type fetchResult struct {
	listing  *Listing
	received []Message
	changes  *atomic.Int32 // calls of Options.OnChange
}

// fetchBoth reads folder with q, the way a cold build does, once on the
// bulk connection and once with go-imap alone, on sessions of the proxy.
// It returns both results, and the commands each session sent.
//
// bulkAddr is where the bulk connection goes, plainAddr where the go-imap
// session of the second fetch goes: the server, or a relay to it.
func fetchBoth(t *testing.T, srv *testbed.Server, bulkAddr, plainAddr, folder string) (bulk, plain fetchResult, bulkCmds, plainCmds map[string]int) {
	t.Helper()
	run := func(addr string, off bool) (fetchResult, map[string]int) {
		cmds := map[string]int{}
		res := fetchResult{changes: new(atomic.Int32)}
		sessionAddr := srv.Addr
		if off {
			sessionAddr = addr
		}
		s, err := Dial(t.Context(), Options{
			Addr: sessionAddr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy),
			Timeout: 10 * time.Second, Observe: func(cmd string, _ error, _ time.Duration) { cmds[cmd]++ },
			OnChange: func() { res.changes.Add(1) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.bulk.off = off
		s.opts.Addr = addr // where the bulk connection goes
		res.listing, err = s.Fetch(t.Context(), folder, Query{
			Want:       func(mt string) bool { return mt == "text/calendar" },
			WholeBelow: bulkWholeBelow,
			Received:   func(m Message) { res.received = append(res.received, m) },
		})
		if err != nil {
			t.Fatalf("Fetch %q (bulk off: %v): %v", folder, off, err)
		}
		slices.SortFunc(res.received, func(a, b Message) int { return int(a.UID) - int(b.UID) })
		return res, cmds
	}
	bulk, bulkCmds = run(bulkAddr, false)
	plain, plainCmds = run(plainAddr, true)
	return bulk, plain, bulkCmds, plainCmds
}

// sameResults fails the test where the two results differ: their
// listings but for the messages, and what each message gives as calendar
// data, whichever way it came (whole through Received, its calendar part
// through Received, or its calendar parts in the listing).
func sameResults(t *testing.T, bulk, plain fetchResult) {
	t.Helper()
	strip := func(l *Listing) Listing {
		c := *l
		c.Messages = nil
		return c
	}
	if a, b := strip(bulk.listing), strip(plain.listing); !reflect.DeepEqual(a, b) {
		t.Errorf("listings differ:\nbulk    %+v\ngo-imap %+v", a, b)
	}
	a, b := contents(t, bulk), contents(t, plain)
	if len(a) != len(b) {
		t.Errorf("bulk gave %d messages, go-imap %d", len(a), len(b))
	}
	for uid, want := range b {
		if got, ok := a[uid]; !ok || !slices.Equal(got, want) {
			t.Errorf("UID %d: bulk %q, go-imap %q", uid, got, want)
		}
	}
}

// contents is what each message of res gives as calendar data, by UID:
// each calendar part's media type, charset and decoded body, found as
// fbpub finds them (calendar.MessageParts for a whole message).
func contents(t *testing.T, res fetchResult) map[uint32][]string {
	t.Helper()
	out := map[uint32][]string{}
	add := func(m Message) {
		if _, dup := out[m.UID]; dup {
			t.Errorf("UID %d came twice", m.UID)
		}
		out[m.UID] = []string{}
		if m.Raw != nil {
			parts, _ := calendar.MessageParts(m.Raw)
			for _, p := range parts {
				out[m.UID] = append(out[m.UID], p.MediaType+" "+p.Params["charset"]+"\n"+string(p.Body))
			}
			return
		}
		for _, p := range m.Parts {
			body := string(calendar.DecodeTransfer(p.Encoding, p.Body))
			if p.TooLarge {
				body = "(too large)"
			}
			out[m.UID] = append(out[m.UID], p.MediaType+" "+p.Params["charset"]+"\n"+body)
		}
	}
	for _, m := range res.received {
		add(m)
	}
	for _, m := range res.listing.Messages {
		add(m)
	}
	return out
}

// variedFolder fills alice's folder with the messages a calendar folder
// may hold, and returns their count.
func variedFolder(t *testing.T, srv *testbed.Server, folder string) int {
	srv.CreateFolder(t, "alice", folder)
	srv.SetACL(t, "alice", folder, testbed.Proxy, "lr")
	msgs := []struct {
		msg   []byte
		flags []imap.Flag
	}{
		{testbed.CalendarMessage("plain", fmt.Sprintf(fetchICS, "p1", "plain")), nil},
		{testbed.CalendarMessage("flagged", fmt.Sprintf(fetchICS, "f1", "flagged")), []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "$Label1", "work"}},
		{testbed.CalendarMessage("gone", fmt.Sprintf(fetchICS, "g1", "gone")), []imap.Flag{imap.FlagDeleted}},
		{testbed.CalendarMessage("Gruesse", fmt.Sprintf(fetchICS, "u1", "Grüße aus Köln, 東京")), []imap.Flag{imap.FlagAnswered}},
		{bigMessage("b1", 70_000), nil},
		{padded(t, bulkWholeBelow-1), nil}, // the largest that comes whole
		{padded(t, bulkWholeBelow), nil},   // the smallest that does not
		{[]byte("Subject: no calendar\r\n\r\nhello\r\n"), []imap.Flag{imap.FlagDraft}},
	}
	for _, m := range msgs {
		srv.Append(t, "alice", folder, m.msg, m.flags...)
	}
	return len(msgs)
}

// latin1Base64 is a Kolab-style message whose calendar, part 2, is
// ISO-8859-1 text in base64.
func latin1Base64(uid string) []byte {
	ics := []byte(fmt.Sprintf(fetchICS, uid, "Gr\xfc\xdfe"))
	enc := base64.StdEncoding.EncodeToString(ics)
	var b strings.Builder
	b.WriteString("Subject: " + uid + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"ZZ\"\r\n\r\n")
	b.WriteString("--ZZ\r\nContent-Type: text/plain\r\n\r\nA calendar object.\r\n")
	b.WriteString("--ZZ\r\nContent-Type: text/calendar; charset=ISO-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--ZZ--\r\n")
	return []byte(b.String())
}

// padded is a text message of exactly n octets, in lines of at most 80.
func padded(t *testing.T, n int) []byte {
	msg := []byte("Subject: padded to " + strconv.Itoa(n) + "\r\n\r\n")
	for len(msg)+80 < n {
		msg = append(msg, strings.Repeat("x", 78)+"\r\n"...)
	}
	if rest := n - len(msg) - 2; rest >= 0 {
		msg = append(msg, strings.Repeat("y", rest)+"\r\n"...)
	}
	if len(msg) != n {
		t.Fatalf("padded to %d octets, not %d", len(msg), n)
	}
	return msg
}

// TestBulkFetchMatchesGoIMAP: on both servers, the bulk connection and
// go-imap give the same listing and hand over the same messages, for a
// folder of varied messages and for an empty one with a non-ASCII name.
func TestBulkFetchMatchesGoIMAP(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			n := variedFolder(t, srv, "Calendar")
			srv.CreateFolder(t, "alice", "Kalender/Grüße")
			srv.SetACL(t, "alice", "Kalender/Grüße", testbed.Proxy, "lr")

			bulk, plain, bulkCmds, _ := fetchBoth(t, srv, srv.Addr, srv.Addr, srv.SharedName("alice", "Calendar"))
			sameResults(t, bulk, plain)
			if len(bulk.listing.UIDs) != n || len(bulk.received) != 5 {
				t.Errorf("%d UIDs, %d handed over; want %d, 5", len(bulk.listing.UIDs), len(bulk.received), n)
			}
			if bulkCmds["LOGIN"] != 2 || bulkCmds["SELECT"] != 2 {
				t.Errorf("commands %v: want 2 LOGIN (session, bulk), 2 SELECT (bulk, then go-imap for the large messages)", bulkCmds)
			}

			// The same and more, ending with a Kolab-style message: the
			// bulk connection reads body structures and part 2.
			n = variedFolder(t, srv, "Structured")
			for _, m := range [][]byte{singlePart("o1"), twoCalendars("t"), latin1Base64("b64"), testbed.CalendarMessage("z", fmt.Sprintf(fetchICS, "z1", "last"))} {
				srv.Append(t, "alice", "Structured", m)
				n++
			}
			bulk, plain, bulkCmds, _ = fetchBoth(t, srv, srv.Addr, srv.Addr, srv.SharedName("alice", "Structured"))
			sameResults(t, bulk, plain)
			// Handed over: the six calendar messages with part 2 (one
			// after a large attachment, one in base64 and Latin-1), the
			// three without a calendar; the other two by body structure.
			if len(bulk.listing.UIDs) != n || len(bulk.received) != 9 || bulkCmds["FETCH"] != 1 {
				t.Errorf("%d UIDs, %d handed over, commands %v; want %d, 9, one FETCH (the probe)", len(bulk.listing.UIDs), len(bulk.received), bulkCmds, n)
			}

			bulk, plain, bulkCmds, _ = fetchBoth(t, srv, srv.Addr, srv.Addr, srv.SharedName("alice", "Kalender/Grüße"))
			sameResults(t, bulk, plain)
			if bulkCmds["SELECT"] != 1 || len(bulk.listing.UIDs) != 0 || !bulk.listing.FlagsComplete {
				t.Errorf("empty folder: commands %v, listing %+v", bulkCmds, bulk.listing)
			}
		})
	}
}

// TestBulkFetchReused: the bulk connection, kept after one folder, reads
// the next one's state, not what is left of the first's.
func TestBulkFetchReused(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			variedFolder(t, srv, "Calendar")
			srv.CreateFolder(t, "alice", "Empty")
			srv.SetACL(t, "alice", "Empty", testbed.Proxy, "lr")
			cmds := map[string]int{}
			s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { cmds[cmd]++ })
			q := Query{Want: func(string) bool { return true }, WholeBelow: bulkWholeBelow}
			if _, err := s.Fetch(t.Context(), srv.SharedName("alice", "Calendar"), q); err != nil {
				t.Fatal(err)
			}
			bulk, err := s.Fetch(t.Context(), srv.SharedName("alice", "Empty"), q)
			if err != nil {
				t.Fatal(err)
			}
			s.bulk.off = true
			plain, err := s.Fetch(t.Context(), srv.SharedName("alice", "Empty"), q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(bulk, plain) || cmds["LOGIN"] != 2 {
				t.Errorf("empty folder after another: bulk %+v, go-imap %+v; %d LOGIN, want 2", bulk, plain, cmds["LOGIN"])
			}
		})
	}
}

// TestBulkFetchNotFound: a folder the proxy may not see is ErrNotFound,
// as with go-imap, and the bulk connection stays for the next fetch.
func TestBulkFetchNotFound(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	cmds := map[string]int{}
	s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { cmds[cmd]++ })
	q := Query{Want: func(string) bool { return true }, WholeBelow: bulkWholeBelow}
	for range 2 {
		if _, err := s.Fetch(t.Context(), testbed.SharedName("alice", "Calendar"), q); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Fetch of a folder without rights: %v, want ErrNotFound", err)
		}
	}
	if cmds["LOGIN"] != 2 || cmds["SELECT"] != 2 || s.bulk.idle == nil {
		t.Errorf("commands %v, bulk connection kept: %v; want 2 LOGIN, 2 SELECT, kept", cmds, s.bulk.idle != nil)
	}
}

// TestBulkFetchUnsolicited: responses a server may slip between the
// FETCH responses (new messages, expunges, flags of another message, a
// new HIGHESTMODSEQ) change nothing in the listing, and are reported as
// changes; a response the bulk reader does not know makes go-imap fetch
// instead, and each message is still handed over once.
func TestBulkFetchUnsolicited(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	variedFolder(t, srv, "Calendar")
	folder := testbed.SharedName("alice", "Calendar")

	unsolicited := []string{"* 9 EXISTS\r\n", "* 1 RECENT\r\n", "* OK [HIGHESTMODSEQ 999] x\r\n",
		"* 1 FETCH (FLAGS (\\Seen \\Deleted))\r\n", "* 1 FETCH (UID 1 MODSEQ (1000) FLAGS (\\Deleted))\r\n", "* 8 EXPUNGE\r\n"}
	relay := injectRelay(t, srv.Addr, func(i int) string {
		if i < len(unsolicited) {
			return unsolicited[i]
		}
		return ""
	})
	bulk, plain, _, _ := fetchBoth(t, srv, relay, relay, folder)
	sameResults(t, bulk, plain)
	if bulk.changes.Load() == 0 {
		t.Error("no change reported for the unsolicited responses")
	}

	for _, bad := range []string{"* 2 FETCH (UID 2 X-GM-LABELS (a))\r\n", "* 2 VANISHED 1:3\r\n", "* 2 FETCH (UID 2 BODY[]<0> {3+}\r\nabc)\r\n"} {
		relay := injectRelay(t, srv.Addr, func(i int) string {
			if i == 2 {
				return bad
			}
			return ""
		})
		bulk, plain, bulkCmds, plainCmds := fetchBoth(t, srv, relay, srv.Addr, folder)
		sameResults(t, bulk, plain)
		if bulkCmds["UID FETCH"] != plainCmds["UID FETCH"]+1 {
			t.Errorf("after %q: commands %v, go-imap alone %v; want the bulk UID FETCH more", bad, bulkCmds, plainCmds)
		}
	}
}

// TestBulkTLS: the bulk connection logs in over implicit TLS and over
// STARTTLS, verifying the certificate, sends a password that cannot be
// quoted as a literal (waiting for the server's continuation), and names
// a folder in modified UTF-7.
func TestBulkTLS(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, mode := range []TLSMode{TLSImplicit, TLSStartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			f := startFake(t, "IMAP4rev1 STARTTLS", nil, serverTLS, mode == TLSImplicit, func(string) string { return "OK done" })
			b, err := dialBulk(t.Context(), &Options{Addr: f.addr, TLS: mode, TLSConfig: clientTLS, User: "u", Password: "pässwort", Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			st, msgs, err := b.fetchAll("Kalender/Grüße", false, nil, fixedPlan(wholeFetch(64)), func(*imapclient.FetchMessageBuffer, *structure) {}, func() {})
			b.close()
			if err != nil || st.Messages != 0 || len(msgs) != 0 {
				t.Errorf("fetchAll of an empty folder: %+v, %d messages, %v", st, len(msgs), err)
			}
			log := f.log()
			for _, want := range []string{"B1 LOGIN \"u\" {9}\r\npässwort\n", "B2 EXAMINE \"Kalender/Gr&APwA3w-e\"\n"} {
				if !strings.Contains(log, want) {
					t.Errorf("the server saw\n%s\nwant %q", log, want)
				}
			}
			if mode == TLSStartTLS && !strings.Contains(log, "S STARTTLS\n") {
				t.Errorf("the server saw\n%s\nwant STARTTLS", log)
			}
		})
	}
	f := startFake(t, "IMAP4rev1", nil, serverTLS, true, func(string) string { return "OK done" })
	if _, err := dialBulk(t.Context(), &Options{Addr: f.addr, TLS: TLSImplicit, User: "u", Password: "p", Timeout: 5 * time.Second}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("dialBulk with an unknown certificate: %v, want a TLS error", err)
	}
}

// injectRelay relays a connection to addr and, after the i-th complete
// FETCH response from the server (counted from 0), sends inject(i) to
// the client as well.
func injectRelay(t *testing.T, addr string, inject func(i int) string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() { relayResponses(c, s, inject); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func relayResponses(w io.Writer, r io.Reader, inject func(int) string) {
	br := bufio.NewReader(r)
	fetches, inFetch := 0, false
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return
		}
		if !inFetch && bytes.HasPrefix(line, []byte("* ")) && bytes.Contains(line, []byte(" FETCH (")) {
			inFetch = true
		}
		w.Write(line)
		if n, _, ok := literalAt(strings.TrimRight(string(line), "\r\n")); ok {
			io.CopyN(w, br, n)
			continue
		}
		if inFetch {
			io.WriteString(w, inject(fetches))
			fetches++
			inFetch = false
		}
	}
}

// FuzzBulkFetch feeds the bulk reader a server's answer to the UID FETCH
// and checks it against go-imap reading the same: whatever the bulk
// reader accepts, go-imap reads too, message for message (go-imap drops
// a message whose UID comes after its literal, which the bulk reader
// keeps). Run with go test -fuzz FuzzBulkFetch ./internal/imapstore.
func FuzzBulkFetch(f *testing.F) {
	for _, seed := range []string{
		"* 1 FETCH (UID 4 FLAGS (\\Seen) BODY[]<0> {5}\r\nhello)\r\n",
		"* 1 FETCH (MODSEQ (12) UID 4 FLAGS () BODY[]<0> {5}\r\nhello)\r\n* 2 FETCH (UID 5 FLAGS (\\Deleted $Label1 work) MODSEQ (13) BODY[]<0> NIL)\r\n",
		"* 1 FETCH (UID 4 BODY[]<0> \"a \\\"b\\\\\" FLAGS (\\Answered))\r\n* 3 EXISTS\r\n* OK [HIGHESTMODSEQ 90] x\r\n",
		"* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (UID 9 FLAGS (\\Flagged))\r\n* 2 FETCH (UID 9 BODY[]<0> {0}\r\n)\r\n",
		"* 1 FETCH (UID 4 BODY[]<0> {3}\r\nabc FLAGS (x))\r\n* 1 EXPUNGE\r\n",
		"* 1 fetch (uid 4 flags (\\seen) body[]<0> {2}\r\nhi)\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		for _, line := range bytes.Split(answer, []byte("\n")) {
			if !bytes.HasPrefix(line, []byte("* ")) && bytes.IndexAny(line, "BT+") == 0 {
				t.Skip() // a tagged response or a continuation: not the server's to send here
			}
		}
		lean, leanErr := fakeBulkFetch(t, answer)
		if leanErr != nil {
			return
		}
		plain, err := fakeGoIMAPFetch(t, answer)
		if err != nil && !statusLine.Match(answer) {
			t.Fatalf("the bulk reader accepts what go-imap refuses (%v):\n%q", err, answer)
		}
		byUID := map[imap.UID]*imapclient.FetchMessageBuffer{}
		for _, m := range lean {
			byUID[m.UID] = m
		}
		for _, p := range plain {
			m := byUID[p.UID]
			if m == nil {
				t.Fatalf("go-imap read UID %d, the bulk reader did not:\n%q", p.UID, answer)
			}
			if !slices.Equal(m.Flags, p.Flags) || m.ModSeq != p.ModSeq || !bytes.Equal(m.FindBodySection(wholeSection(64)), p.FindBodySection(wholeSection(64))) {
				t.Fatalf("UID %d: bulk %+v, go-imap %+v:\n%q", p.UID, m, p, answer)
			}
		}
	})
}

// statusLine finds untagged status responses and FLAGS, which the bulk
// reader passes over (their codes do not matter to it) and go-imap
// parses, more strictly.
var statusLine = regexp.MustCompile(`(?im)^\* (OK|NO|BAD|FLAGS)\b`)

// fakeFetchServer answers LOGIN, EXAMINE and SELECT for a folder that
// claims the most messages there can be, and UID FETCH with answer, on
// conn.
func fakeFetchServer(conn net.Conn, answer []byte) {
	defer conn.Close()
	conn.Write([]byte("* OK [CAPABILITY IMAP4rev1 CONDSTORE] fake\r\n"))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch cmd := strings.ToUpper(rest); {
		case strings.HasPrefix(cmd, "EXAMINE"), strings.HasPrefix(cmd, "SELECT"):
			fmt.Fprintf(conn, "* 4294967295 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 10] x\r\n%s OK [READ-ONLY] done\r\n", tag)
		case strings.HasPrefix(cmd, "UID FETCH"):
			// Then hang up: a client still waiting for the tagged
			// answer (which an unterminated literal in answer ate)
			// fails at once.
			conn.Write(answer)
			fmt.Fprintf(conn, "\r\n%s OK done\r\n", tag)
			return
		case strings.HasPrefix(cmd, "LOGOUT"):
			fmt.Fprintf(conn, "* BYE x\r\n%s OK done\r\n", tag)
			return
		default:
			fmt.Fprintf(conn, "%s OK done\r\n", tag)
		}
	}
}

func fakeBulkFetch(t *testing.T, answer []byte) ([]*imapclient.FetchMessageBuffer, error) {
	client, server := net.Pipe()
	go fakeFetchServer(server, answer)
	defer client.Close()
	var changes atomic.Int32
	b := &bulkConn{conn: client, br: bufio.NewReaderSize(client, maxLine), timeout: 5 * time.Second}
	if _, err := b.line(); err != nil { // the greeting
		t.Fatal(err)
	}
	_, msgs, err := b.fetchAll("INBOX", true, nil, fixedPlan(wholeFetch(64)), func(*imapclient.FetchMessageBuffer, *structure) {}, func() { changes.Add(1) })
	for _, m := range msgs {
		if m.UID == 0 || len(m.FindBodySection(wholeSection(64))) > 64 {
			t.Fatalf("bulk reader returned %+v from %q", m, answer)
		}
	}
	return msgs, err
}

func fakeGoIMAPFetch(t *testing.T, answer []byte) ([]*imapclient.FetchMessageBuffer, error) {
	return fakeGoIMAPFetchOf(t, answer, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{wholeSection(64)}})
}

// fakeGoIMAPFetchOf is go-imap reading answer to a UID FETCH of opts.
func fakeGoIMAPFetchOf(t *testing.T, answer []byte, opts *imap.FetchOptions) ([]*imapclient.FetchMessageBuffer, error) {
	client, server := net.Pipe()
	go fakeFetchServer(server, answer)
	c := imapclient.New(client, nil)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	s := &Session{client: c, opts: Options{Timeout: 5 * time.Second}}
	return s.fetchMetaEach(imap.UIDSet{imap.UIDRange{Start: 1}}, opts, nil)
}

// fixedPlan plans f whatever the folder holds.
func fixedPlan(f bulkFetch) func(*structure) bulkFetch {
	return func(*structure) bulkFetch { return f }
}
