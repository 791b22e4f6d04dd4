package imapstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

// Push: a Watcher has the server announce changes, so that a folder is
// known changed at once instead of at the next check.
//
// Where the server offers NOTIFY (RFC 5465; Dovecot does), one connection
// watches every folder the caller names, up to WatchOptions.MaxNotify (see
// notify.go for what Dovecot announces, and how). Elsewhere (Cyrus 3.6 has
// no NOTIFY) IDLE (RFC 2177) runs on at most WatchOptions.MaxIdle
// connections, one per folder, for the first folders of the caller's list.
// Every other folder is left to the regular checks.

// WatchMode says how a Watcher watches.
type WatchMode string

// The watch modes.
const (
	WatchOff    WatchMode = "off"    // not connected yet, or closed
	WatchNotify WatchMode = "notify" // one NOTIFY connection
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
	// MaxNotify bounds the folders watched with NOTIFY (default 1000; the
	// names are also bounded to 32 KiB in all).
	MaxNotify int
	// NoNotify makes the watcher use IDLE even where the server has
	// NOTIFY.
	NoNotify bool
	// Keepalive is how often the NOTIFY connection sends NOOP, which also
	// finds a dead connection (default 5 min; Dovecot logs out a client
	// silent for 30 min).
	Keepalive time.Duration
	// Changed is called with a folder's name when the server announces a
	// change in it, and when the folder starts being watched, since it may
	// have changed unseen before. It may be called from several
	// goroutines at once and must not block.
	Changed func(folder string)
	// Resync, when set, is called when the NOTIFY connection is
	// (re)established and when the list of folders it watches changed:
	// changes may have been missed meanwhile, so every folder must be
	// checked. When nil, Changed is called for each watched folder
	// instead. It must not block.
	Resync func()
}

// Watcher watches folders for changes the server announces. Its methods
// may be called from several goroutines. It runs a goroutine of its own
// from the first call of Watch until Close, plus one per IDLE connection.
type Watcher struct {
	o    WatchOptions
	log  *slog.Logger
	wake chan struct{} // a token when desired changed

	mu      sync.Mutex
	desired []string           // guarded by mu
	started bool               // guarded by mu
	closed  bool               // guarded by mu
	cancel  context.CancelFunc // ends run; guarded by mu
	wg      sync.WaitGroup     // waits for run

	mode atomic.Value // WatchMode
	// notifying says whether the server was last found to have NOTIFY.
	notifying atomic.Bool
	// notified is the set of folders the NOTIFY connection reports, read
	// by its reader goroutine.
	notified atomic.Pointer[map[string]bool]
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
	if o.Keepalive <= 0 {
		o.Keepalive = 5 * time.Minute
	}
	if o.Changed == nil {
		o.Changed = func(string) {}
	}
	o.Options.OnChange = nil
	w := &Watcher{o: o, log: o.Options.Logger, wake: make(chan struct{}, 1)}
	w.mode.Store(WatchOff)
	return w
}

// Watch sets the folders to watch (names as the proxy sees them, e.g.
// "shared/alice/Calendar"), most wanted first: with NOTIFY the first
// MaxNotify, with IDLE the first MaxIdle are watched. Folders no longer
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
	w.desired = slices.Clone(folders)
	if !w.started {
		w.started = true
		ctx, cancel := context.WithCancel(context.Background())
		w.cancel = cancel
		w.wg.Go(func() { w.run(ctx) })
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Watching returns the folders watched, or being set up to be watched
// (connections are made in the background), sorted: with NOTIFY the
// first MaxNotify of the list given to Watch, otherwise (IDLE, or before
// the first connection) the first MaxIdle.
func (w *Watcher) Watching() []string {
	var out []string
	if w.notifying.Load() {
		out = w.notifyWanted()
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
	var out []string
	for _, f := range w.desired {
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
	for failures := 0; ctx.Err() == nil; {
		established, err := w.runNotify(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoNotify) {
			w.log.Info("server has no usable NOTIFY: watching with IDLE", "max_idle", w.o.MaxIdle, "err", err)
			w.runIdle(ctx)
			return
		}
		w.mode.Store(WatchOff)
		if established {
			failures = 0
		}
		failures++
		level := slog.LevelDebug
		if failures > 3 {
			level = slog.LevelWarn
		}
		w.log.Log(ctx, level, "NOTIFY watch interrupted", "failures", failures, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(failures)):
		}
	}
}

// notifyWanted is the list for NOTIFY SET: the first MaxNotify desired
// folders whose names fit maxNotifyBytes.
func (w *Watcher) notifyWanted() []string {
	want := w.wanted(w.o.MaxNotify)
	size := 0
	for i, f := range want {
		size += 2*len(f) + 16
		if size > maxNotifyBytes {
			return want[:i]
		}
	}
	return want
}

// runNotify watches on one NOTIFY connection until ctx ends (nil) or the
// connection fails. established says whether NOTIFY SET succeeded.
func (w *Watcher) runNotify(ctx context.Context) (established bool, err error) {
	c, err := dialNotify(ctx, &w.o.Options, w.pushed)
	if err != nil {
		return false, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	if !c.has("NOTIFY") {
		return false, errNoNotify
	}
	if c.has("CONDSTORE") && c.has("ENABLE") {
		// Dovecot announces flag changes (HIGHESTMODSEQ) only then.
		if _, err := c.exec("", atomArg("ENABLE"), atomArg("CONDSTORE")); err != nil && !isStatusErr(err) {
			return false, err
		}
	}
	w.mode.Store(WatchNotify)
	w.notifying.Store(true)
	w.log.Info("watching with NOTIFY", "addr", w.o.Options.Addr)
	ns := &notifyState{listed: map[string]bool{}, utf8: true}
	keepalive := time.NewTicker(w.o.Keepalive)
	defer keepalive.Stop()
	for first := true; ; first = false {
		want := w.notifyWanted()
		if first || !sameSet(want, ns.current) {
			if err := w.notifySet(c, ns, want); err != nil {
				return established, err
			}
			established = true
			// Changes may have been missed: while the connection was
			// down, or between NOTIFY NONE and NOTIFY SET.
			if w.o.Resync != nil {
				w.o.Resync()
			} else {
				for _, f := range want {
					w.o.Changed(f)
				}
			}
		}
		select {
		case <-ctx.Done():
			return established, nil
		case <-c.done:
			return established, c.readErr()
		case <-w.wake:
		case <-keepalive.C:
			if _, err := c.exec("NOOP", atomArg("NOOP")); err != nil {
				return established, err
			}
		}
	}
}

// sameSet reports whether a and b hold the same names, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// notifyState is what one NOTIFY connection has set up.
type notifyState struct {
	current []string        // the folders of the NOTIFY SET in effect
	listed  map[string]bool // folders LISTed on this connection
	utf8    bool            // whether names are sent in UTF-8 too
}

// notifySet makes want the watched folders. The folders not yet LISTed on
// this connection are LISTed first (Dovecot watches other users' folders
// only then). A NOTIFY SET in effect is ended with NOTIFY NONE first:
// Dovecot 2.3 reports nothing more for other users' folders after a
// NOTIFY SET replaces another (tried against the test bed), so changes
// between the two commands may be missed, and the caller resyncs. While
// this is under way, announcements for the old and the new folders are
// both reported.
func (w *Watcher) notifySet(c *notifyConn, ns *notifyState, want []string) error {
	if len(ns.current) > 0 {
		if _, err := c.exec("NOTIFY", atomArg("NOTIFY"), atomArg("NONE")); err != nil {
			return err
		}
	}
	if len(want) == 0 {
		ns.current = nil
		w.setNotified(nil)
		return nil
	}
	var patterns []cmdArg
	for _, f := range want {
		if !ns.listed[f] {
			patterns = append(patterns, stringArg(mutf7.Encode(f)))
		}
	}
	if len(patterns) > 0 && c.has("LIST-EXTENDED") {
		// LIST answers for folders already watched may be MailboxName
		// announcements and are reported; the others are dropped, and
		// the new folders are reported as changed anyway.
		if _, err := c.exec("LIST", atomArg("LIST"), stringArg(""), listArg(patterns...)); err != nil && !isStatusErr(err) {
			return err
		}
		for _, f := range want {
			ns.listed[f] = true
		}
	}
	w.setNotified(append(slices.Clone(ns.current), want...))
	for {
		var names []cmdArg
		for _, f := range want {
			m := mutf7.Encode(f)
			names = append(names, stringArg(m))
			if ns.utf8 && m != f {
				names = append(names, stringArg(f))
			}
		}
		_, err := c.exec("NOTIFY", atomArg("NOTIFY"), atomArg("SET"),
			listArg(atomArg("mailboxes"), listArg(names...), atomArg(notifyEvents)))
		if err == nil {
			break
		}
		if !isStatusErr(err) {
			return err
		}
		if ns.utf8 && slices.ContainsFunc(want, func(f string) bool { return mutf7.Encode(f) != f }) {
			// A server that takes only modified UTF-7, as RFC 3501 says.
			ns.utf8 = false
			continue
		}
		return fmt.Errorf("%w: NOTIFY SET: %w", errNoNotify, err)
	}
	ns.current = want
	w.setNotified(want)
	return nil
}

func isStatusErr(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

func (w *Watcher) setNotified(folders []string) {
	m := make(map[string]bool, len(folders))
	for _, f := range folders {
		m[f] = true
	}
	w.notified.Store(&m)
}

// pushed handles an untagged response on the NOTIFY connection's reader
// goroutine.
func (w *Watcher) pushed(r *response) {
	name, ok, err := announcedName(r)
	if !ok {
		return
	}
	if err != nil {
		// Something changed, but what cannot be told: check everything.
		w.log.Debug("unreadable announcement", "kind", r.kind, "err", err)
		if w.o.Resync != nil {
			w.o.Resync()
		} else if m := w.notified.Load(); m != nil {
			for _, f := range slices.Sorted(maps.Keys(*m)) {
				w.o.Changed(f)
			}
		}
		return
	}
	var watched map[string]bool
	if m := w.notified.Load(); m != nil {
		watched = *m
	}
	if folder, ok := resolveName(name, watched); ok {
		w.o.Changed(folder)
	}
}

// runIdle keeps IDLE running on the first MaxIdle desired folders, one
// connection each, until ctx ends. A watch that moves to another folder is
// stopped (its connection logged out) before the new one starts, so that
// there are never more than MaxIdle connections.
func (w *Watcher) runIdle(ctx context.Context) {
	w.mode.Store(WatchIdle)
	w.notifying.Store(false)
	type watch struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	watches := map[string]watch{}
	stopAll := func(keep []string) {
		var stopped []watch
		for name, wt := range watches {
			if !slices.Contains(keep, name) {
				wt.cancel()
				stopped = append(stopped, wt)
				delete(watches, name)
			}
		}
		for _, wt := range stopped {
			<-wt.done
		}
	}
	defer stopAll(nil)
	for {
		want := w.wanted(w.o.MaxIdle)
		stopAll(want)
		for _, name := range want {
			if _, ok := watches[name]; ok {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			wt := watch{cancel, make(chan struct{})}
			watches[name] = wt
			go func() {
				defer close(wt.done)
				w.idle(wctx, name)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

// idle keeps one folder watched with IDLE until ctx ends, reconnecting
// with backoff and jitter.
func (w *Watcher) idle(ctx context.Context, folder string) {
	opts := w.o.Options
	opts.OnChange = func() { w.o.Changed(folder) }
	for failures := 0; ctx.Err() == nil; {
		s, err := Dial(ctx, opts)
		if err == nil {
			failures = 0
			err = s.Idle(ctx, folder, func() { w.o.Changed(folder) })
			s.Close()
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		level := slog.LevelDebug
		if failures > 3 {
			level = slog.LevelWarn
		}
		w.log.Log(ctx, level, "IDLE watch interrupted", "folder", folder, "failures", failures, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(failures)):
		}
	}
}

// idleRenew is how often IDLE is ended and begun again: servers may log
// out a client idle for 30 min (RFC 9051 section 6.3.13), and the round
// trip, made with a deadline, proves the connection alive.
const idleRenew = 25 * time.Minute

// Idle selects folder read-only and waits in IDLE until ctx ends (nil) or
// the connection breaks; the server's announcements reach
// Options.OnChange. ready, when not nil, is called once IDLE has begun
// (changes from then on are announced). IDLE is renewed every 25 min.
func (s *Session) Idle(ctx context.Context, folder string, ready func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	_, err := s.selectFolder(ctx, folder, &imap.SelectOptions{ReadOnly: true})
	release()
	if err != nil {
		return err
	}
	for {
		release := s.bind(ctx)
		var cmd *imapclient.IdleCommand
		err := s.observe("IDLE", func() (err error) {
			cmd, err = s.client.Idle()
			return err
		})
		// No deadline while idling: the server speaks only when
		// something changes.
		release()
		if err != nil {
			return opErr(ctx, "IDLE", err)
		}
		if ready != nil {
			ready()
			ready = nil
		}
		timer := time.NewTimer(idleRenew)
		select {
		case <-ctx.Done():
			timer.Stop()
			s.progress()
			cmd.Close()
			return nil
		case <-s.client.Closed():
			timer.Stop()
			return errors.New("imapstore: connection closed while idling")
		case <-timer.C:
		}
		release = s.bind(ctx)
		err = s.observe("IDLE", func() error {
			if err := cmd.Close(); err != nil {
				return err
			}
			return cmd.Wait()
		})
		release()
		if err != nil {
			return opErr(ctx, "IDLE", err)
		}
	}
}
