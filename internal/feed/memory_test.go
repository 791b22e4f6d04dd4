package feed

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// The directory of BenchmarkTouchOwners: touchOwners users, each with a
// Calendar of touchEvents events shared with the proxy (bench/scale's
// mailboxes, at a size a benchmark can make over IMAP).
const (
	touchOwners = 200
	touchEvents = 30
)

// touched keeps the last cache BenchmarkTouchOwners filled reachable, so
// that the heap profile `go test -memprofile` writes after the benchmark
// holds it (in use, -sample_index=inuse_space).
var touched *Cache

// BenchmarkTouchOwners measures the heap a cache holds after a first
// touch of every owner: each one's free/busy asked for once, as Outlook
// does, over fbpub's default window (7 days back, 90 ahead). It reports
// B/cached-event, the live heap after a collection per event held.
//
//	go test -run '^$' -bench TouchOwners -benchtime 1x -memprofile /tmp/mem.out ./internal/feed
//	go tool pprof -top -sample_index=inuse_space /tmp/mem.out
func BenchmarkTouchOwners(b *testing.B) {
	srv := testbed.Private(b)
	owners := make([]string, touchOwners)
	for i := range owners {
		owners[i] = fmt.Sprintf("o%04d", i)
	}
	srv.AddUsers(b, owners)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	first := testbed.CalendarMessage("touch", event("touch-0", "Meeting 0", day, 8))
	srv.ShareFolder(b, owners, "Calendar", testbed.Proxy, "lr", first)
	var wg sync.WaitGroup
	work := make(chan string)
	for range 4 {
		wg.Go(func() {
			for o := range work {
				c := srv.Dial(b, o)
				for k := 1; k < touchEvents; k++ {
					msg := testbed.CalendarMessage("touch", event(fmt.Sprintf("touch-%s-%d", o, k), fmt.Sprintf("Meeting %d in room %d", k, k%7), day.AddDate(0, 0, -6+k*3), 8+k%9))
					cmd := c.Append("Calendar", int64(len(msg)), nil)
					cmd.Write(msg)
					cmd.Close()
					if _, err := cmd.Wait(); err != nil {
						b.Error(err)
					}
				}
				c.Logout().Wait()
				c.Close()
			}
		})
	}
	for _, o := range owners {
		work <- o
	}
	close(work)
	wg.Wait()

	ctx := context.Background()
	win := freebusy.Window{Start: day.AddDate(0, 0, -7), End: day.AddDate(0, 0, 90)}
	var before, after runtime.MemStats
	touched = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	for b.Loop() {
		touched = nil
		pool := imapstore.NewPool(imapstore.Options{Addr: srv.Addr, TLS: imapstore.TLSNone,
			User: testbed.Proxy, Password: testbed.Password(testbed.Proxy)}, 4)
		c := New(Options{Source: pool, Metrics: metrics.Discard(), CheckInterval: time.Hour})
		if err := c.Discover(ctx); err != nil {
			b.Fatal(err)
		}
		for _, o := range owners {
			a, err := c.FreeBusy(ctx, FreeBusyQuery{Owner: o, Window: win, Viewer: acl.Requester{Anonymous: true}})
			if err != nil {
				b.Fatalf("FreeBusy(%s): %v", o, err)
			}
			if len(a.Body) == 0 {
				b.Fatalf("FreeBusy(%s): empty", o)
			}
		}
		pool.Close()
		touched = c
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(touchOwners*touchEvents), "B/cached-event")
}

const compactICS = `BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:compact-1
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20261208T100000
DTEND;TZID=Europe/Berlin:20261208T110000
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY;LANGUAGE=de:Besprechung
LOCATION:Raum 4
CLASS:PRIVATE
ORGANIZER;CN=Alice:mailto:alice@example.org
ATTENDEE;PARTSTAT=ACCEPTED;CN=Bob:mailto:bob@example.org
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT15M
DESCRIPTION:Reminder
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:compact-1
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20261215T100000
DTSTART;TZID=Europe/Berlin:20261215T120000
DTEND;TZID=Europe/Berlin:20261215T130000
SUMMARY:Besprechung (moved)
END:VEVENT
END:VCALENDAR
`

func compactObjects(t *testing.T) []*calendar.Object {
	t.Helper()
	cals, err := calendar.Decode([]byte(strings.ReplaceAll(compactICS, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return calendar.Objects(cals)
}

// TestMessageText: a cached message keeps text, not trees; the objects
// decoded from it again render every view exactly as the trees as first
// decoded do, and encode to the same text again (what a second decoding,
// after a render dropped them, or a warm restart relies on).
func TestMessageText(t *testing.T) {
	m := newMessage(compactObjects(t))
	if len(m.zones) != 1 || m.zones[0].id != "Europe/Berlin" {
		t.Errorf("zones = %+v, want Europe/Berlin, used", m.zones)
	}
	raw := compactObjects(t)
	var busy, reader, owner bytes.Buffer
	for _, o := range raw {
		for _, ev := range o.Events() {
			calendar.NewEncoder(&busy).Encode(busyOnly(ev))
			calendar.NewEncoder(&owner).Encode(withoutAlarms(ev))
		}
		for _, ev := range readerEvents(o) {
			calendar.NewEncoder(&reader).Encode(ev)
		}
	}
	objs := m.objects()
	if len(objs) != len(raw) || len(objs[0].Overrides) != 1 || len(objs[0].Timezones) != 1 {
		t.Fatalf("decoded %d objects (%+v), want %d with an override and a zone", len(objs), objs, len(raw))
	}
	decoded := func() []*calendar.Object { return objs }
	if got := m.view(acl.FreeBusyAccess, decoded); !bytes.Equal(got, busy.Bytes()) {
		t.Errorf("busy view of the decoded text:\n%s\nwant:\n%s", got, busy.Bytes())
	}
	if got := m.view(acl.ReadAccess, decoded); !bytes.Equal(got, reader.Bytes()) {
		t.Errorf("reader view of the decoded text:\n%s\nwant:\n%s", got, reader.Bytes())
	}
	if got := m.view(acl.OwnerAccess, decoded); !bytes.Equal(got, owner.Bytes()) {
		t.Errorf("owner view:\n%s\nwant:\n%s", got, owner.Bytes())
	}
	again := newMessage(objs)
	if !bytes.Equal(again.text(), m.text()) {
		t.Errorf("text after a decoding:\n%s\nwant:\n%s", again.text(), m.text())
	}
}

// memSnapshot makes the snapshot of folder name, n messages of one event
// each (every third a weekly series with an override, every fifth with a
// time zone), as a sync would have parsed them.
func memSnapshot(t *testing.T, name string, n int) *Snapshot {
	t.Helper()
	s := &Snapshot{Folder: Folder{Name: name}, State: imapstore.State{UIDValidity: 1, HighestModSeq: 7, UIDNext: uint32(n + 1), Messages: uint32(n)}}
	day := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range n {
		text := compactICS
		if i%5 != 0 {
			text = strings.Replace(compactICS, compactICS[strings.Index(compactICS, "BEGIN:VTIMEZONE"):strings.Index(compactICS, "BEGIN:VEVENT")], "", 1)
			text = strings.ReplaceAll(text, ";TZID=Europe/Berlin", "")
		}
		if i%3 != 0 {
			text = text[:strings.LastIndex(text, "BEGIN:VEVENT")] + "END:VCALENDAR\n"
			text = strings.Replace(text, "RRULE:FREQ=WEEKLY;COUNT=4\n", "", 1)
		}
		text = strings.ReplaceAll(text, "compact-1", fmt.Sprintf("%s-%d", name, i))
		text = strings.Replace(text, "Besprechung", fmt.Sprintf("Meeting %d on %s", i, day.AddDate(0, 0, i).Format(time.DateOnly)), 1)
		cals, err := calendar.Decode([]byte(strings.ReplaceAll(text, "\n", "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		s.uids = append(s.uids, uint32(i+1))
		s.msgs = append(s.msgs, newMessage(calendar.Objects(cals)))
	}
	s.Digest = "d"
	s.setKey()
	return s
}

// TestMaxBytesAccounting: the bytes a cache accounts for its snapshots are
// the heap they hold, within a quarter (counted with Go's allocator's
// rounding, never much below it), and views encoded by a render are
// counted once it is done.
func TestMaxBytesAccounting(t *testing.T) {
	const folders, events = 100, 30
	c := New(Options{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range folders {
		s := memSnapshot(t, fmt.Sprintf("user/o%03d/Calendar", i), events)
		c.mu.Lock()
		c.setSnap(s)
		c.mu.Unlock()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	counted := c.MemoryBytes()
	t.Logf("%d snapshots of %d events: heap grew %d B (%d B per event), counted %d B (%d B per event)",
		folders, events, grown, grown/(folders*events), counted, counted/(folders*events))
	if counted < grown*4/5 || counted > grown*5/4 {
		t.Errorf("counted %d B for a heap growth of %d B: not within a quarter", counted, grown)
	}

	// Encoding the busy views of every message of one snapshot: counted
	// after the render that encodes them.
	c.mu.Lock()
	s := c.snaps["user/o000/Calendar"]
	c.mu.Unlock()
	was := c.MemoryBytes()
	objs := s.messageObjects()
	var viewBytes int64
	for j := range s.msgs {
		v := s.msgs[j].view(acl.FreeBusyAccess, func() []*calendar.Object { return objs(j) })
		viewBytes += int64(len(v))
	}
	c.remeasure([]*Snapshot{s})
	if grew := c.MemoryBytes() - was; grew < viewBytes || grew > 2*viewBytes {
		t.Errorf("after encoding %d B of busy views, the count grew by %d B", viewBytes, grew)
	}
	runtime.KeepAlive(c)
}

// TestMaxBytesEvicts: past Options.MaxBytes the snapshots used least
// recently are dropped, the snapshots held stay within their share, and a
// dropped folder's persisted snapshot may be loaded again.
func TestMaxBytesEvicts(t *testing.T) {
	const folders, events = 40, 30
	size := memSnapshot(t, "user/size/Calendar", events).memSize()
	// Room for ten snapshots in the snapshots' three quarters.
	c := New(Options{MaxBytes: 10 * size * 4 / 3})
	ctx := context.Background()
	name := func(i int) string { return fmt.Sprintf("user/o%03d/Calendar", i) }
	for i := range folders {
		s := memSnapshot(t, name(i), events)
		c.mu.Lock()
		c.loaded[s.Folder.Name] = true
		c.setSnap(s)
		c.mu.Unlock()
		// The first folder is asked for after every other: it stays.
		f := Folder{Name: name(0), State: s.State}
		if _, err := c.Snapshot(ctx, f); err != nil {
			t.Fatalf("Snapshot(%s): %v", f.Name, err)
		}
		if held, limit := c.MemoryBytes(), c.opts.MaxBytes*3/4; held > limit {
			t.Fatalf("after %d folders the snapshots hold %d B, over %d", i+1, held, limit)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.snaps) < 9 || len(c.snaps) > 10 {
		t.Errorf("%d snapshots kept, want 9 or 10 (10 fit)", len(c.snaps))
	}
	if c.mem.evictions != folders-len(c.snaps) {
		t.Errorf("%d evictions, want %d", c.mem.evictions, folders-len(c.snaps))
	}
	for _, i := range []int{0, folders - 1, folders - 2} {
		if c.snaps[name(i)] == nil {
			t.Errorf("%s (recently used) was dropped", name(i))
		}
	}
	for i := 1; i < folders-10; i++ {
		if c.snaps[name(i)] != nil {
			t.Errorf("%s (least recently used) was kept", name(i))
		}
		if c.loaded[name(i)] {
			t.Errorf("%s was dropped but would not be loaded from the state directory again", name(i))
		}
	}
	var sum int64
	for e := c.mem.order.Front(); e != nil; e = e.Next() {
		sum += e.Value.(*Snapshot).size
	}
	if sum != c.mem.bytes || c.mem.order.Len() != len(c.snaps) {
		t.Errorf("order holds %d snapshots of %d B; the cache %d of %d B", c.mem.order.Len(), sum, len(c.snaps), c.mem.bytes)
	}
}

// TestMaxBytesOwners: with a small cache.max_bytes and many owners, what
// the cache holds stays within the bound through a first touch of every
// owner; an owner whose snapshot was dropped is answered as before, from
// the state directory without a message body.
func TestMaxBytesOwners(t *testing.T) {
	const owners = 30
	srv := testbed.Private(t)
	users := sharers(t, srv, 0, owners, true)
	ctx := context.Background()
	win := freebusy.Window{Start: time.Now().UTC().AddDate(0, 0, -1), End: time.Now().UTC().AddDate(0, 0, 30)}
	ask := func(f *fixture, owner string) *Answer {
		t.Helper()
		a, err := f.cache.FreeBusy(ctx, FreeBusyQuery{Owner: owner, Window: win, Viewer: acl.Requester{Anonymous: true}})
		if err != nil {
			t.Fatalf("FreeBusy(%s): %v", owner, err)
		}
		if !strings.Contains(string(a.Body), "FBTYPE=BUSY") {
			t.Fatalf("FreeBusy(%s) has no busy time", owner)
		}
		return a
	}

	// Unbounded, for the size of one owner's snapshot and the answers.
	free := newFixtureOn(t, srv, time.Hour)
	if err := free.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	first := map[string]string{}
	for _, u := range users {
		first[u] = ask(free, u).ETag
	}
	perOwner := free.cache.MemoryBytes() / owners

	bounded := newFixtureOn(t, srv, time.Hour)
	bounded.cache.opts.StateDir = t.TempDir()
	bounded.cache.opts.MaxBytes = 8 * perOwner
	bounded.cache.answers = newLRU(answerBound(bounded.cache.opts.MaxBytes))
	if err := bounded.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		ask(bounded, u)
		if held := bounded.cache.MemoryBytes(); held > bounded.cache.opts.MaxBytes {
			t.Fatalf("after %d owners the cache holds %d B, over max_bytes %d", i+1, held, bounded.cache.opts.MaxBytes)
		}
	}
	bounded.cache.mu.Lock()
	kept, evicted := len(bounded.cache.snaps), bounded.cache.mem.evictions
	bounded.cache.mu.Unlock()
	t.Logf("%d B per owner unbounded; bounded to %d B: %d snapshots kept, %d dropped", perOwner, bounded.cache.opts.MaxBytes, kept, evicted)
	if evicted == 0 || kept+evicted != owners {
		t.Errorf("%d snapshots kept, %d dropped, of %d owners: want some dropped, none lost", kept, evicted, owners)
	}

	// The first owners were dropped: asked again, they are answered as
	// before, loaded from the state directory.
	bounded.src.reset()
	for _, u := range users[:3] {
		if a := ask(bounded, u); a.ETag != first[u] {
			t.Errorf("FreeBusy(%s) after its snapshot was dropped: ETag %s, want %s", u, a.ETag, first[u])
		}
	}
	if got := bounded.src.bodies.Load(); got != 0 {
		t.Errorf("answering dropped owners fetched %d message bodies, want 0 (the state directory has them)", got)
	}
}

// BenchmarkSnapshotObjects measures what a render that needs trees pays
// once the collector dropped a snapshot's (Snapshot.decoded): decoding
// the objects of every message again, per event.
func BenchmarkSnapshotObjects(b *testing.B) {
	t := &testing.T{}
	s := memSnapshot(t, "user/o/Calendar", 1000)
	b.ReportAllocs()
	for b.Loop() {
		s.trees = weak.Pointer[snapTrees]{}
		if len(s.Objects()) != 1000 {
			b.Fatal("objects lost")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/event")
}

// TestTreesCarriedOver: a snapshot that replaces another in the cache (an
// incremental sync) takes the decoded objects of the messages they share
// while those are held, and decodes only the others.
func TestTreesCarriedOver(t *testing.T) {
	c := New(Options{})
	old := memSnapshot(t, "user/o/Calendar", 10)
	c.mu.Lock()
	c.setSnap(old)
	c.mu.Unlock()
	before := old.decoded()

	// The same folder after a sync: message 3 replaced (a new UID),
	// message 7 flagged \Deleted, a new message added.
	other := memSnapshot(t, "user/other/Calendar", 11)
	s := &Snapshot{Folder: old.Folder, State: old.State}
	for i := range old.msgs {
		switch i {
		case 3:
			continue
		case 7:
			m := old.msgs[i]
			m.deleted = true
			s.uids, s.msgs = append(s.uids, old.uids[i]), append(s.msgs, m)
		default:
			s.uids, s.msgs = append(s.uids, old.uids[i]), append(s.msgs, old.msgs[i])
		}
	}
	s.uids, s.msgs = append(s.uids, 11), append(s.msgs, other.msgs[10])
	s.setKey()
	c.mu.Lock()
	c.setSnap(s)
	c.mu.Unlock()
	after := s.decoded()
	for j, uid := range s.uids {
		i, _ := slices.BinarySearch(old.uids, uid)
		switch {
		case s.msgs[j].deleted:
			if after.byMsg[j] != nil {
				t.Errorf("UID %d (deleted) has objects", uid)
			}
		case uid == 11:
			if len(after.byMsg[j]) == 0 || after.byMsg[j][0].UID != "user/other/Calendar-10" {
				t.Errorf("UID 11 (new): objects %v", after.byMsg[j])
			}
		case len(after.byMsg[j]) == 0 || after.byMsg[j][0] != before.byMsg[i][0]:
			t.Errorf("UID %d (shared) was decoded again", uid)
		}
	}
	if len(after.all) != 9 {
		t.Errorf("%d objects, want 9", len(after.all))
	}
	runtime.KeepAlive(before)
}
