package imapstore

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Push: a Watcher has the server announce changes, so that a folder is
// known changed at once instead of at the next check.
//
// Where the server offers NOTIFY (RFC 5465; Dovecot does), up to
// WatchOptions.NotifyConns connections watch the folders the caller names,
// each up to WatchOptions.MaxNotify of them, with go-imap's Client.Notify;
// a second connection opens only once the first one's set is full. Elsewhere (Cyrus 3.6 has
// no NOTIFY) IDLE (RFC 2177) runs on at most WatchOptions.MaxIdle
// connections, one per folder, for the first folders of the caller's list.
// Every other folder is left to the regular checks.
//
// notify.go holds a NOTIFY connection, notifyconns.go how the folders are
// shared among them, idle.go the IDLE watch.

// WatchMode says how a Watcher watches.
type WatchMode string

// The watch modes.
const (
	WatchOff    WatchMode = "off"    // not connected yet, or closed
	WatchNotify WatchMode = "notify" // NOTIFY, on one connection or more
	WatchIdle   WatchMode = "idle"   // IDLE connections, one per folder
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Options say how to reach and log in to the server. OnChange is
	// ignored: the watcher sets its own.
	Options Options
	// MaxIdle bounds the IDLE connections, and so the folders watched
	// without NOTIFY (default 4). Mind the server's limit of connections
	// per user and address (Dovecot: mail_max_userip_connections, 10),
	// which the proxy's pool shares.
	MaxIdle int
	// MaxNotify bounds the folders one NOTIFY connection watches (default
	// 2000; its names are also bounded to 60 KiB in all, and to half of
	// what a NOTIFY SET the server refused carried; see shrinkNotify).
	MaxNotify int
	// NotifyConns bounds the NOTIFY connections (default 4), and so, with
	// MaxNotify, the folders watched with NOTIFY. Only as many are opened
	// as the list given to Watch needs: one, unless it holds more than
	// MaxNotify folders. Mind the server's limit of connections per user
	// and address, as for MaxIdle.
	NotifyConns int
	// NoNotify makes the watcher use IDLE even where the server has
	// NOTIFY.
	NoNotify bool
	// Keepalive is how often each NOTIFY connection sends NOOP, which
	// also finds a dead connection or a server that stopped answering
	// (default 30 s; Dovecot logs out a client silent for 30 min).
	Keepalive time.Duration
	// KeepaliveTimeout is how long a NOOP may go unanswered before the
	// connection is given up and its folders are no longer watched
	// (default 5 s, at most Options.Timeout): until then a hung server's
	// folders are answered as watched, that is, as fresh.
	KeepaliveTimeout time.Duration
	// Changed is called with a folder's name when the server announces a
	// change in it, and when the folder starts being watched, since it may
	// have changed unseen before (with Settled, only when its state could
	// not be read then). It may be called from several goroutines at once
	// and must not block.
	Changed func(folder string)
	// Hold is, with NOTIFY, how long a list given to Watch stands before
	// a later one that would only replace watched folders with others (the
	// NOTIFY connections' sets are full: NotifyConns×MaxNotify, or the
	// bound on names) is taken: each replacement costs the server a
	// NOTIFY SET, an EXAMINE of each new folder
	// and a resync. A list that adds room-permitting folders, or any list
	// with IDLE, is taken at once. Zero takes every list at once.
	Hold time.Duration
	// Resync, when set, is called when a NOTIFY connection is
	// (re)established and when the list of folders it watches changed:
	// changes may have been missed meanwhile, so every folder must be
	// checked. When nil, Changed is called for each folder that
	// connection watches instead. It must not block.
	Resync func()
	// Settled, when set (and Resync is not), is how a NOTIFY connection
	// reports its folders once its NOTIFY SET is in effect, instead of
	// calling Changed for each: it reads their states on that connection
	// (pipelined STATUS, cheap for the server, which has just opened
	// them) and calls Settled with each state read, Changed for a folder
	// whose STATUS failed. The receiver compares the state with the one
	// it holds: only a folder that moved unseen needs a check. It may be
	// called from several goroutines at once and must not block.
	Settled func(folder string, st State)
}

// Watcher watches folders for changes the server announces. Its methods
// may be called from several goroutines. It runs a goroutine of its own
// from the first call of Watch until Close, plus one per NOTIFY
// connection slot (NotifyConns) or per IDLE connection.
type Watcher struct {
	o     WatchOptions
	log   *slog.Logger
	wake  chan struct{} // a token when desired changed (IDLE)
	slots []*notifySlot // one per NOTIFY connection, NotifyConns of them

	mu      sync.Mutex
	desired []string // guarded by mu
	// shares are the folders each NOTIFY slot watches (see assignNotify),
	// made from desired within bounds, which shrinkNotify may lower;
	// both guarded by mu.
	shares  [][]string
	bounds  notifyBounds
	taken   time.Time          // when desired was set; guarded by mu
	started bool               // guarded by mu
	closed  bool               // guarded by mu
	cancel  context.CancelFunc // ends run; guarded by mu
	wg      sync.WaitGroup     // waits for run

	mode atomic.Value // WatchMode
	// notifying says whether the server was last found to have NOTIFY.
	notifying atomic.Bool
	// connected counts the NOTIFY connections logged in; the mode is
	// WatchNotify while there is one. Guarded by connMu, which is held
	// while the mode is set from it.
	connMu    sync.Mutex
	connected int
	// onDial, set by tests before Watch, is told of each NOTIFY
	// connection made.
	onDial func(slot int, conn net.Conn)
}

// NewWatcher makes a watcher that logs in with opts, watches at most max
// folders with IDLE where the server has no NOTIFY, and calls changed as
// WatchOptions.Changed says.
func NewWatcher(opts Options, max int, changed func(folder string)) *Watcher {
	return NewWatcherWith(WatchOptions{Options: opts, MaxIdle: max, Changed: changed})
}

// NewWatcherWith makes a watcher. Nothing connects before the first call
// of Watch.
func NewWatcherWith(o WatchOptions) *Watcher {
	if o.Options.Logger == nil {
		o.Options.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 4
	}
	if o.MaxNotify <= 0 {
		o.MaxNotify = defaultMaxNotify
	}
	if o.NotifyConns <= 0 {
		o.NotifyConns = defaultNotifyConns
	}
	if o.Keepalive <= 0 {
		o.Keepalive = 30 * time.Second
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = 5 * time.Second
	}
	if o.Changed == nil {
		o.Changed = func(string) {}
	}
	o.Options.OnChange = nil
	w := &Watcher{o: o, log: o.Options.Logger, wake: make(chan struct{}, 1), shares: make([][]string, o.NotifyConns),
		bounds: notifyBounds{names: o.MaxNotify, bytes: maxNotifyBytes, conns: o.NotifyConns}}
	for range o.NotifyConns {
		w.slots = append(w.slots, &notifySlot{wake: make(chan struct{}, 1), overflow: make(chan struct{}, 1)})
	}
	w.mode.Store(WatchOff)
	return w
}

// Watch sets the folders to watch (names as the proxy sees them, e.g.
// "shared/alice/Calendar"), most wanted first: with NOTIFY the first
// NotifyConns×MaxNotify (see notifyChunks), with IDLE the first MaxIdle
// are watched. Folders no longer
// named stop being watched. Cheap when nothing changed; the watcher
// catches up in the background.
func (w *Watcher) Watch(folders []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if w.started && slices.Equal(folders, w.desired) {
		return
	}
	if w.started && w.o.Hold > 0 && w.notifying.Load() && time.Since(w.taken) < w.o.Hold &&
		notifyFull(w.desired, w.bounds) && notifyCount(folders, w.bounds) <= notifyCount(w.desired, w.bounds) {
		// It would only swap watched folders: the NOTIFY sets stand
		// (and Watching with them); the others are checked as before.
		return
	}
	w.desired = slices.Clone(folders)
	w.shares = assignNotify(w.shares, w.desired, w.bounds)
	w.taken = time.Now()
	if !w.started {
		w.started = true
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		w.wg.Go(func() { w.run(ctx) })
	}
	poke(w.wake)
	w.wakeSlots()
}

// poke puts a token in ch unless one is there.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Watching returns the folders watched, or being set up to be watched
// (connections are made in the background), sorted: with NOTIFY the
// shares of the connections that are up (the first NotifyConns×MaxNotify
// of the list given to Watch when all are; the folders of a connection
// that is down, or not set up again yet, are not watched), otherwise
// (IDLE, or before the first connection) the first MaxIdle. Which of them
// a caller may rely on the server's announcements for is Watched.
func (w *Watcher) Watching() []string {
	var out []string
	if w.notifying.Load() {
		out = w.notifyWatching()
	} else {
		out = w.wanted(w.o.MaxIdle)
	}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return nil
	}
	slices.Sort(out)
	return out
}

// Mode says how the watcher watches now.
func (w *Watcher) Mode() WatchMode { return w.mode.Load().(WatchMode) }

// Close stops every watch and waits for the connections to close.
func (w *Watcher) Close() {
	w.mu.Lock()
	w.closed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
}

// wanted returns the first n desired folders, without duplicates.
func (w *Watcher) wanted(n int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return firstDistinct(w.desired, n)
}

// firstDistinct returns the first n distinct non-empty names of list.
func firstDistinct(list []string, n int) []string {
	var out []string
	for _, f := range list {
		if len(out) == n {
			break
		}
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// errNoNotify means the server has no NOTIFY, or refused the NOTIFY SET
// this client needs.
var errNoNotify = errors.New("imapstore: no usable NOTIFY")

// run is the watcher's goroutine: NOTIFY while the server offers it, IDLE
// otherwise, until ctx ends.
func (w *Watcher) run(ctx context.Context) {
	defer w.mode.Store(WatchOff)
	if w.o.NoNotify {
		w.runIdle(ctx)
		return
	}
	if err := w.runSlots(ctx); err != nil && ctx.Err() == nil {
		w.log.Info("server has no usable NOTIFY: watching with IDLE", "max_idle", w.o.MaxIdle, "err", err)
		w.runIdle(ctx)
	}
}

// resync says that every folder slot s watches may have changed: Resync,
// or Changed for each.
func (w *Watcher) resync(s *notifySlot) {
	if w.o.Resync != nil {
		w.o.Resync()
		return
	}
	if m := s.notified.Load(); m != nil {
		for _, f := range slices.Sorted(maps.Keys(*m)) {
			w.o.Changed(f)
		}
	}
}

// pauseAfter logs that a watch connection failed for the failures-th time
// in a row (at debug level for the first three, then as a warning) and
// waits the backoff for that many; it reports false when ctx ended first.
func (w *Watcher) pauseAfter(ctx context.Context, msg string, failures int, args ...any) bool {
	level := slog.LevelDebug
	if failures > 3 {
		level = slog.LevelWarn
	}
	w.log.Log(ctx, level, msg, append(args, "failures", failures)...)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(backoff(failures)):
		return true
	}
}
