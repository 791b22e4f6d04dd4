package imapstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

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

// Bounds on what one NOTIFY SET carries. Dovecot refuses command lines
// over 64 KiB (imap_max_line_length): names like "shared/u01234/Calendar"
// fill 60 KiB at about 2,600, but 2,000 is the most one connection
// watches, since its session holds each owner's namespace (about 120 KB
// of Dovecot's memory each in bench/scale), and 2,000 stay within the
// 256 MB that Dovecot allows an imap process by default (vsz_limit; 235
// MB there, where 2,460 came to 274 MB). A server that refuses a
// NOTIFY SET of more than minNotifyBytes is taken to find it too long:
// the bound is halved (see Watcher.shrinkNotify).
const (
	defaultMaxNotify   = 2000
	maxNotifyBytes     = 60 << 10
	minNotifyBytes     = 4 << 10
	defaultNotifyConns = 4
)

// notifyConn is one connection a Watcher watches with NOTIFY.
type notifyConn struct {
	conn    net.Conn // deadlines are set here
	client  *imapclient.Client
	timeout time.Duration
	observe func(command string, err error, d time.Duration)
	// opened are the folders named on this connection (see openNew);
	// current those of the NOTIFY SET in effect. Used by its slot's
	// goroutine only.
	opened  map[string]bool
	current []string
	utf8    bool // whether names are sent in UTF-8 too
}

// dialNotify logs in for slot s's NOTIFY watch, whose announcements go
// to w.
func (w *Watcher) dialNotify(ctx context.Context, s *notifySlot) (*notifyConn, error) {
	copts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Status: func(d *imap.StatusData) { w.pushed(s, d.Mailbox) },
		List:   func(d *imap.ListData) { w.pushed(s, d.Mailbox) },
		// The server dropped this connection's NOTIFY SET (RFC 5465
		// section 5.8): check everything, and set it again.
		NotificationOverflow: func() {
			s.setSettled(nil) // nothing announced until set again
			w.resync(s)
			poke(s.overflow)
		},
		// Nothing is selected, so no FETCH should come; one must be read
		// to its end all the same, or the connection stalls.
		Fetch: func(m *imapclient.FetchMessageData) { _, _ = m.Collect() },
	}}
	conn, client, err := login(ctx, &w.o.Options, copts, nil)
	if err != nil {
		return nil, err
	}
	return &notifyConn{conn: conn, client: client, timeout: w.o.Options.timeout(), observe: w.o.Options.Observe, opened: map[string]bool{}, utf8: true}, nil
}

// do runs one command with the connection's timeout, reporting it to
// Options.Observe when name is not empty.
func (c *notifyConn) do(name string, f func() error) error {
	return c.doWithin(c.timeout, name, f)
}

// doWithin is do with its own bound.
func (c *notifyConn) doWithin(d time.Duration, name string, f func() error) error {
	_ = c.conn.SetDeadline(time.Now().Add(min(d, c.timeout)))
	var err error
	if name != "" {
		err = c.observed(name, f)
	} else {
		err = f()
	}
	// No deadline while waiting for announcements.
	_ = c.conn.SetDeadline(time.Time{})
	return err
}

// observed runs one command of a batch that c.do bounds, reporting it to
// Options.Observe.
func (c *notifyConn) observed(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	if c.observe != nil {
		c.observe(name, err, time.Since(t0))
	}
	return err
}

// close logs out briefly and closes the connection.
func (c *notifyConn) close() {
	_ = c.conn.SetDeadline(time.Now().Add(time.Second))
	_ = c.client.Logout().Wait()
	c.client.Close()
}

// runNotify watches slot i's share on one NOTIFY connection until ctx
// ends or, for a slot other than the first, its share is empty (nil), or
// the connection fails. established says whether NOTIFY SET succeeded.
// The slot's folders count as watched (live) from its first NOTIFY SET to
// the connection's end.
func (w *Watcher) runNotify(ctx context.Context, i int) (established bool, err error) {
	s := w.slots[i]
	c, err := w.dialNotify(ctx, s)
	if err != nil {
		return false, err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	if w.onDial != nil {
		w.onDial(i, c.conn)
	}
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
	w.notifyConnected(1)
	defer func() {
		// Its folders are no longer watched before the mode says so.
		s.setSettled(nil)
		s.live.Store(false)
		s.notified.Store(nil)
		w.notifyConnected(-1)
	}()
	if !w.notifying.Swap(true) {
		w.wakeSlots() // the others wait for the first to find NOTIFY
	}
	w.log.Info("watching with NOTIFY", "addr", w.o.Options.Addr, "connection", i)
	keepalive := time.NewTicker(w.o.Keepalive)
	defer keepalive.Stop()
	for first := true; ; first = false {
		want := w.share(i)
		if i > 0 && len(want) == 0 {
			return established, nil
		}
		if first || !sameSet(want, c.current) {
			err := w.notifySet(s, c, want)
			var long *notifyTooLong
			if errors.As(err, &long) {
				w.shrinkNotify(long)
				continue // with this slot's share within the new bound
			}
			if err != nil {
				return established, err
			}
			established = true
			// Watched from here on; changes may have been missed
			// before: while the connection was down, or between
			// NOTIFY NONE and NOTIFY SET.
			s.live.Store(true)
			if err := w.settle(s, c); err != nil {
				return established, err
			}
			s.setSettled(c.current)
		}
		select {
		case <-ctx.Done():
			return established, nil
		case <-c.client.Closed():
			return established, errors.New("imapstore: NOTIFY connection closed")
		case <-s.wake:
		case <-s.overflow:
			c.current = nil // set it again
		case <-keepalive.C:
			// A server that stopped answering announces nothing either:
			// the folders are no longer watched once a NOOP goes
			// unanswered for KeepaliveTimeout, and the cache checks them
			// (and answers stale while that fails).
			if err := c.doWithin(w.o.KeepaliveTimeout, "NOOP", func() error { return c.client.Noop().Wait() }); err != nil {
				return established, err
			}
		}
	}
}

// settle reports slot s's folders after its NOTIFY SET, as they may have
// changed unseen before it: with Settled, their states as read on c now
// (announcements come from here on, so a state that matches the one the
// receiver holds needs no check); otherwise (see resync) Changed for each.
func (w *Watcher) settle(s *notifySlot, c *notifyConn) error {
	if w.o.Resync != nil || w.o.Settled == nil {
		w.resync(s)
		return nil
	}
	states, err := c.states(c.current)
	for _, f := range c.current {
		if st, ok := states[f]; ok {
			w.o.Settled(f, st)
		} else {
			w.o.Changed(f)
		}
	}
	return err
}

// states reads the states of folders on c: pipelined STATUS commands. A
// folder whose STATUS fails is left out; an error other than a refused
// STATUS ends the connection.
func (c *notifyConn) states(folders []string) (map[string]State, error) {
	opts := stateItems(c.client.Caps().Has(imap.CapCondStore))
	var out map[string]State
	err := c.do("", func() error {
		var err error
		out, err = statusAll(c.client, folders, opts, isStatusErr, c.observed)
		return err
	})
	return out, err
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
// announcements for the old and the new folders are both reported, but
// none of them counts as watched (settled) until the caller has read
// their states after the SET: from NOTIFY NONE on the server announces
// nothing. The new folders are opened before, under the SET in effect,
// so that the old ones go unannounced for two commands, not for an
// EXAMINE of each new folder.
func (w *Watcher) notifySet(s *notifySlot, c *notifyConn, want []string) error {
	if len(want) > 0 {
		if err := c.openNew(want); err != nil {
			return err
		}
	}
	s.setSettled(nil)
	if len(c.current) > 0 {
		if err := c.notifyNone(); err != nil {
			return err
		}
	}
	if len(want) == 0 {
		c.current = nil
		s.setNotified(nil)
		return nil
	}
	s.setNotified(append(slices.Clone(c.current), want...))
	if err := c.notifyMailboxes(want); err != nil {
		// NOTIFY NONE was sent: nothing is watched until a SET is taken.
		c.current = nil
		s.setNotified(nil)
		s.live.Store(false)
		return err
	}
	c.current = want
	s.setNotified(want)
	return nil
}

// notifyNone ends the NOTIFY SET in effect. Dovecot 2.3 reports nothing
// more for other users' folders after a NOTIFY SET replaces another:
// NOTIFY NONE first. Changes between the two may be missed; the caller
// resyncs.
func (c *notifyConn) notifyNone() error {
	return c.do("NOTIFY", func() error {
		cmd, err := c.client.Notify(nil)
		if err != nil {
			return err
		}
		return cmd.Wait()
	})
}

// openNew opens, once, each folder of want this connection has not opened
// yet: EXAMINE, then UNSELECT. Dovecot 2.3 announces other users' folders
// ("shared/alice/…") only once the session has set up their owner's
// namespace and that namespace's list of folders (a NOTIFY SET before
// answers OK and stays silent). A LIST does that, but the first LIST of a
// session sets up every user who shares with the proxy (tens of seconds
// of Dovecot's CPU and about 90 KB of its memory per sharer at 20,000
// of them); a STATUS sets up the one owner it names but not the list, so
// NOTIFY stays silent (TestWatcherNotify); opening the folder does both,
// for that owner alone. Announcements that arrive meanwhile are read as
// ever; the folders are resynced after anyway.
func (c *notifyConn) openNew(want []string) error {
	var fresh []string
	for _, f := range want {
		if !c.opened[f] {
			fresh = append(fresh, f)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	err := c.do("", func() error {
		var first error
		for _, f := range fresh {
			if err := c.observed("EXAMINE", func() error {
				_, err := c.client.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait()
				return err
			}); err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			if err := c.observed("UNSELECT", func() error { return c.client.Unselect().Wait() }); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
	if err != nil && !isStatusErr(err) {
		return err
	}
	for _, f := range fresh {
		c.opened[f] = true
	}
	return nil
}

// notifyTooLong is a refused NOTIFY SET of more than minNotifyBytes: the
// server may find its command line too long (Dovecot: "IMAP command line
// too large", over imap_max_line_length).
type notifyTooLong struct {
	bytes int // what the names cost (see notifyCost)
	err   error
}

func (e *notifyTooLong) Error() string {
	return fmt.Sprintf("NOTIFY SET of %d bytes of names refused: %v", e.bytes, e.err)
}

func (e *notifyTooLong) Unwrap() error { return e.err }

// notifyMailboxes sends NOTIFY SET for the folders of want, each name in
// modified UTF-7 and, unless the server refused that before, in UTF-8 too
// (see mailboxesFilter). A refusal of more than minNotifyBytes of names is
// a *notifyTooLong; a smaller one is asked again without the UTF-8 form
// when a name has one; a refusal after that gives errNoNotify.
func (c *notifyConn) notifyMailboxes(want []string) error {
	for {
		err := c.do("NOTIFY", func() error {
			cmd, err := c.client.Notify(&imap.NotifyOptions{Items: []imap.NotifyItem{{MailboxSpec: mailboxesFilter(want, c.utf8), Events: notifyEvents}}})
			if err != nil {
				return err
			}
			return cmd.Wait()
		})
		if err == nil {
			return nil
		}
		if !isStatusErr(err) {
			return err
		}
		if n := setCost(want); n > minNotifyBytes {
			return &notifyTooLong{bytes: n, err: err}
		}
		if c.utf8 && slices.ContainsFunc(want, func(f string) bool { return mutf7.Encode(f) != f }) {
			// A server that takes only modified UTF-7, as RFC 3501 says.
			c.utf8 = false
			continue
		}
		return fmt.Errorf("%w: NOTIFY SET: %w", errNoNotify, err)
	}
}

// setCost is what the names of a NOTIFY SET of want cost (see notifyCost).
func setCost(want []string) int {
	n := 0
	for _, f := range want {
		n += notifyCost(f)
	}
	return n
}

// shrinkNotify halves what a NOTIFY SET may carry, below what the server
// refused (see notifyTooLong), and shares the folders anew within it: the
// folders beyond go to the other connections, or are left to the regular
// checks when they are full.
func (w *Watcher) shrinkNotify(long *notifyTooLong) {
	w.mu.Lock()
	b := max(min(w.bounds.bytes, long.bytes)/2, minNotifyBytes)
	if b < w.bounds.bytes {
		w.bounds.bytes = b
		w.shares = assignNotify(w.shares, w.desired, w.bounds)
	}
	w.mu.Unlock()
	w.log.Warn("the server refused a NOTIFY SET: fewer folders per NOTIFY connection", "bytes", long.bytes, "bound", b, "err", long.err)
	w.wakeSlots()
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

// pushed handles a folder name the server announced on slot s's
// connection, on go-imap's reader goroutine. go-imap decoded it from
// modified UTF-7; Dovecot sends names in NOTIFY's STATUS in UTF-8, which
// that decoding passes through.
func (w *Watcher) pushed(s *notifySlot, name string) {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	if m := s.notified.Load(); m != nil && (*m)[name] {
		w.o.Changed(name)
	}
}
