package feed

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"
	"unsafe"
	"weak"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// Snapshot is the content of one folder at one state: per message, the
// text of its calendar objects (see message); Objects decodes them.
// Snapshots are immutable once published, but for the fields the cache's
// mu guards; a refresh builds a new one.
type Snapshot struct {
	Folder Folder
	State  imapstore.State
	// Fetched is when the folder was read.
	Fetched time.Time
	// Digest summarises the UIDs and \Deleted flags the snapshot holds;
	// on a server without CONDSTORE it is what reveals a flag change.
	Digest string

	// uids lists the folder's messages in ascending UID order, and msgs
	// holds each one's content at the same index: slices, not a
	// map, because every sync and render walks them all.
	uids []uint32
	msgs []message
	// checked is the folder-list check this snapshot was validated for.
	checked time.Time
	// key names the folder and its content in render keys (setKey).
	key string

	// size is the heap the snapshot holds (memSize), counted when it
	// became its folder's snapshot in the cache, and elem is its place
	// in the cache's order of use (snapMemory) while it is; both are
	// guarded by the cache's mu.
	size int64
	elem *list.Element

	// trees are the objects of the messages, decoded when a render
	// needs them and kept only while some render holds them (see
	// decoded); base are those of the snapshot this one replaced in the
	// cache, whose messages it may share. Guarded by treesMu.
	treesMu sync.Mutex
	trees   weak.Pointer[snapTrees]
	base    weak.Pointer[snapTrees]
}

// snapTrees are the decoded objects of a snapshot's messages.
type snapTrees struct {
	// byMsg holds each message's objects at its index in msgs; nil for
	// a message flagged \Deleted.
	byMsg [][]*calendar.Object
	// all are the objects of the messages not flagged \Deleted, ordered
	// by message UID.
	all []*calendar.Object
	// uids and msgs are the snapshot's: a later snapshot of the folder
	// takes the objects of the messages it shares (see decoded).
	uids []uint32
	msgs []message
}

// Objects returns the calendar objects of the folder's messages that are
// not flagged \Deleted, ordered by message UID. They are decoded from the
// text the snapshot keeps, and shared with whatever else asks for them
// while they are held: callers must not modify them (calendar.Object is
// immutable). Two calls may return different copies of the same objects,
// so a caller that relates objects by pointer calls it once.
func (s *Snapshot) Objects() []*calendar.Object { return s.decoded().all }

// decoded returns the snapshot's objects, decoding them unless a render
// still holds those of an earlier call. Concurrent callers wait for one
// decoding.
func (s *Snapshot) decoded() *snapTrees {
	s.treesMu.Lock()
	defer s.treesMu.Unlock()
	if t := s.trees.Value(); t != nil {
		return t
	}
	t := &snapTrees{byMsg: make([][]*calendar.Object, len(s.msgs)), uids: s.uids, msgs: s.msgs}
	// After an incremental sync, the snapshot shares most messages with
	// the one it replaced: their objects, when a render still holds
	// them or no collection ran since, need no decoding.
	base := s.base.Value()
	s.base = weak.Pointer[snapTrees]{}
	k, n := 0, 0
	for i := range s.msgs {
		m := &s.msgs[i]
		if m.deleted {
			continue
		}
		if base != nil {
			for k < len(base.uids) && base.uids[k] < s.uids[i] {
				k++
			}
			if k < len(base.uids) && base.uids[k] == s.uids[i] && base.msgs[k].lazy == m.lazy && base.byMsg[k] != nil {
				t.byMsg[i] = base.byMsg[k]
			}
		}
		if t.byMsg[i] == nil {
			t.byMsg[i] = m.objects()
		}
		n += len(t.byMsg[i])
	}
	t.all = make([]*calendar.Object, 0, n)
	for _, objs := range t.byMsg {
		t.all = append(t.all, objs...)
	}
	s.trees = weak.Make(t)
	return t
}

// Memory: a cache holds one snapshot per folder asked for. With
// Options.MaxBytes set, snapshots may hold three quarters of it, rendered
// answers the rest (newLRU); past that, the snapshots used least recently
// are dropped. A dropped folder is read again when next asked for: from
// the state directory when there is one (then checked with the folder's
// state, as after a restart), else from IMAP. Sizes are counted from what
// each snapshot holds, allocation by allocation, rounded up as Go's
// allocator rounds (allocSize); TestMaxBytes compares them with the heap.

// snapMemory accounts for the snapshots of a cache; guarded by the
// cache's mu.
type snapMemory struct {
	// order holds the snapshots of c.snaps, most recently used first.
	order list.List
	// bytes is the sum of their sizes.
	bytes int64
	// evictions counts the snapshots dropped to stay within the bound.
	evictions int
}

// setSnap makes s its folder's snapshot, and drops the least recently used
// snapshots while those the cache holds are over their share of
// Options.MaxBytes (never s itself). c.mu must be held.
func (c *Cache) setSnap(s *Snapshot) {
	name := s.Folder.Name
	if old := c.snaps[name]; old != nil {
		if old == s {
			return
		}
		c.unlinkSnap(old)
		old.treesMu.Lock()
		base := old.trees
		old.treesMu.Unlock()
		s.treesMu.Lock()
		s.base = base
		s.treesMu.Unlock()
	}
	c.snaps[name] = s
	s.size = s.memSize()
	s.elem = c.mem.order.PushFront(s)
	c.mem.bytes += s.size
	limit := c.opts.MaxBytes - c.opts.MaxBytes/4
	for c.opts.MaxBytes > 0 && c.mem.bytes > limit {
		victim := c.mem.order.Back().Value.(*Snapshot)
		if victim == s {
			break
		}
		delete(c.snaps, victim.Folder.Name)
		// Loaded from the state directory again when next asked for.
		delete(c.loaded, victim.Folder.Name)
		c.unlinkSnap(victim)
		c.mem.evictions++
	}
}

// dropSnap forgets the snapshot of folder name (a folder no longer
// published). c.mu must be held.
func (c *Cache) dropSnap(name string) {
	if s := c.snaps[name]; s != nil {
		delete(c.snaps, name)
		c.unlinkSnap(s)
	}
}

func (c *Cache) unlinkSnap(s *Snapshot) {
	if s.elem != nil {
		c.mem.order.Remove(s.elem)
		s.elem = nil
		c.mem.bytes -= s.size
	}
}

// remeasure counts again the sizes of snaps that are still the cache's,
// after a render encoded views they hold (message.lazy).
func (c *Cache) remeasure(snaps []*Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range snaps {
		if s.elem != nil {
			n := s.memSize()
			c.mem.bytes += n - s.size
			s.size = n
		}
	}
}

// MemoryBytes returns the bytes the cache accounts for: its snapshots and
// its rendered answers.
func (c *Cache) MemoryBytes() int64 {
	c.mu.Lock()
	n := c.mem.bytes
	c.mu.Unlock()
	return n + c.answers.bytes()
}

// memSize is the heap s holds, apart from what it shares with the
// directory (its Folder) and the interned text of time zones.
func (s *Snapshot) memSize() int64 {
	n := allocSize(int(unsafe.Sizeof(*s))) + allocSize(cap(s.uids)*4) +
		allocSize(cap(s.msgs)*int(unsafe.Sizeof(message{}))) + allocSize(len(s.key)) + allocSize(len(s.Digest))
	for i := range s.msgs {
		n += s.msgs[i].memSize()
	}
	return n
}

// memSize is the heap m holds apart from its struct.
func (m *message) memSize() int64 {
	n := allocSize(cap(m.body)) + allocSize(cap(m.zones)*int(unsafe.Sizeof(zone{})))
	for _, z := range m.zones {
		n += allocSize(len(z.id))
	}
	if m.lazy != nil {
		n += allocSize(int(unsafe.Sizeof(lazyViews{})))
		for _, p := range []*[]byte{m.lazy.busy.Load(), m.lazy.reader.Load()} {
			if p != nil {
				n += allocSize(int(unsafe.Sizeof(*p))) + allocSize(cap(*p))
			}
		}
	}
	return n
}

// allocSize is the heap an allocation of n bytes takes, rounded up at
// least as far as Go's allocator rounds it: its size classes are 8 bytes
// apart up to 16, 16 up to 128, then at most a quarter of the size apart,
// and larger objects take whole 8 KiB pages.
func allocSize(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return int64(n+7) &^ 7
	case n <= 128:
		return int64(n+15) &^ 15
	case n > 32<<10:
		return int64(n+8<<10-1) &^ (8<<10 - 1)
	}
	step := 1 << (bits.Len(uint(n)) - 3)
	return int64(n+step-1) &^ int64(step-1)
}

// setKey computes s.key once the snapshot is complete.
func (s *Snapshot) setKey() {
	s.key = s.Folder.Name + "=" + stateKey(s.State) + "/" + s.Digest + ";"
}

// Snapshot returns f's content at its current state. With CONDSTORE an
// unchanged (UIDVALIDITY, HIGHESTMODSEQ) means an unchanged folder; without
// it, a flag change moves no state, so the folder is re-read (UIDs and
// flags only, plus any new message) once per folder-list check.
func (c *Cache) Snapshot(ctx context.Context, f Folder) (*Snapshot, error) {
	c.mu.Lock()
	prev := c.snaps[f.Name]
	c.hits[f.Name]++
	if prev != nil && prev.elem != nil {
		c.mem.order.MoveToFront(prev.elem)
	}
	c.mu.Unlock()
	if prev == nil {
		if prev = c.loadOnce(f); prev != nil {
			c.mu.Lock()
			if c.snaps[f.Name] == nil {
				c.setSnap(prev)
			}
			prev = c.snaps[f.Name]
			c.mu.Unlock()
		}
	}
	if prev.covers(f) {
		return prev, nil
	}
	return c.syncShared(ctx, f, prev)
}

// errSyncPending says that a sync outlasted the check budget: the caller
// has the previous snapshot, to answer from marked stale.
var errSyncPending = errors.New("feed: folder still being read")

// snapshotWithin is Snapshot for a request that holds an answer: when the
// folder must be read again and that takes longer than budget (a large
// change, a slow server, a message that is slow to parse), it returns the
// snapshot it has with errSyncPending, as a check past its budget does,
// while the read goes on for the next request. A zero budget waits.
func (c *Cache) snapshotWithin(ctx context.Context, f Folder, budget time.Duration) (*Snapshot, error) {
	c.mu.Lock()
	prev := c.snaps[f.Name]
	c.mu.Unlock()
	if budget <= 0 || prev == nil || prev.covers(f) {
		return c.Snapshot(ctx, f)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, budget, errSyncPending)
	defer cancel()
	s, err := c.Snapshot(wctx, f)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), errSyncPending) {
		return prev, errSyncPending
	}
	return s, err
}

// syncShared is Snapshot's slow path, apart so that the closure it makes
// (and the copies of f and prev the closure holds) are only allocated here.
func (c *Cache) syncShared(ctx context.Context, f Folder, prev *Snapshot) (*Snapshot, error) {
	// With CONDSTORE the state names the content, so every request that
	// saw this state may share one sync. Without it, the same state may
	// hide a flag change, so only requests of one check share.
	key := f.Name + "\x00" + stateKey(f.State)
	if f.State.HighestModSeq == 0 {
		key += "\x00" + f.checked.String()
	}
	v, err := c.shared(ctx, "sync", key, func(ctx context.Context) (any, error) {
		// A request that found the snapshot stale may get here just
		// after a sync for the same state finished: look again first,
		// or it would sync a second time (seen by TestHerd under load).
		c.mu.Lock()
		cur := c.snaps[f.Name]
		c.mu.Unlock()
		if cur.covers(f) {
			return cur, nil
		}
		if cur != nil {
			prev = cur
		}
		return c.syncReplicated(ctx, f, prev)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Snapshot), nil
}

func stateKey(s imapstore.State) string {
	return fmt.Sprintf("%d.%d.%d.%d", s.UIDValidity, s.HighestModSeq, s.UIDNext, s.Messages)
}

// loadOnce loads folder f's persisted snapshot, once per folder for the
// life of the cache.
func (c *Cache) loadOnce(f Folder) *Snapshot {
	if c.opts.StateDir == "" {
		return nil
	}
	v, _, _ := c.group.Do("load\x00"+f.Name, func() (any, error) {
		c.mu.Lock()
		done := c.loaded[f.Name]
		c.loaded[f.Name] = true
		c.mu.Unlock()
		if done {
			return (*Snapshot)(nil), nil
		}
		return c.load(f), nil
	})
	return v.(*Snapshot)
}

// covers reports whether s is at least as new as the state f was checked
// at. With CONDSTORE a snapshot whose HIGHESTMODSEQ is not below the
// checked one is: it was read after that check. (Dovecot's LIST-STATUS
// may answer from its mailbox list index, which can lag a moment behind
// the SELECT the snapshot was read at; equality alone would then resync
// for nothing.) Without CONDSTORE only an equal state read at or after
// the check will do, since flag changes move no state.
func (s *Snapshot) covers(f Folder) bool {
	if s == nil || s.State.UIDValidity != f.State.UIDValidity {
		return false
	}
	if f.State.HighestModSeq != 0 {
		return s.State.HighestModSeq >= f.State.HighestModSeq
	}
	return s.State == f.State && !s.checked.Before(f.checked)
}

// messageFrom returns the message with uid, looking from index *next on
// and moving *next past it: callers asking for ascending UIDs walk the
// snapshot once.
func (s *Snapshot) messageFrom(next *int, uid uint32) (message, bool) {
	if s == nil {
		return message{}, false
	}
	i := *next
	for i < len(s.uids) && s.uids[i] < uid {
		i++
	}
	*next = i
	if i < len(s.uids) && s.uids[i] == uid {
		*next = i + 1
		return s.msgs[i], true
	}
	return message{}, false
}
