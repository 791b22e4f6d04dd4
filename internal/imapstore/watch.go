package imapstore

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Push: a Watcher keeps IDLE (RFC 2177) running on a bounded number of
// connections, one per watched folder, and reports the changes the server
// announces, so that the most-requested folders are seen changed at once
// instead of at the next check. Every other folder is covered by the
// regular checks.
//
// Not NOTIFY (RFC 5465), although one connection could then watch every
// folder: Dovecot 2.3 accepts NOTIFY SET for other users' folders
// (mailboxes, subtree) but reports changes only in the proxy's own
// personal folders, never in the shared namespace where the calendars
// fbpub publishes live (tried against the test bed), and Cyrus 3.6 has
// no NOTIFY at all.

// Idle selects folder read-only and waits in IDLE until ctx ends or the
// connection breaks; the server's announcements reach Options.OnChange.
// go-imap renews the IDLE command before servers time it out; the kernel's
// TCP keep-alive finds a dead peer.
func (s *Session) Idle(ctx context.Context, folder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress()
	if _, err := s.selectFolder(ctx, folder, &imap.SelectOptions{ReadOnly: true}); err != nil {
		return err
	}
	var cmd interface{ Close() error }
	err := s.observe("IDLE", func() (err error) {
		cmd, err = s.client.Idle()
		return err
	})
	if err != nil {
		return opErr(ctx, "IDLE", err)
	}
	// No deadline while idling: the server speaks only when something
	// changes.
	_ = s.conn.SetDeadline(time.Time{})
	select {
	case <-ctx.Done():
		s.progress()
		cmd.Close()
		return nil
	case <-s.client.Closed():
		return errors.New("imapstore: connection closed while idling")
	}
}

// Watcher watches a bounded set of folders with IDLE.
type Watcher struct {
	opts    Options
	max     int
	changed func(folder string)

	mu      sync.Mutex
	watches map[string]context.CancelFunc // guarded by mu
	closed  bool                          // guarded by mu
	wg      sync.WaitGroup
}

// NewWatcher makes a watcher that logs in with opts and keeps at most max
// connections. changed is called with a folder's name whenever the server
// announces a change in it, and once after each (re)connection, since
// changes may have been missed meanwhile; it must not block.
func NewWatcher(opts Options, max int, changed func(folder string)) *Watcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Watcher{opts: opts, max: max, changed: changed, watches: map[string]context.CancelFunc{}}
}

// Watch sets the folders to watch, most wanted first; only the first max
// are. Folders no longer wanted stop being watched. Cheap when nothing
// changes.
func (w *Watcher) Watch(folders []string) {
	if len(folders) > w.max {
		folders = folders[:w.max]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	for name, cancel := range w.watches {
		if !slices.Contains(folders, name) {
			cancel()
			delete(w.watches, name)
		}
	}
	for _, name := range folders {
		if _, ok := w.watches[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		w.watches[name] = cancel
		w.wg.Go(func() { w.watch(ctx, name) })
	}
}

// Watching returns the folders being watched, sorted.
func (w *Watcher) Watching() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name := range w.watches {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Close stops every watch and waits for the connections to close.
func (w *Watcher) Close() {
	w.mu.Lock()
	w.closed = true
	for name, cancel := range w.watches {
		cancel()
		delete(w.watches, name)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// watch keeps one folder watched until ctx ends, reconnecting with
// backoff and jitter.
func (w *Watcher) watch(ctx context.Context, folder string) {
	opts := w.opts
	opts.OnChange = func() { w.changed(folder) }
	for failures := 0; ctx.Err() == nil; {
		s, err := Dial(ctx, opts)
		if err == nil {
			w.changed(folder) // whatever happened while not watching
			failures = 0
			err = s.Idle(ctx, folder)
			s.Close()
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		opts.Logger.Debug("IDLE watch interrupted", "folder", folder, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff(failures)):
		}
	}
}
