package feed

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// sync brings folder f up to date. With a previous snapshot at the same
// UIDVALIDITY it fetches only what changed: the UID list, the flags of
// changed messages (CHANGEDSINCE with CONDSTORE, all flags without), and
// the calendar parts of new messages. Otherwise it reads the folder whole.
func (c *Cache) sync(ctx context.Context, f Folder, prev *Snapshot) (*Snapshot, error) {
	t0 := c.opts.Now()
	start := time.Now()
	l, parsed, prev, kind, err := c.fetchFrom(ctx, f, prev)
	if err != nil {
		c.m.Syncs.WithLabelValues(kind, "error").Inc()
		if errors.Is(err, imapstore.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s := c.assemble(f, l, parsed, prev, t0)
	if prev != nil && prev.State == s.State && prev.Digest == s.Digest {
		kind = "unchanged"
		s.Fetched = prev.Fetched
	}
	c.m.Syncs.WithLabelValues(kind, "ok").Inc()
	c.m.SyncDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	c.keep(s)
	if kind != "unchanged" {
		c.save(s)
	}
	return s, nil
}

// fetchFrom reads folder f incrementally from prev when prev is at f's
// UIDVALIDITY, and whole otherwise or when UIDVALIDITY moved during the
// read. It returns the snapshot the listing builds on (nil for a whole
// read) and the kind of sync for the metrics, "incremental" or "full".
func (c *Cache) fetchFrom(ctx context.Context, f Folder, prev *Snapshot) (*imapstore.Listing, parsedSet, *Snapshot, string, error) {
	kind := "incremental"
	if prev == nil || prev.State.UIDValidity != f.State.UIDValidity {
		prev, kind = nil, "full"
	}
	l, parsed, err := c.fetch(ctx, f, prev)
	if err == nil && prev != nil && l.State.UIDValidity != prev.State.UIDValidity {
		// UIDVALIDITY moved under us: every UID we knew is void.
		prev, kind = nil, "full"
		l, parsed, err = c.fetch(ctx, f, nil)
	}
	return l, parsed, prev, kind, err
}

// assemble builds the snapshot of folder f from listing l: each message
// is taken from prev when it knew the UID, else from those parsed during
// the fetch, else parsed now; the listing's \Deleted flags apply on top.
// fetched is when the read started.
func (c *Cache) assemble(f Folder, l *imapstore.Listing, parsed parsedSet, prev *Snapshot, fetched time.Time) *Snapshot {
	s := &Snapshot{Folder: f, State: l.State, Fetched: fetched, checked: f.checked,
		uids: make([]uint32, 0, len(l.UIDs)), msgs: make([]message, 0, len(l.UIDs))}
	fresh := make(map[uint32]imapstore.Message, len(l.Messages))
	for _, m := range l.Messages {
		fresh[m.UID] = m
	}
	d := sha256.New()
	var line []byte
	next := 0 // l.UIDs ascend, like prev's: one walk finds the known ones
	for _, uid := range l.UIDs {
		var m message
		if old, ok := prev.messageFrom(&next, uid); ok {
			m = old
		} else if pm, ok := parsed.get(uid); ok {
			m = pm
		} else if fm, ok := fresh[uid]; ok {
			m = newMessage(c.parse(f, fm))
		}
		if del, ok := l.Deleted[uid]; ok || l.FlagsComplete {
			m.deleted = del
		}
		s.uids = append(s.uids, uid)
		s.msgs = append(s.msgs, m)
		line = strconv.AppendUint(line[:0], uint64(uid), 10)
		if m.deleted {
			d.Write(append(line, '-', ';'))
			continue
		}
		d.Write(append(line, ';'))
	}
	s.Digest = hex.EncodeToString(d.Sum(nil)[:12])
	s.setKey()
	return s
}

// keep publishes s as its folder's snapshot, unless a snapshot validated
// by a later check is there already.
func (c *Cache) keep(s *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.snaps[s.Folder.Name]; old == nil || !old.checked.After(s.checked) {
		c.setSnap(s)
	}
}

// fetch reads folder f (incrementally from prev, when given), parsing the
// messages that arrive whole on every core while the rest is read. It
// returns the listing and the messages parsed so far, by UID.
func (c *Cache) fetch(ctx context.Context, f Folder, prev *Snapshot) (*imapstore.Listing, parsedSet, error) {
	q := c.query(prev)
	// Messages go to the workers in batches, and each worker keeps what
	// it parsed until the end: a hand-off per message woke a goroutine
	// per message, a measurable share of a cold read.
	const batch = 64
	jobs := make(chan []imapstore.Message, 8)
	results := make(parsedSet, runtime.GOMAXPROCS(0))
	if prev == nil && f.State.Messages > 0 {
		// A folder read from scratch: its lists are sized once for
		// their share of the count the check read (with a quarter
		// more, as the shares are uneven), not grown by copying.
		per := int(min(f.State.Messages, 1<<20))*5/4/len(results) + batch
		for i := range results {
			results[i].uids = make([]uint32, 0, per)
			results[i].msgs = make([]message, 0, per)
		}
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			for msgs := range jobs {
				for _, msg := range msgs {
					results[i].add(msg.UID, newMessage(c.parse(f, msg)))
				}
			}
		})
	}
	var pending []imapstore.Message
	q.Received = func(m imapstore.Message) {
		pending = append(pending, m)
		if len(pending) == batch {
			jobs <- pending
			pending = make([]imapstore.Message, 0, batch)
		}
	}
	l, err := c.opts.Source.Fetch(ctx, f.Name, q)
	if len(pending) > 0 {
		jobs <- pending
	}
	close(jobs)
	wg.Wait()
	return l, results, err
}

// parsedSet holds the messages the workers parsed, one list per worker.
// Messages arrive, and go to the workers in batches, in ascending UID
// order, so each list ascends: a walk in UID order finds each message
// at the head of one of them, without the maps whose inserts and look-ups
// were a measurable share of the work after the last byte.
type parsedSet []parsedList

type parsedList struct {
	uids     []uint32
	msgs     []message
	next     int  // where the walk goes on
	unsorted bool // a UID came out of order: look up by binary search
}

func (p *parsedList) add(uid uint32, m message) {
	if n := len(p.uids); n > 0 && p.uids[n-1] >= uid {
		p.unsorted = true
	}
	p.uids = append(p.uids, uid)
	p.msgs = append(p.msgs, m)
}

// get returns the message with uid. Called with ascending UIDs, it finds
// each at the head of a list.
func (p parsedSet) get(uid uint32) (message, bool) {
	for i := range p {
		l := &p[i]
		if l.unsorted {
			// Sort the list once, then go on as for any other.
			order := make([]int, len(l.uids))
			for j := range order {
				order[j] = j
			}
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(l.uids[a], l.uids[b]) })
			uids, msgs := make([]uint32, len(order)), make([]message, len(order))
			for j, k := range order {
				uids[j], msgs[j] = l.uids[k], l.msgs[k]
			}
			l.uids, l.msgs, l.next, l.unsorted = uids, msgs, 0, false
		}
		if l.next > 0 && l.next <= len(l.uids) && l.uids[l.next-1] >= uid {
			// Asked out of order: look it up.
			if j, ok := slices.BinarySearch(l.uids, uid); ok {
				return l.msgs[j], true
			}
			continue
		}
		for l.next < len(l.uids) && l.uids[l.next] < uid {
			l.next++
		}
		if l.next < len(l.uids) && l.uids[l.next] == uid {
			return l.msgs[l.next], true
		}
	}
	return message{}, false
}

// wholeBelow bounds what the first round trip of a folder read from
// scratch fetches of each message: the message whole, or the part the
// folder keeps its calendar in (see imapstore.Query.WholeBelow). Calendar
// messages are small, so nearly every message of such a folder comes in
// that first round trip, not in a round trip for body structures and
// another for the parts. BenchmarkFolder10k measures a cold read.
const wholeBelow = 64 << 10

func (c *Cache) query(prev *Snapshot) imapstore.Query {
	q := imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: wholeBelow}
	if prev != nil {
		q.Known = func(uid uint32) bool { _, ok := slices.BinarySearch(prev.uids, uid); return ok }
		q.ChangedSince = prev.State.HighestModSeq
		q.Previous = prev.uids
	}
	return q
}
