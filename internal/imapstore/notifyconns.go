package imapstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fbpub/fbpub/internal/mutf7"
)

// NOTIFY over several connections: one NOTIFY SET carries at most
// MaxNotify names in maxNotifyBytes (less once the server refused a SET as
// too long), so the folders given to Watch are
// shared among up to NotifyConns connections (slots), each watching its
// share with a NOTIFY SET of its own. Each slot has a goroutine of its
// own that dials, sets, keeps alive and re-dials its connection, so that
// one connection failing leaves the others watching; only its own
// folders stop counting as watched (Watching) until it is back.

// notifySlot is one NOTIFY connection's place: what its goroutine is
// told, and what it reports.
type notifySlot struct {
	wake     chan struct{} // a token when its share may have changed
	overflow chan struct{} // a token when the server dropped its NOTIFY SET
	// notified is the set of folders the connection reports, read by its
	// reader goroutine.
	notified atomic.Pointer[map[string]bool]
	// live says that the connection is up and has set its share.
	live atomic.Bool
	// settled are the folders that count as watched (Watched):
	// those of the NOTIFY SET in effect, from the moment their states were
	// read after it (settle) until the SET is about to be replaced or the
	// connection ends. A share that grew, or a SET under way, is not
	// watched yet: the server announces nothing of those folders, or did
	// not while it was set, so the cache must check them as without
	// NOTIFY until then.
	settled atomic.Pointer[map[string]bool]
}

// setSettled makes folders the slot's watched folders (none for nil).
func (s *notifySlot) setSettled(folders []string) {
	if folders == nil {
		s.settled.Store(nil)
		return
	}
	m := make(map[string]bool, len(folders))
	for _, f := range folders {
		m[f] = true
	}
	s.settled.Store(&m)
}

func (s *notifySlot) setNotified(folders []string) {
	m := make(map[string]bool, len(folders))
	for _, f := range folders {
		m[f] = true
	}
	s.notified.Store(&m)
}

// notifyConnected counts a NOTIFY connection in (1) or out (-1), and sets
// the mode: WatchNotify while one is connected.
func (w *Watcher) notifyConnected(d int) {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	w.connected += d
	if w.connected > 0 {
		w.mode.Store(WatchNotify)
	} else {
		w.mode.Store(WatchOff)
	}
}

// wakeSlots tells every slot that its share, or whether the server has
// NOTIFY, may have changed.
func (w *Watcher) wakeSlots() {
	for _, s := range w.slots {
		poke(s.wake)
	}
}

// share returns the folders slot i is to watch.
func (w *Watcher) share(i int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.shares[i])
}

// notifyWatching returns the shares of the slots that are live: the
// folders they watch or are setting up to watch (see Watched).
func (w *Watcher) notifyWatching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for i, s := range w.slots {
		if s.live.Load() {
			out = append(out, w.shares[i]...)
		}
	}
	return out
}

// Watched reports whether a NOTIFY connection watches folder now: the
// server announces its changes, and any it made while the connection was
// down or its NOTIFY SET was being replaced have been read since. It takes
// no lock, for a caller on the request path.
func (w *Watcher) Watched(folder string) bool {
	for _, s := range w.slots {
		if m := s.settled.Load(); m != nil && (*m)[folder] && s.live.Load() {
			return true
		}
	}
	return false
}

// runSlots runs a goroutine per NOTIFY slot until ctx ends (nil) or a
// connection finds that the server has no usable NOTIFY (errNoNotify;
// the others are ended first).
func (w *Watcher) runSlots(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		noNotify error
		refused  = make(chan struct{})
	)
	for i := range w.slots {
		wg.Go(func() {
			if err := w.runSlot(ctx, i); err != nil {
				once.Do(func() {
					noNotify = err
					close(refused)
				})
			}
		})
	}
	select {
	case <-ctx.Done():
	case <-refused:
	}
	cancel()
	wg.Wait()
	return noNotify
}

// runSlot keeps slot i's connection watching its share until ctx ends
// (nil) or the server has no usable NOTIFY (errNoNotify). The first slot
// always connects (it finds whether the server has NOTIFY); another only
// once that is known and while its share is not empty. A connection that
// fails is dialled again with backoff.
func (w *Watcher) runSlot(ctx context.Context, i int) error {
	s := w.slots[i]
	for failures := 0; ctx.Err() == nil; {
		if i > 0 && (!w.notifying.Load() || len(w.share(i)) == 0) {
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
			}
			continue
		}
		established, err := w.runNotify(ctx, i)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errNoNotify) {
			return err
		}
		if err == nil { // its share is empty: the connection is closed
			failures = 0
			continue
		}
		if established {
			failures = 0
		}
		failures++
		if !w.pauseAfter(ctx, "NOTIFY watch interrupted", failures, "connection", i, "err", err) {
			return nil
		}
	}
	return nil
}

// notifyCost is what a name adds to a NOTIFY SET, as mailboxesFilter
// writes it: quoted in modified UTF-7, then in UTF-8 where that differs,
// each with the space before it.
func notifyCost(f string) int {
	m := mutf7.Encode(f)
	n := len(quoteReplacer.Replace(m)) + 3
	if m != f {
		n += len(quoteReplacer.Replace(f)) + 3
	}
	return n
}

// notifyBounds bound the NOTIFY sets of a Watcher.
type notifyBounds struct {
	names int // folders per NOTIFY SET (WatchOptions.MaxNotify)
	bytes int // what mailboxesFilter writes per NOTIFY SET (see notifyCost)
	conns int // NOTIFY connections (WatchOptions.NotifyConns)
}

// notifyChunks splits the distinct folders of desired that NOTIFY can
// watch (see notifiable), in their order, into at most b.conns lists of
// at most b.names names and b.bytes each. left says that some were left
// out.
func notifyChunks(desired []string, b notifyBounds) (chunks [][]string, left bool) {
	seen := make(map[string]bool, len(desired))
	var cur []string
	size := 0
	for _, f := range desired {
		if f == "" || seen[f] || !notifiable(f) {
			continue
		}
		seen[f] = true
		n := notifyCost(f)
		if n > b.bytes {
			left = true // a name no NOTIFY SET can carry
			continue
		}
		if len(cur) == b.names || size+n > b.bytes {
			chunks = append(chunks, cur)
			cur, size = nil, 0
			if len(chunks) == b.conns {
				return chunks, true
			}
		}
		cur = append(cur, f)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks, left
}

// NotifyCapacity returns, for the list last given to Watch, how many of
// its folders NOTIFY could watch (distinct names NOTIFY can carry; see
// notifiable) and how many of those the NOTIFY connections carry within
// their bounds (NotifyConns, MaxNotify, the bytes of a SET). The others
// are left to the regular checks.
func (w *Watcher) NotifyCapacity() (carried, wanted int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[string]bool, len(w.desired))
	for _, f := range w.desired {
		if f != "" && !seen[f] && notifiable(f) {
			seen[f] = true
			wanted++
		}
	}
	return notifyCount(w.desired, w.bounds), wanted
}

// notifyCount is how many folders of desired NOTIFY watches.
func notifyCount(desired []string, b notifyBounds) int {
	chunks, _ := notifyChunks(desired, b)
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	return n
}

// notifyFull reports whether the NOTIFY sets of desired are full: they
// leave folders of desired out, or hold b.conns×b.names.
func notifyFull(desired []string, b notifyBounds) bool {
	chunks, left := notifyChunks(desired, b)
	return left || (len(chunks) == b.conns && len(chunks[b.conns-1]) == b.names)
}

// assignNotify shares the folders NOTIFY watches of desired (see
// notifyChunks) among b.conns slots, each within b.names and b.bytes.
// A folder stays in the slot of prev that watches it already, so that a
// list that only reorders or adds a few folders costs a NOTIFY SET on one
// connection, not on all; new folders go to the first slot with room.
// Where that would leave a folder out, or use more connections than the
// folders need (the first slot always has one), they are shared anew in
// order.
func assignNotify(prev [][]string, desired []string, b notifyBounds) [][]string {
	k := b.conns
	chunks, _ := notifyChunks(desired, b)
	var all []string
	for _, c := range chunks {
		all = append(all, c...)
	}
	want := make(map[string]bool, len(all))
	for _, f := range all {
		want[f] = true
	}
	out := make([][]string, k)
	size := make([]int, k)
	placed := make(map[string]bool, len(all))
	for i := range min(k, len(prev)) {
		for _, f := range prev[i] {
			if want[f] && !placed[f] {
				out[i] = append(out[i], f)
				size[i] += notifyCost(f)
				placed[f] = true
			}
		}
	}
	for _, f := range all {
		if placed[f] {
			continue
		}
		for i := range out {
			if len(out[i]) < b.names && size[i]+notifyCost(f) <= b.bytes {
				out[i] = append(out[i], f)
				size[i] += notifyCost(f)
				placed[f] = true
				break
			}
		}
	}
	used := 0
	for _, o := range out {
		if len(o) > 0 {
			used++
		}
	}
	if len(placed) < len(all) || used > len(chunks) || (used > 0 && len(out[0]) == 0) {
		out = make([][]string, k)
		copy(out, chunks)
	}
	return out
}
