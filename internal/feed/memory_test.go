package feed

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-ical"

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

// TestCachedTreesCompact: a cached message's parsed trees hold no empty
// parameter maps (go-ical's decoder makes one for every property: a
// seventh of a cached event's heap), keep every parameter that has a
// value, and render every view exactly as the trees as decoded do.
func TestCachedTreesCompact(t *testing.T) {
	m := newMessage(compactObjects(t))
	var empty, kept int
	var walk func(c *ical.Component)
	walk = func(c *ical.Component) {
		for name, ps := range c.Props {
			for _, p := range ps {
				switch {
				case p.Params != nil && len(p.Params) == 0:
					empty++
					t.Errorf("%s %s has an empty parameter map", c.Name, name)
				case len(p.Params) > 0:
					kept++
				}
			}
		}
		for _, ch := range c.Children {
			walk(ch)
		}
	}
	for _, o := range m.objects {
		walk(o.Master)
		for _, c := range append(append([]*ical.Component{}, o.Overrides...), o.Timezones...) {
			walk(c)
		}
	}
	// TZID on DTSTART, DTEND (twice) and RECURRENCE-ID, LANGUAGE, CN, PARTSTAT+CN.
	if kept != 8 {
		t.Errorf("%d properties kept their parameters, want 8", kept)
	}

	// The views of the compacted trees are those of the same text decoded
	// again and encoded as it is, uncompacted.
	raw := compactObjects(t)
	var busy, reader bytes.Buffer
	for _, o := range raw {
		for _, ev := range o.Events() {
			calendar.NewEncoder(&busy).Encode(busyOnly(ev))
		}
		for _, ev := range readerEvents(o) {
			calendar.NewEncoder(&reader).Encode(ev)
		}
	}
	if got := m.view(acl.FreeBusyAccess); !bytes.Equal(got, busy.Bytes()) {
		t.Errorf("busy view of the compacted trees:\n%s\nwant:\n%s", got, busy.Bytes())
	}
	if got := m.view(acl.ReadAccess); !bytes.Equal(got, reader.Bytes()) {
		t.Errorf("reader view of the compacted trees:\n%s\nwant:\n%s", got, reader.Bytes())
	}
	var owner bytes.Buffer
	for _, o := range raw {
		for _, ev := range o.Events() {
			calendar.NewEncoder(&owner).Encode(withoutAlarms(ev))
		}
	}
	if !bytes.Equal(m.view(acl.OwnerAccess), owner.Bytes()) {
		t.Errorf("owner view:\n%s\nwant:\n%s", m.view(acl.OwnerAccess), owner.Bytes())
	}
}
