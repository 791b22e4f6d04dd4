package main

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/metrics"
)

// Several replicas share one Redis (cache.redis): the feed cache shares
// snapshots and owner checks (feed.Cache.Replicate), and the IMAP watch
// (publish.watch) runs on one replica at a time, the one holding the
// watch lease, which publishes what the server announces to all of them.
// Another replica takes the watch over within watchLease + watchPoll of
// the holder's death, plus the time to connect.
const (
	// watchLease is the watch lease's TTL; it is renewed every third.
	watchLease = 3 * time.Second
	// watchPoll is how often a replica without the watch tries to take it
	// and reads what the holder watches.
	watchPoll = time.Second
	// watchingTTL bounds how long the holder's list of watched folders
	// outlives it: until then the other replicas rely on its pushes.
	watchingTTL = 6 * time.Second
)

// replicas is what a service does with the other replicas sharing its
// Redis.
type replicas struct {
	s       *service
	metrics *metrics.Replicas
	// newWatcher makes the watcher of one term holding the watch lease;
	// nil when publish.watch is 0.
	newWatcher func() *imapstore.Watcher
}

func (s *service) newReplicas(password string) *replicas {
	r := &replicas{s: s, metrics: metrics.NewReplicas(s.reg)}
	if s.cfg.Publish.Watch > 0 {
		r.newWatcher = func() *imapstore.Watcher { return s.newWatcher(password) }
	}
	return r
}

// start makes the cache work with the other replicas and, with
// publish.watch, runs the watch while this replica holds its lease. The
// function it returns stops both and waits for them.
func (r *replicas) start(ctx context.Context) (stop func()) {
	stopCache := r.s.cache.Replicate(r.s.shared, r.metrics)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if r.newWatcher != nil {
		wg.Go(func() { r.watch(ctx) })
	}
	return func() {
		cancel()
		wg.Wait()
		stopCache()
	}
}

// watch takes the watch lease whenever it is free, and holds the watch
// while it keeps it; without it, it follows the holder's list of watched
// folders. While Redis is unreachable the lease is local, so every
// replica watches for itself.
func (r *replicas) watch(ctx context.Context) {
	waited := false
	for ctx.Err() == nil {
		lease, err := r.s.shared.TryLock(ctx, "watch", watchLease)
		if err == nil {
			if waited {
				r.metrics.Takeovers.WithLabelValues("watch").Inc()
			}
			waited = false
			r.hold(ctx, lease)
			continue
		}
		if !errors.Is(err, shared.ErrBusy) {
			return // ctx ended
		}
		if !waited {
			waited = true
			r.metrics.LeaseWaits.WithLabelValues("watch").Inc()
		}
		r.follow(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(watchPoll):
		}
	}
}

// hold runs the watch until ctx ends or the lease is lost (or, for a
// local lease, until Redis answers again: the shared lease then decides).
func (r *replicas) hold(ctx context.Context, lease *shared.Lease) {
	defer lease.Unlock(context.WithoutCancel(ctx))
	r.s.log.Info("holding the IMAP watch for the replicas", "shared", lease.Shared())
	tctx, cancel := context.WithCancel(ctx)
	var lost sync.WaitGroup
	lost.Go(func() {
		select {
		case <-lease.Lost():
			r.s.log.Warn("lost the IMAP watch lease: another replica may hold it")
			cancel()
		case <-tctx.Done():
		}
	})
	w := r.newWatcher()
	r.s.cache.Eager(true)
	defer func() {
		r.s.cache.Eager(false)
		cancel()
		lost.Wait()
		w.Close()
		r.s.metrics.Watched.Set(0)
		r.s.cache.SetWatched(nil)
	}()
	r.s.watchHot(tctx, w, func(notified []string) bool {
		if b, err := json.Marshal(notified); err == nil {
			r.s.shared.SetBlob(tctx, "watching", b, watchingTTL)
		}
		return lease.Shared() || r.s.shared.Mode() != shared.Shared
	})
}

// follow relies on the holder's pushes for the folders it watches with
// NOTIFY, while it says so.
func (r *replicas) follow(ctx context.Context) {
	var notified []string
	if b, ok := r.s.shared.GetBlob(ctx, "watching"); ok {
		if json.Unmarshal(b, &notified) != nil {
			notified = nil
		}
	}
	r.s.cache.SetWatched(notified)
}
