package feed

import (
	"container/list"
	"sync"
	"unsafe"
)

// lru is a small least-recently-used cache of rendered answers, bounded by
// the heap they hold: bodies, their gzipped copies (counted when next got
// after Gzipped made one), keys and bookkeeping.
type lru struct {
	mu      sync.Mutex
	max     int64
	size    int64                    // guarded by mu
	order   *list.List               // of *lruEntry, most recent first; guarded by mu
	entries map[string]*list.Element // guarded by mu
}

type lruEntry struct {
	key  string
	a    *Rendered
	size int64 // what the entry was counted for; guarded by the lru's mu
}

// maxRendered bounds the bytes of rendered answers kept when
// Options.MaxBytes does not.
const maxRendered = 64 << 20

// answerBound is the share of Options.MaxBytes rendered answers may hold:
// a quarter (snapshots hold the rest, see setSnap), at most maxRendered.
func answerBound(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return maxRendered
	}
	return min(maxBytes/4, maxRendered)
}

func newLRU(max int64) *lru {
	return &lru{max: max, order: list.New(), entries: map[string]*list.Element{}}
}

// entrySize is the heap an entry of the lru holds: the key, twice (the map
// and the entry), the Rendered with its body, ETag and gzipped copy, and
// the list element, entry and map slot.
func entrySize(key string, a *Rendered) int64 {
	return allocSize(len(key)) + allocSize(int(unsafe.Sizeof(Rendered{}))) + allocSize(cap(a.Body)) +
		allocSize(len(a.ETag)) + allocSize(int(a.gzipSize.Load())) +
		allocSize(int(unsafe.Sizeof(list.Element{}))) + allocSize(int(unsafe.Sizeof(lruEntry{}))) + 64
}

func (l *lru) get(key string) *Rendered {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		l.order.MoveToFront(e)
		ent := e.Value.(*lruEntry)
		if n := entrySize(ent.key, ent.a); n != ent.size {
			l.size += n - ent.size
			ent.size = n
			l.evict()
		}
		return ent.a
	}
	return nil
}

func (l *lru) put(key string, a *Rendered) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.entries[key]; e != nil {
		l.size -= e.Value.(*lruEntry).size
		l.order.Remove(e)
	}
	ent := &lruEntry{key: key, a: a, size: entrySize(key, a)}
	l.entries[key] = l.order.PushFront(ent)
	l.size += ent.size
	l.evict()
}

// evict drops the least recently used entries, never the most recent,
// while the lru is over its bound. l.mu must be held.
func (l *lru) evict() {
	for l.size > l.max && l.order.Len() > 1 {
		e := l.order.Back()
		ent := e.Value.(*lruEntry)
		l.order.Remove(e)
		delete(l.entries, ent.key)
		l.size -= ent.size
	}
}

// bytes is the heap the lru's entries hold.
func (l *lru) bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}
