package feed

import (
	"context"
	"fmt"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// Snapshot is the parsed content of one folder at one state. Snapshots are
// immutable once published; a refresh builds a new one.
type Snapshot struct {
	Folder Folder
	State  imapstore.State
	// Objects are the calendar objects of the folder's messages that are
	// not flagged \Deleted, ordered by message UID.
	Objects []*calendar.Object
	// Fetched is when the folder was read.
	Fetched time.Time
	// Digest summarises the UIDs and \Deleted flags the snapshot holds;
	// on a server without CONDSTORE it is what reveals a flag change.
	Digest string

	// uids lists the folder's messages in ascending UID order, and msgs
	// holds each one's parsed content at the same index: slices, not a
	// map, because every sync and render walks them all.
	uids []uint32
	msgs []message
	// checked is the folder-list check this snapshot was validated for.
	checked time.Time
	// key names the folder and its content in render keys (setKey).
	key string
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
	c.mu.Unlock()
	if prev == nil {
		if prev = c.loadOnce(f); prev != nil {
			c.mu.Lock()
			if c.snaps[f.Name] == nil {
				c.snaps[f.Name] = prev
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
