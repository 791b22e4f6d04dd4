package imapstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
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
// watches every folder the caller names, up to WatchOptions.MaxNotify,
// with go-imap's Client.Notify. Elsewhere (Cyrus 3.6 has
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
	o        WatchOptions
	log      *slog.Logger
	wake     chan struct{} // a token when desired changed
	overflow chan struct{} // a token when the server dropped NOTIFY

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
	w := &Watcher{o: o, log: o.Options.Logger, wake: make(chan struct{}, 1), overflow: make(chan struct{}, 1)}
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
// folders that can be watched with NOTIFY (see notifiable) whose names
// fit maxNotifyBytes.
func (w *Watcher) notifyWanted() []string {
	want := slices.DeleteFunc(w.wanted(w.o.MaxNotify), func(f string) bool { return !notifiable(f) })
	size := 0
	for i, f := range want {
		size += 2*len(f) + 16
		if size > maxNotifyBytes {
			return want[:i]
		}
	}
	return want
}

// notifyEvents are the events set for every watched folder. A new
// message and an expunge make Dovecot push "* STATUS name (MESSAGES n
// UIDNEXT n UNSEEN n)"; a flag change pushes "* STATUS name
// (HIGHESTMODSEQ n)" only once CONDSTORE is enabled; a deleted folder
// pushes "* LIST". With nothing selected on the connection, STATUS and
// LIST are all it pushes, and go-imap hands both to its
// UnilateralDataHandler (it closes the connection on an untagged
// response it does not know, such as VANISHED: QRESYNC is never
// enabled).
var notifyEvents = []imap.NotifyEvent{imap.NotifyEventMessageNew, imap.NotifyEventMessageExpunge,
	imap.NotifyEventFlagChange, imap.NotifyEventMailboxName}

// Bounds on what one NOTIFY SET carries: Dovecot refuses command lines
// over 64 KiB (imap_max_line_length).
const (
	defaultMaxNotify = 1000
	maxNotifyBytes   = 32 << 10
)

// notifyConn is the connection a Watcher watches with NOTIFY.
type notifyConn struct {
	conn    net.Conn // deadlines are set here
	client  *imapclient.Client
	timeout time.Duration
	observe func(command string, err error, d time.Duration)
	// listed are the folders LISTed on this connection; current those
	// of the NOTIFY SET in effect. Used by the watcher's goroutine only.
	listed  map[string]bool
	current []string
	utf8    bool // whether names are sent in UTF-8 too
}

// dialNotify logs in for a NOTIFY watch whose announcements go to w.
func (w *Watcher) dialNotify(ctx context.Context) (*notifyConn, error) {
	copts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Status: func(d *imap.StatusData) { w.pushed(d.Mailbox) },
		List:   func(d *imap.ListData) { w.pushed(d.Mailbox) },
		// The server dropped every NOTIFY SET (RFC 5465 section 5.8):
		// check everything, and set it again.
		NotificationOverflow: func() {
			w.resyncAll()
			select {
			case w.overflow <- struct{}{}:
			default:
			}
		},
		// Nothing is selected, so no FETCH should come; one must be read
		// to its end all the same, or the connection stalls.
		Fetch: func(m *imapclient.FetchMessageData) { _, _ = m.Collect() },
	}}
	conn, client, err := login(ctx, &w.o.Options, copts, nil)
	if err != nil {
		return nil, err
	}
	return &notifyConn{conn: conn, client: client, timeout: w.o.Options.timeout(), observe: w.o.Options.Observe, listed: map[string]bool{}, utf8: true}, nil
}

// do runs one command with the connection's timeout, reporting it to
// Options.Observe when name is not empty.
func (c *notifyConn) do(name string, f func() error) error {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	t0 := time.Now()
	err := f()
	if name != "" && c.observe != nil {
		c.observe(name, err, time.Since(t0))
	}
	// No deadline while waiting for announcements.
	_ = c.conn.SetDeadline(time.Time{})
	return err
}

// close logs out briefly and closes the connection.
func (c *notifyConn) close() {
	_ = c.conn.SetDeadline(time.Now().Add(time.Second))
	_ = c.client.Logout().Wait()
	c.client.Close()
}

// runNotify watches on one NOTIFY connection until ctx ends (nil) or the
// connection fails. established says whether NOTIFY SET succeeded.
func (w *Watcher) runNotify(ctx context.Context) (established bool, err error) {
	c, err := w.dialNotify(ctx)
	if err != nil {
		return false, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	caps := c.client.Caps()
	if !caps.Has(imap.CapNotify) {
		return false, errNoNotify
	}
	if caps.Has(imap.CapCondStore) {
		// Dovecot announces flag changes (HIGHESTMODSEQ) only once
		// CONDSTORE is enabled. go-imap's Enable refuses CONDSTORE; a
		// STATUS asking for HIGHESTMODSEQ enables it too (RFC 7162
		// section 3.1).
		err := c.do("", func() error {
			_, err := c.client.Status("INBOX", &imap.StatusOptions{HighestModSeq: true}).Wait()
			return err
		})
		if err != nil && !isStatusErr(err) {
			return false, err
		}
	}
	w.mode.Store(WatchNotify)
	w.notifying.Store(true)
	w.log.Info("watching with NOTIFY", "addr", w.o.Options.Addr)
	keepalive := time.NewTicker(w.o.Keepalive)
	defer keepalive.Stop()
	for first := true; ; first = false {
		want := w.notifyWanted()
		if first || !sameSet(want, c.current) {
			if err := w.notifySet(c, want); err != nil {
				return established, err
			}
			established = true
			// Changes may have been missed: while the connection was
			// down, or between NOTIFY NONE and NOTIFY SET.
			w.resyncAll()
		}
		select {
		case <-ctx.Done():
			return established, nil
		case <-c.client.Closed():
			return established, errors.New("imapstore: NOTIFY connection closed")
		case <-w.wake:
		case <-w.overflow:
			c.current = nil // set it again
		case <-keepalive.C:
			if err := c.do("NOOP", func() error { return c.client.Noop().Wait() }); err != nil {
				return established, err
			}
		}
	}
}

// resyncAll says that every watched folder may have changed: Resync, or
// Changed for each.
func (w *Watcher) resyncAll() {
	if w.o.Resync != nil {
		w.o.Resync()
		return
	}
	if m := w.notified.Load(); m != nil {
		for _, f := range slices.Sorted(maps.Keys(*m)) {
			w.o.Changed(f)
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

// notifySet makes want the watched folders. While this is under way,
// announcements for the old and the new folders are both reported.
func (w *Watcher) notifySet(c *notifyConn, want []string) error {
	if len(c.current) > 0 {
		// Dovecot 2.3 reports nothing more for other users' folders
		// after a NOTIFY SET replaces another: NOTIFY NONE first. Changes
		// between the two may be missed; the caller resyncs.
		err := c.do("NOTIFY", func() error {
			cmd, err := c.client.Notify(nil)
			if err != nil {
				return err
			}
			return cmd.Wait()
		})
		if err != nil {
			return err
		}
	}
	if len(want) == 0 {
		c.current = nil
		w.setNotified(nil)
		return nil
	}
	var fresh []string
	for _, f := range want {
		if !c.listed[f] {
			fresh = append(fresh, f)
		}
	}
	if len(fresh) > 0 {
		// Dovecot 2.3 announces other users' folders ("shared/alice/…")
		// only once the session has LISTed them (a NOTIFY SET before
		// answers OK and stays silent), so the new ones are LISTed
		// first, one pattern each (go-imap has no LIST of several
		// patterns). A pending LIST takes the LIST answers that would be
		// announcements; the folders are resynced after anyway.
		err := c.do("LIST", func() error {
			cmds := make([]*imapclient.ListCommand, len(fresh))
			for i, f := range fresh {
				cmds[i] = c.client.List("", f, nil)
			}
			var first error
			for _, cmd := range cmds {
				if _, err := cmd.Collect(); err != nil && first == nil {
					first = err
				}
			}
			return first
		})
		if err != nil && !isStatusErr(err) {
			return err
		}
		for _, f := range fresh {
			c.listed[f] = true
		}
	}
	w.setNotified(append(slices.Clone(c.current), want...))
	for {
		err := c.do("NOTIFY", func() error {
			cmd, err := c.client.Notify(&imap.NotifyOptions{Items: []imap.NotifyItem{{MailboxSpec: mailboxesFilter(want, c.utf8), Events: notifyEvents}}})
			if err != nil {
				return err
			}
			return cmd.Wait()
		})
		if err == nil {
			break
		}
		if !isStatusErr(err) {
			return err
		}
		if c.utf8 && slices.ContainsFunc(want, func(f string) bool { return mutf7.Encode(f) != f }) {
			// A server that takes only modified UTF-7, as RFC 3501 says.
			c.utf8 = false
			continue
		}
		return fmt.Errorf("%w: NOTIFY SET: %w", errNoNotify, err)
	}
	c.current = want
	w.setNotified(want)
	return nil
}

// mailboxesFilter is the NOTIFY filter "mailboxes (name …)" (RFC 5465
// section 6) for names, as a NotifyMailboxSpec, which go-imap writes out
// verbatim: go-imap v2.0.0-beta.9 writes NotifyItem.Mailboxes without the
// "mailboxes" keyword, which Dovecot answers with BAD. Each name goes in
// modified UTF-7, quoted, and, when utf8 and different, in UTF-8 too:
// Dovecot 2.3 matches the filter against its UTF-8 names, not decoded
// from modified UTF-7 (and a server that refuses the UTF-8 form is asked
// again without it). Names are quotable (see notifiable).
func mailboxesFilter(names []string, utf8 bool) imap.NotifyMailboxSpec {
	var b strings.Builder
	b.WriteString("mailboxes (")
	for i, f := range names {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.EqualFold(f, "INBOX") {
			f = "INBOX"
		}
		m := mutf7.Encode(f)
		b.WriteString(`"` + quoteReplacer.Replace(m) + `"`)
		if utf8 && m != f {
			b.WriteString(` "` + quoteReplacer.Replace(f) + `"`)
		}
	}
	b.WriteByte(')')
	return imap.NotifyMailboxSpec(b.String())
}

// notifiable reports whether a folder can be watched with NOTIFY: its name
// can be quoted (no CR, LF, NUL), and, when it differs from its modified
// UTF-7, it has no "&". Dovecot names a folder in NOTIFY's STATUS in
// UTF-8 ("R&D", not "R&-D"), and go-imap decodes every name it reads from
// modified UTF-7: "R&D" fails to decode, and go-imap closes the
// connection. Such a folder is left to the regular checks.
func notifiable(f string) bool {
	if strings.ContainsAny(f, "\r\n\x00") {
		return false
	}
	return !strings.Contains(f, "&") || mutf7.Encode(f) == f
}

var quoteReplacer = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

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

// pushed handles a folder name the server announced, on go-imap's reader
// goroutine. go-imap decoded it from modified UTF-7; Dovecot sends names
// in NOTIFY's STATUS in UTF-8, which that decoding passes through.
func (w *Watcher) pushed(name string) {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	if m := w.notified.Load(); m != nil && (*m)[name] {
		w.o.Changed(name)
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
