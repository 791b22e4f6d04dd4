package upload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// onBothServers runs f against Dovecot and against Cyrus, which spell
// namespaces, rights and errors differently.
func onBothServers(t *testing.T, f func(*testing.T, *testbed.Server)) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { f(t, srv) })
	}
}

func dialer(addr string) func(ctx context.Context, user, password string) (*imapstore.Session, error) {
	return func(ctx context.Context, user, password string) (*imapstore.Session, error) {
		return imapstore.Dial(ctx, imapstore.Options{Addr: addr, TLS: imapstore.TLSNone, User: user, Password: password, Timeout: 5 * time.Second})
	}
}

func newService(addr string) *Service {
	return New(Options{Dial: dialer(addr), Now: func() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }})
}

// ev is one VEVENT; seq "" leaves SEQUENCE out.
func ev(uid, summary, seq string) string {
	s := "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250310T090000Z\r\nDTEND:20250310T100000Z\r\nSUMMARY:" + summary + "\r\n"
	if seq != "" {
		s += "SEQUENCE:" + seq + "\r\n"
	}
	return s + "END:VEVENT\r\n"
}

func cal(events ...string) []byte {
	return []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub tests//EN\r\n" + strings.Join(events, "") + "END:VCALENDAR\r\n")
}

// content reads a folder as the owner: summary by UID, and how many
// messages hold each UID.
func content(t *testing.T, srv *testbed.Server, owner, folder string) (summaries map[string]string, copies map[string]int) {
	t.Helper()
	s, err := dialer(srv.Addr)(t.Context(), owner, testbed.Password(owner))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := s.Fetch(t.Context(), folder, imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: 1 << 20})
	if errors.Is(err, imapstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	summaries, copies = map[string]string{}, map[string]int{}
	for _, m := range l.Messages {
		if l.Deleted[m.UID] {
			continue
		}
		objs, _ := messageObjects(m)
		for _, o := range objs {
			copies[o.UID]++
			summaries[o.UID], _ = o.Events()[0].Props.Text(ical.PropSummary)
		}
	}
	return summaries, copies
}

func state(t *testing.T, srv *testbed.Server, owner, folder string) imapstore.State {
	t.Helper()
	s, err := dialer(srv.Addr)(t.Context(), owner, testbed.Password(owner))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.States(t.Context(), []string{folder})
	if err != nil {
		t.Fatal(err)
	}
	return st[folder]
}

func seed(t *testing.T, srv *testbed.Server, events ...string) {
	t.Helper()
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	for _, e := range events {
		srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("event", string(cal(e))))
	}
}

func TestRoundTrip(t *testing.T) { onBothServers(t, testRoundTrip) }

func testRoundTrip(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""), ev("b", "Bravo", ""), ev("c", "Charlie", ""))
	svc := newService(srv.Addr)
	up := Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"},
		Body: cal(ev("a", "Alpha moved", "1"), ev("c", "Charlie", ""), ev("d", "Delta", ""))}
	res, err := svc.Put(t.Context(), up)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Added: 1, Replaced: 1, Deleted: 1, Unchanged: 1}); res != want {
		t.Errorf("result %+v, want %+v", res, want)
	}
	got, copies := content(t, srv, "alice", "Calendar")
	if want := map[string]string{"a": "Alpha moved", "c": "Charlie", "d": "Delta"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("folder holds %v, want %v", got, want)
	}
	for uid, n := range copies {
		if n != 1 {
			t.Errorf("%d messages hold %s", n, uid)
		}
	}
	// The log holds what left the folder: the deleted Bravo, and the
	// Alpha that the moved one replaced.
	logged, _ := content(t, srv, "alice", DefaultLogFolder)
	if fmt.Sprint(logged) != fmt.Sprint(map[string]string{"a": "Alpha", "b": "Bravo"}) {
		t.Errorf("log holds %v, want the deleted Bravo and the replaced Alpha", logged)
	}

	// The same upload again changes nothing.
	before := state(t, srv, "alice", "Calendar")
	res, err = svc.Put(t.Context(), up)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Unchanged: 3}); res != want {
		t.Errorf("second upload: %+v, want %+v", res, want)
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("an identical upload changed the folder: %+v → %+v", before, after)
	}

	// A stale client still holding Bravo does not bring it back; one
	// that changed it since (a higher SEQUENCE) does.
	stale := up
	stale.Body = cal(ev("a", "Alpha moved", "1"), ev("b", "Bravo", ""), ev("c", "Charlie", ""), ev("d", "Delta", ""))
	if res, err = svc.Put(t.Context(), stale); err != nil || res.Refused != 1 || res.Added != 0 {
		t.Errorf("stale upload: %+v, %v; want Bravo refused", res, err)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); got["b"] != "" {
		t.Errorf("a stale upload resurrected Bravo: %v", got)
	}
	newer := up
	newer.Body = cal(ev("a", "Alpha moved", "1"), ev("b", "Bravo again", "1"), ev("c", "Charlie", ""), ev("d", "Delta", ""))
	if res, err = svc.Put(t.Context(), newer); err != nil || res.Added != 1 {
		t.Errorf("newer upload: %+v, %v; want Bravo added", res, err)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); got["b"] != "Bravo again" {
		t.Errorf("a newer Bravo was not restored: %v", got)
	}

	// An older copy of an event does not overwrite a newer one.
	older := newer
	older.Body = cal(ev("a", "Alpha", ""), ev("b", "Bravo again", "1"), ev("c", "Charlie", ""), ev("d", "Delta", ""))
	if res, err = svc.Put(t.Context(), older); err != nil || res.Refused != 1 {
		t.Errorf("older upload: %+v, %v; want Alpha refused", res, err)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); got["a"] != "Alpha moved" {
		t.Errorf("an older copy overwrote a newer one: %v", got)
	}
}

// TestSharedMessage: deleting one event of a message that holds several
// keeps the others.
func TestSharedMessage(t *testing.T) { onBothServers(t, testSharedMessage) }

func testSharedMessage(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("all", string(cal(ev("a", "Alpha", ""), ev("b", "Bravo", "")))))
	res, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("a", "Alpha", ""))})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 {
		t.Errorf("result %+v", res)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); fmt.Sprint(got) != fmt.Sprint(map[string]string{"a": "Alpha"}) {
		t.Errorf("folder holds %v, want Alpha alone", got)
	}
}

func TestDenied(t *testing.T) { onBothServers(t, testDenied) }

func testDenied(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""))
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	before := state(t, srv, "alice", "Calendar")
	svc := newService(srv.Addr)
	_, err := svc.Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("a", "Alpha", ""), ev("x", "Bob's", ""))})
	var de *DeniedError
	if !errors.As(err, &de) || de.Right != acl.Insert {
		t.Fatalf("bob with lr: %v; want a DeniedError for i", err)
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("a refused upload changed the folder")
	}

	// With t but not e (Dovecot answers MYRIGHTS "lrsitd": the obsolete d
	// then proves nothing about e), removing is refused up front.
	srv.SetACL(t, "alice", "Calendar", "bob", "lrsit")
	before = state(t, srv, "alice", "Calendar") // Dovecot's SETACL moves HIGHESTMODSEQ
	_, err = svc.Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("a", "Alpha changed", "1"))})
	if !errors.As(err, &de) || de.Right != acl.Expunge {
		t.Fatalf("bob with lrsit: %v; want a DeniedError for e", err)
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("a refused upload changed the folder")
	}

	// bob may write the folder but not create alice's log: deleting is
	// refused before anything is written.
	srv.SetACL(t, "alice", "Calendar", "bob", "lrswite")
	_, err = svc.Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("x", "Bob's", ""))})
	if !errors.As(err, &de) {
		t.Fatalf("bob without a log folder: %v; want a DeniedError", err)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); fmt.Sprint(got) != fmt.Sprint(map[string]string{"a": "Alpha"}) {
		t.Errorf("a refused upload changed the folder: %v", got)
	}
	// With a log he may write to, it works, as bob.
	srv.CreateFolder(t, "alice", DefaultLogFolder)
	srv.SetACL(t, "alice", DefaultLogFolder, "bob", "lri")
	res, err := svc.Put(t.Context(), Request{User: "bob", Password: testbed.Password("bob"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("x", "Bob's", ""))})
	if err != nil || res != (Result{Added: 1, Deleted: 1}) {
		t.Fatalf("bob with rights: %+v, %v", res, err)
	}
	if logged, _ := content(t, srv, "alice", DefaultLogFolder); logged["a"] != "Alpha" {
		t.Errorf("log holds %v", logged)
	}
}

func TestBadInput(t *testing.T) { onBothServers(t, testBadInput) }

func testBadInput(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""))
	before := state(t, srv, "alice", "Calendar")
	svc := New(Options{Dial: dialer(srv.Addr), MaxEvents: 2})
	for name, body := range map[string][]byte{
		"garbage":  []byte("this is not a calendar"),
		"too many": cal(ev("1", "x", ""), ev("2", "x", ""), ev("3", "x", "")),
		"broken":   []byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n"),
	} {
		_, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}, Body: body})
		if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrTooMany) {
			t.Errorf("%s: %v; want ErrBadInput or ErrTooMany", name, err)
		}
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("bad uploads changed the folder")
	}
}

// TestConcurrent: two uploads from the same starting point. With a
// precondition, one wins and the other changes nothing; without, every
// event ends up in the folder or in the log.
func TestConcurrent(t *testing.T) { onBothServers(t, testConcurrent) }

func testConcurrent(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("a", "Alpha", ""), ev("b", "Bravo", ""))
	svc := newService(srv.Addr)
	start := state(t, srv, "alice", "Calendar")
	check := func(ctx context.Context) error {
		if state(t, srv, "alice", "Calendar") != start {
			return errors.New("changed since read")
		}
		return nil
	}
	bodies := [][]byte{
		cal(ev("a", "Alpha by one", "1"), ev("b", "Bravo", "")),
		cal(ev("a", "Alpha", ""), ev("c", "Charlie by two", "")),
	}
	run := func(withCheck bool) []error {
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				r := Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}, Body: bodies[i]}
				if withCheck {
					r.Check = check
				}
				_, errs[i] = svc.Put(context.Background(), r)
			})
		}
		wg.Wait()
		return errs
	}
	errs := run(true)
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("with a precondition: errors %v; want exactly one upload to win", errs)
	}
	got, _ := content(t, srv, "alice", "Calendar")
	winner := 0
	if errs[0] != nil {
		winner = 1
	}
	if want := [][]string{{"a", "b"}, {"a", "c"}}[winner]; fmt.Sprint(sortedKeys(got)) != fmt.Sprint(want) {
		t.Errorf("folder holds %v after upload %d won", got, winner)
	}

	seed(t, srv, ev("a", "Alpha", ""), ev("b", "Bravo", ""))
	for _, err := range run(false) {
		if err != nil {
			t.Fatal(err)
		}
	}
	inFolder, _ := content(t, srv, "alice", "Calendar")
	inLog, _ := content(t, srv, "alice", DefaultLogFolder)
	for _, uid := range []string{"a", "b", "c"} {
		if inFolder[uid] == "" && inLog[uid] == "" {
			t.Errorf("%s is lost: folder %v, log %v", uid, inFolder, inLog)
		}
	}
	if inFolder["a"] != "Alpha by one" {
		t.Errorf("the newer Alpha was lost: %v", inFolder)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestCutConnection cuts the uploader's connection after more and more
// bytes, so that the cut lands at every step of the reconcile, then
// retries without the cut: the folder and the log must end up as after an
// uncut upload, with no event lost or doubled.
func TestCutConnection(t *testing.T) { onBothServers(t, testCutConnection) }

func testCutConnection(t *testing.T, srv *testbed.Server) {
	initial := []string{ev("a", "Alpha", ""), ev("b", "Bravo", ""), ev("c", "Charlie", "")}
	body := cal(ev("a", "Alpha moved", "1"), ev("c", "Charlie", ""), ev("d", "Delta", ""))
	wantFolder := map[string]string{"a": "Alpha moved", "c": "Charlie", "d": "Delta"}
	wantLog := map[string]string{"a": "Alpha", "b": "Bravo"} // deleted, and replaced
	cuts := 0
	for limit := int64(100); limit < 6000; limit += 173 {
		seed(t, srv, initial...)
		relay := testbed.Relay(t, srv.Addr, func(sent int64) testbed.Fault {
			if sent > limit {
				return testbed.Cut
			}
			return testbed.Forward
		})
		cut := New(Options{Dial: dialer(relay)})
		_, err := cut.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}, Body: body})
		if err == nil {
			break // the whole upload fits under the limit: every step was cut before
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("cut after %d bytes: %v; want ErrUnavailable (503: retry)", limit, err)
		}
		cuts++
		// Nothing is lost at the moment of the cut either.
		inFolder, _ := content(t, srv, "alice", "Calendar")
		inLog, _ := content(t, srv, "alice", DefaultLogFolder)
		for _, uid := range []string{"a", "b", "c"} {
			if inFolder[uid] == "" && inLog[uid] == "" {
				t.Errorf("cut after %d bytes: %s is lost", limit, uid)
			}
		}
		if _, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"}, Body: body}); err != nil {
			t.Fatalf("retry after a cut at %d bytes: %v", limit, err)
		}
		gotFolder, folderCopies := content(t, srv, "alice", "Calendar")
		gotLog, logCopies := content(t, srv, "alice", DefaultLogFolder)
		if fmt.Sprint(gotFolder) != fmt.Sprint(wantFolder) || fmt.Sprint(gotLog) != fmt.Sprint(wantLog) {
			t.Errorf("cut after %d bytes, then retried: folder %v, log %v; want %v, %v", limit, gotFolder, gotLog, wantFolder, wantLog)
		}
		for uid, n := range folderCopies {
			if n != 1 {
				t.Errorf("cut after %d bytes, then retried: %d copies of %s in the folder", limit, n, uid)
			}
		}
		for uid, n := range logCopies {
			if n != 1 {
				t.Errorf("cut after %d bytes, then retried: %d copies of %s in the log", limit, n, uid)
			}
		}
	}
	if cuts < 5 {
		t.Errorf("only %d cuts landed inside the upload", cuts)
	}
	t.Logf("%d cuts at different steps, each retried to the same result", cuts)
}

// TestAlarmsSurvive: a client that uploads what fbpub's feed gave it (no
// alarms) neither rewrites unchanged events nor drops the owner's alarms
// from the events it changed.
func TestAlarmsSurvive(t *testing.T) { onBothServers(t, testAlarmsSurvive) }

func testAlarmsSurvive(t *testing.T, srv *testbed.Server) {
	alarm := "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Soon\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\n"
	withAlarm := func(e string) string { return strings.Replace(e, "END:VEVENT", alarm+"END:VEVENT", 1) }
	seed(t, srv, withAlarm(ev("a", "Alpha", "")), withAlarm(ev("b", "Bravo", "")))
	svc := newService(srv.Addr)
	res, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice", Folder: []string{"Calendar"},
		Body: cal(ev("a", "Alpha", ""), ev("b", "Bravo moved", "1"))})
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Replaced: 1, Unchanged: 1}) {
		t.Errorf("result %+v, want Alpha unchanged and Bravo replaced", res)
	}
	for _, m := range storedMessages(t, srv, "alice", "Calendar") {
		if !strings.Contains(string(m), "BEGIN:VALARM") {
			t.Errorf("a message lost its alarm:\n%s", m)
		}
	}
}

// storedMessages returns every message of the user's folder as stored.
func storedMessages(t *testing.T, srv *testbed.Server, user, folder string) [][]byte {
	t.Helper()
	c := srv.Dial(t, user)
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, m.FindBodySection(section))
	}
	return out
}

// TestKolabFolder: in a folder that Kolab's annotation marks as a
// calendar, uploads are written in Kolab format 3, and read back as the
// same events.
func TestKolabFolder(t *testing.T) { onBothServers(t, testKolabFolder) }

func testKolabFolder(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Kalender")
	srv.SetMetadata(t, "alice", "Kalender", "/shared/vendor/kolab/folder-type", "event.default")
	res, err := newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Kalender"}, Body: cal(ev("k1", "Kolab, with a comma & an ampersand", ""))})
	if err != nil || res.Added != 1 {
		t.Fatalf("upload: %+v, %v", res, err)
	}
	stored := storedMessages(t, srv, "alice", "Kalender")
	if len(stored) != 1 {
		t.Fatalf("folder holds %d messages, want 1", len(stored))
	}
	raw := string(stored[0])
	for _, want := range []string{"X-Kolab-Type: application/x-vnd.kolab.event", "X-Kolab-Mime-Version: 3.0", "Content-Type: application/calendar+xml", "<vevent>"} {
		if !strings.Contains(raw, want) {
			t.Errorf("the message lacks %q:\n%s", want, raw)
		}
	}
	if got, _ := content(t, srv, "alice", "Kalender"); got["k1"] != "Kolab, with a comma & an ampersand" {
		t.Errorf("read back: %v", got)
	}
	// The same upload again is recognised as unchanged.
	res, err = newService(srv.Addr).Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Kalender"}, Body: cal(ev("k1", "Kolab, with a comma & an ampersand", ""))})
	if err != nil || res != (Result{Unchanged: 1}) {
		t.Errorf("second upload: %+v, %v", res, err)
	}
}

// TestNoUIDStable: an event without a UID, uploaded again with only its
// DTSTAMP changed (clients rewrite it on every export), keeps the UID
// fbpub gave it and is left alone, rather than deleted, logged and added
// again under a new UID on every upload.
func TestNoUIDStable(t *testing.T) { onBothServers(t, testNoUIDStable) }

func testNoUIDStable(t *testing.T, srv *testbed.Server) {
	seed(t, srv)
	svc := newService(srv.Addr)
	noUID := func(stamp string) []byte {
		return cal("BEGIN:VEVENT\r\nDTSTAMP:" + stamp + "\r\nDTSTART:20250310T090000Z\r\nDTEND:20250310T100000Z\r\nSUMMARY:No UID\r\nEND:VEVENT\r\n")
	}
	var uids []string
	for i, stamp := range []string{"20250101T000000Z", "20250102T000000Z", "20250103T000000Z"} {
		res, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
			Folder: []string{"Calendar"}, Body: noUID(stamp)})
		want := Result{Unchanged: 1}
		if i == 0 {
			want = Result{Added: 1}
		}
		if err != nil || res != want {
			t.Errorf("upload %d (DTSTAMP %s): %+v, %v; want %+v", i+1, stamp, res, err, want)
		}
		got, _ := content(t, srv, "alice", "Calendar")
		uids = append(uids, fmt.Sprint(sortedKeys(got)))
	}
	if uids[0] != uids[1] || uids[1] != uids[2] || !strings.HasPrefix(uids[0], "[fbpub-") {
		t.Errorf("the folder's UIDs after each upload: %v; want one fbpub- UID, the same each time", uids)
	}
	if logged, _ := content(t, srv, "alice", DefaultLogFolder); len(logged) != 0 {
		t.Errorf("re-uploads logged %v", logged)
	}
}
