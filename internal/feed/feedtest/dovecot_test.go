package feedtest_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/feed/feedtest"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// view is what a feed.Source shows of alice's folders, in terms that do
// not depend on the server's numbering (UIDVALIDITY, MODSEQ).
type view struct {
	listed []string          // paths, sorted
	rights map[string]string // path → the proxy's rights, letters sorted
	acl    map[string]string // path → bob's entry, where the ACL was read
	// messages, deleted and delivered describe a Fetch of Calendar as the
	// cache asks for a folder read from scratch.
	messages, deleted, delivered int
	state                        imapstore.State
}

func look(t *testing.T, src feed.Source) view {
	t.Helper()
	ctx := context.Background()
	fs, err := src.OwnerFolders(ctx, "alice")
	if err != nil {
		t.Fatalf("OwnerFolders: %v", err)
	}
	if err := src.Details(ctx, fs); err != nil {
		t.Fatalf("Details: %v", err)
	}
	v := view{rights: map[string]string{}, acl: map[string]string{}}
	for _, f := range fs {
		v.listed = append(v.listed, f.Path)
		r := []byte(f.Rights)
		slices.Sort(r)
		v.rights[f.Path] = string(r)
		if f.ACLKnown {
			v.acl[f.Path] = f.ACL["bob"]
		}
		if f.Path == "Calendar" {
			v.state = f.State
		}
	}
	slices.Sort(v.listed)
	q := imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: 64 << 10}
	q.Received = func(m imapstore.Message) { v.delivered++ }
	l, err := src.Fetch(ctx, feedtest.Name("alice", "Calendar"), q)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	v.messages = len(l.UIDs)
	for _, d := range l.Deleted {
		if d {
			v.deleted++
		}
	}
	for _, m := range l.Messages {
		if m.Raw != nil || len(m.Parts) > 0 {
			v.delivered++
		}
	}
	return v
}

// TestAgainstDovecot: the fake shows what Dovecot shows of the same
// folders: which ones the proxy may list (l), its rights on them, the
// ACL only where it holds a, a folder it may not read as not found, the
// messages and \Deleted flags of a read from scratch; and the same
// changes move HIGHESTMODSEQ on both. It is the proof that the fast tier
// tests the cache against the server fbpub meets.
func TestAgainstDovecot(t *testing.T) {
	ctx := context.Background()
	srv := testbed.Get(t)
	srv.Reset(t)
	pool := imapstore.NewPool(imapstore.Options{Addr: srv.Addr, TLS: imapstore.TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy)}, 1)
	t.Cleanup(func() { pool.Close() })
	fake := feedtest.New()

	folders := []struct{ path, rights string }{{"Calendar", "lr"}, {"Calendar/Work", "lra"}, {"Calendar/Hidden", "r"}, {"Calendar/Listed", "l"}, {"Calendar/None", ""}}
	for _, f := range folders {
		srv.CreateFolder(t, "alice", f.path)
		srv.SetACL(t, "alice", f.path, testbed.Proxy, f.rights) // "": none, not its parent's
		fake.AddFolder("alice", f.path, f.rights)
	}
	// STATUS answers whatever the proxy's rights, on both: Calendar/None
	// held the parent's grant when it was made, and lost it.
	var names []string
	for _, f := range folders {
		names = append(names, feedtest.Name("alice", f.path))
	}
	dcStates, err := pool.States(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	fakeStates, err := feedtest.Pooled{Source: fake}.States(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if dc, fk := slices.Sorted(maps.Keys(dcStates)), slices.Sorted(maps.Keys(fakeStates)); !slices.Equal(dc, fk) {
		t.Errorf("folders that answer STATUS: Dovecot %q, fake %q", dc, fk)
	}
	for _, path := range []string{"Calendar", "Calendar/Work"} {
		srv.SetACL(t, "alice", path, "bob", "lr")
		fake.SetACL(feedtest.Name("alice", path), map[string]string{"bob": "lr"})
	}
	day := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	for i, s := range []string{"Planning", "Review"} {
		msg := testbed.CalendarMessage(s, strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub tests//EN\nBEGIN:VEVENT\nUID:"+s+"\nDTSTAMP:20250101T000000Z\nDTSTART:"+day.Format("20060102")+"T0"+string(rune('8'+i))+"0000Z\nDURATION:PT1H\nSUMMARY:"+s+"\nEND:VEVENT\nEND:VCALENDAR\n", "\n", "\r\n"))
		var flags []imap.Flag
		if i == 0 {
			flags = []imap.Flag{imap.FlagDeleted}
		}
		srv.Append(t, "alice", "Calendar", msg, flags...)
		uid := fake.Append(feedtest.Name("alice", "Calendar"), msg)
		if i == 0 {
			fake.SetDeleted(feedtest.Name("alice", "Calendar"), uid, true)
		}
	}

	dc, faked := look(t, pool), look(t, fake)
	if !slices.Equal(dc.listed, faked.listed) {
		t.Errorf("listed: Dovecot %q, fake %q", dc.listed, faked.listed)
	}
	for _, path := range dc.listed {
		if dc.rights[path] != faked.rights[path] {
			t.Errorf("%s: rights on Dovecot %q, fake %q", path, dc.rights[path], faked.rights[path])
		}
	}
	if len(dc.acl) != len(faked.acl) || dc.acl["Calendar/Work"] != faked.acl["Calendar/Work"] {
		t.Errorf("ACLs read (bob's entry by path): Dovecot %q, fake %q", dc.acl, faked.acl)
	}
	if dc.messages != faked.messages || dc.deleted != faked.deleted || dc.delivered != faked.delivered {
		t.Errorf("a read from scratch: Dovecot %d messages, %d deleted, %d delivered; fake %d, %d, %d",
			dc.messages, dc.deleted, dc.delivered, faked.messages, faked.deleted, faked.delivered)
	}
	for _, src := range []struct {
		name string
		s    feed.Source
	}{{"Dovecot", pool}, {"fake", fake}} {
		_, err := src.s.Fetch(ctx, feedtest.Name("alice", "Calendar/Listed"), imapstore.Query{})
		if !errors.Is(err, imapstore.ErrNotFound) {
			t.Errorf("%s: Fetch of a folder the proxy may only list: %v, want not found", src.name, err)
		}
	}

	// Changes that move HIGHESTMODSEQ on both.
	for _, change := range []struct {
		name       string
		onDovecot  func()
		onFake     func()
		wantMoving bool
	}{
		{"append", func() {
			srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("x", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"))
		}, func() { fake.Append(feedtest.Name("alice", "Calendar"), []byte("x")) }, true},
		{"SETACL", func() { srv.SetACL(t, "alice", "Calendar", "carol", "lr") }, func() {
			fake.SetACL(feedtest.Name("alice", "Calendar"), map[string]string{"bob": "lr", "carol": "lr"})
		}, true},
		{"SETMETADATA", func() { srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/folder-type", "event") }, func() {
			fake.SetType(feedtest.Name("alice", "Calendar"), "event")
		}, false},
	} {
		before, fakeBefore := look(t, pool).state, look(t, fake).state
		change.onDovecot()
		change.onFake()
		after, fakeAfter := look(t, pool).state, look(t, fake).state
		moved, fakeMoved := after.HighestModSeq != before.HighestModSeq, fakeAfter.HighestModSeq != fakeBefore.HighestModSeq
		if fakeMoved != change.wantMoving {
			t.Errorf("%s: the fake's HIGHESTMODSEQ moved: %v, want %v", change.name, fakeMoved, change.wantMoving)
		}
		switch {
		case change.wantMoving && !moved:
			t.Errorf("%s: Dovecot's HIGHESTMODSEQ did not move (%d): the fake claims it does", change.name, after.HighestModSeq)
		case !change.wantMoving:
			// The fake moves no state here, the stricter case for the
			// cache, whatever Dovecot does.
			t.Logf("%s: Dovecot's HIGHESTMODSEQ moved: %v", change.name, moved)
		}
	}
}
