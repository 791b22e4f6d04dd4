package imapstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

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
		if !w.pauseAfter(ctx, "IDLE watch interrupted", failures, "folder", folder, "err", err) {
			return
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
