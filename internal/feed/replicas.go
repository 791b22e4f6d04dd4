package feed

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/metrics"
)

// Replicas: several fbpub processes behind one load balancer share one
// Redis (internal/shared), so that together they cost IMAP what one does.
//
//   - A folder's snapshot, once one replica read it, is stored in Redis
//     (the state directory's encoding, compressed, bounded, for
//     sharedSnapshotTTL) with its IMAP state beside it; a replica that
//     lacks a snapshot covering the state it just checked takes it from
//     there before it reads IMAP, and keeps its own copy as a single
//     replica does.
//   - An owner's check (the folder states and details) is stored the same
//     way, and any replica whose request that check is recent enough for
//     takes it instead of asking IMAP.
//   - The sync of a folder and the check of an owner run on one replica
//     at a time: it holds a lease in Redis (TryLock, renewed while it
//     works); the others wait for its notice, polling every waitPoll in
//     case one is lost, and take the lease over when it is freed without
//     a result (its holder failed, or died and the lease expired). The
//     in-process singleflight stays in front: one waiter per replica.
//   - What the IMAP watch hears (one replica holds it, cmd/fbpub) is
//     published with Announce; every replica's subscription calls Changed.
//
// Freshness is decided as for one replica (goodCheck, covers), on the
// times the checking replica recorded: replicas are expected to share a
// clock within a fraction of the check interval (NTP). Only servers with
// CONDSTORE share snapshots, since without it a state does not name a
// folder's content (a flag change moves nothing); elsewhere each replica
// syncs for itself, as before.
//
// Redis' keys are hashed (internal/shared), but the values are not: a
// shared snapshot holds the folder's events whole, a shared check the
// folders' names and ACLs, and notices name folders and owners. Whoever
// can read the Redis can read the calendars fbpub publishes; it belongs
// with the replicas, behind their network boundary and a password.
//
// Without Redis (Replicate never called) none of this runs. While Redis
// is unreachable, shared.Client falls back to local state: lookups miss,
// leases are local, notices reach this replica only; each replica then
// works alone, as a single replica does.

const (
	// syncLease and checkLease are the TTLs of the leases on a folder's
	// sync and an owner's check: renewed while the work runs, they free
	// the work for another replica this long after their holder died.
	syncLease  = 5 * time.Second
	checkLease = 5 * time.Second
	// sharedSnapshotTTL is how long a snapshot stays in Redis after it
	// was stored; Redis' maxmemory policy may evict it before.
	sharedSnapshotTTL = 24 * time.Hour
	// waitPoll is how often a replica waiting for another's work looks
	// again when no notice came.
	waitPoll = 100 * time.Millisecond
	// noticeChannel carries the replicas' notices: "w\x00folder" (the
	// server announced a change; "" for any folder), "s\x00folder" (a
	// snapshot was stored), "c\x00owner key\x00unix nanoseconds" (a check
	// made then was stored).
	noticeChannel = "feed"
	// maxWaiting bounds the names waited for; past it every waiter is
	// woken to look again.
	maxWaiting = 10000
)

// replicas is what a Cache shares with other replicas; set once by
// Replicate.
type replicas struct {
	sh  *shared.Client
	m   *metrics.Replicas
	sub *shared.Subscription
	// takes bounds the checks an eager cache takes at once (takeCheck);
	// a check beyond it is taken by the next request for its owner.
	takes chan struct{}

	mu sync.Mutex
	// waiting holds, by notice name, a channel closed when that notice
	// arrives; guarded by mu.
	waiting map[string]chan struct{}
}

// Replicate makes c share its snapshots and owner checks with the other
// replicas using sh, and hear their notices, until the function it
// returns is called. Call it at most once, before serving. m may be nil.
func (c *Cache) Replicate(sh *shared.Client, m *metrics.Replicas) (stop func()) {
	if m == nil {
		m = metrics.NewReplicas(nil)
	}
	r := &replicas{sh: sh, m: m, waiting: map[string]chan struct{}{}, takes: make(chan struct{}, 4)}
	r.sub = sh.Subscribe(context.Background(), noticeChannel, func(n string) { c.notice(r, n) })
	c.rep.Store(r)
	return func() {
		c.rep.CompareAndSwap(r, nil)
		r.sub.Close()
	}
}

// Announce says that the server announced a change in folder ("" for any
// folder): to every replica when c replicates (each calls Changed), else
// to c alone (Changed). Like Changed, it does not block for long.
func (c *Cache) Announce(folder string) {
	r := c.rep.Load()
	if r == nil {
		c.Changed(folder)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.sh.Publish(ctx, noticeChannel, "w\x00"+folder); err != nil {
		// A name too long to publish: this replica at least.
		c.Changed(folder)
	}
}

// notice handles a notice of another replica (or of this one).
func (c *Cache) notice(r *replicas, n string) {
	kind, name, _ := strings.Cut(n, "\x00")
	switch kind {
	case "w":
		c.Changed(name)
	case "s":
		r.wake("s\x00" + name)
	case "c":
		key, at, _ := strings.Cut(name, "\x00")
		if ns, err := strconv.ParseInt(at, 10, 64); err == nil {
			// A newer check of this owner is in Redis: the next request
			// takes it instead of serving the older one it has.
			t := time.Unix(0, ns)
			c.mu.Lock()
			o := c.dir.owners[key]
			if o != nil && o.checked.Before(t) && o.pushed.Before(t) {
				o.pushed = t
			}
			takeNow := c.eager.Load() && (o == nil || o.checked.Before(t))
			c.mu.Unlock()
			if takeNow {
				c.takeCheck(r, key)
			}
		}
		r.wake("c\x00" + key)
	case "":
		// Notices may have been lost (Redis was away): anything may
		// have changed.
		c.Changed("")
		r.wakeAll()
	}
}

// Eager makes the cache take every owner check another replica stores
// as soon as it is announced, not at the next request for the owner: the
// replica holding the IMAP watch sets it, so that it watches the folders
// requests read through any replica, and the others may rely on its
// pushes for them.
func (c *Cache) Eager(on bool) { c.eager.Store(on) }

// takeCheck takes the owner's stored check in the background, if a slot
// is free.
func (c *Cache) takeCheck(r *replicas, key string) {
	select {
	case r.takes <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-r.takes }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.adoptCheck(ctx, r, key, func(time.Time) bool { return true }, 0)
	}()
}

// await returns a channel closed when notice name arrives. Register
// before looking in Redis, so that a notice sent after the look is not
// missed.
func (r *replicas) await(name string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.waiting[name]
	if ch == nil {
		if len(r.waiting) >= maxWaiting {
			r.wakeAllLocked()
		}
		ch = make(chan struct{})
		r.waiting[name] = ch
	}
	return ch
}

func (r *replicas) wake(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ch := r.waiting[name]; ch != nil {
		close(ch)
		delete(r.waiting, name)
	}
}

func (r *replicas) wakeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wakeAllLocked()
}

func (r *replicas) wakeAllLocked() {
	for name, ch := range r.waiting {
		close(ch)
		delete(r.waiting, name)
	}
}

// pause waits for wake, waitPoll or ctx's end.
func pause(ctx context.Context, wake <-chan struct{}) error {
	t := time.NewTimer(waitPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-wake:
	case <-t.C:
	}
	return nil
}

// syncReplicated is sync for Snapshot's shared call: with replicas, it
// takes f's snapshot from Redis when one there covers f's state, else
// syncs under the folder's lease and stores the result for the others,
// else waits for the replica holding the lease.
func (c *Cache) syncReplicated(ctx context.Context, f Folder, prev *Snapshot) (*Snapshot, error) {
	r := c.rep.Load()
	if r == nil || f.State.HighestModSeq == 0 {
		return c.sync(ctx, f, prev)
	}
	waited := false
	for {
		wake := r.await("s\x00" + f.Name)
		if s := c.sharedSnapshot(ctx, r, f); s != nil {
			return s, nil
		}
		lease, err := r.sh.TryLock(ctx, "sync\x00"+f.Name, syncLease)
		if err == nil {
			if waited {
				r.m.Takeovers.WithLabelValues("sync").Inc()
			}
			return c.syncLeased(ctx, r, f, prev, lease)
		}
		if !errors.Is(err, shared.ErrBusy) {
			return nil, err
		}
		if !waited {
			waited = true
			r.m.LeaseWaits.WithLabelValues("sync").Inc()
		}
		if err := pause(ctx, wake); err != nil {
			return nil, err
		}
	}
}

// syncLeased syncs f holding its lease, from the newest snapshot at hand
// (prev, or the one in Redis when newer: what another replica fetched is
// not fetched again), and stores the result for the other replicas.
func (c *Cache) syncLeased(ctx context.Context, r *replicas, f Folder, prev *Snapshot, lease *shared.Lease) (*Snapshot, error) {
	defer lease.Unlock(context.WithoutCancel(ctx))
	// Another replica may have stored it between the look and the lease.
	if s := c.sharedSnapshot(ctx, r, f); s != nil {
		return s, nil
	}
	r.m.Shared.WithLabelValues("snapshot", "miss").Inc()
	if st, ok := c.sharedState(ctx, r, f.Name); ok && st.UIDValidity == f.State.UIDValidity &&
		(prev == nil || prev.State.UIDValidity != st.UIDValidity || prev.State.HighestModSeq < st.HighestModSeq) {
		if base := c.sharedBlob(ctx, r, f); base != nil {
			prev = base
		}
	}
	s, err := c.sync(ctx, f, prev)
	if err != nil {
		return nil, err
	}
	if b, err := EncodeSnapshot(s); err != nil {
		c.log.Warn("could not share a snapshot", "folder", f.Name, "err", err)
	} else if err := r.sh.SetBlob(ctx, "snap\x00"+f.Name, b, sharedSnapshotTTL); err != nil {
		c.log.Info("snapshot not shared", "folder", f.Name, "err", err)
	} else {
		r.sh.SetBlob(ctx, "snapstate\x00"+f.Name, []byte(stateKey(s.State)), sharedSnapshotTTL)
		r.sh.Publish(ctx, noticeChannel, "s\x00"+f.Name)
	}
	return s, nil
}

// sharedSnapshot returns the snapshot in Redis when it covers f's state,
// kept as this replica's own; nil otherwise. The state stored beside it
// is read first, so a snapshot too old costs one small read.
func (c *Cache) sharedSnapshot(ctx context.Context, r *replicas, f Folder) *Snapshot {
	st, ok := c.sharedState(ctx, r, f.Name)
	if !ok || !(&Snapshot{State: st}).covers(f) {
		return nil
	}
	s := c.sharedBlob(ctx, r, f)
	if s == nil || !s.covers(f) {
		return nil
	}
	s.checked = f.checked
	r.m.Shared.WithLabelValues("snapshot", "hit").Inc()
	c.keep(s)
	c.save(s)
	return s
}

// sharedState returns the state of the snapshot of folder in Redis.
func (c *Cache) sharedState(ctx context.Context, r *replicas, folder string) (imapstore.State, bool) {
	b, ok := r.sh.GetBlob(ctx, "snapstate\x00"+folder)
	if !ok {
		return imapstore.State{}, false
	}
	return parseStateKey(string(b))
}

// sharedBlob returns the snapshot of f in Redis, whatever its state.
func (c *Cache) sharedBlob(ctx context.Context, r *replicas, f Folder) *Snapshot {
	b, ok := r.sh.GetBlob(ctx, "snap\x00"+f.Name)
	if !ok {
		return nil
	}
	s, err := DecodeSnapshot(f, b)
	if err != nil {
		c.log.Warn("ignoring an unusable shared snapshot", "folder", f.Name)
		return nil
	}
	return s
}

// parseStateKey reads what stateKey wrote.
func parseStateKey(k string) (imapstore.State, bool) {
	p := strings.Split(k, ".")
	if len(p) != 4 {
		return imapstore.State{}, false
	}
	var n [4]uint64
	for i, s := range p {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return imapstore.State{}, false
		}
		n[i] = v
	}
	if n[0] > 1<<32-1 || n[2] > 1<<32-1 || n[3] > 1<<32-1 {
		return imapstore.State{}, false
	}
	return imapstore.State{UIDValidity: uint32(n[0]), HighestModSeq: n[1], UIDNext: uint32(n[2]), Messages: uint32(n[3])}, true
}

// sharedCheck is an owner check as stored in Redis: what checkOwner read
// (the folders the proxy sees, with their states and details) and when
// the check started, by the clock of the replica that made it.
type sharedCheck struct {
	Name      string               `json:"name"`
	Checked   time.Time            `json:"checked"`
	Listed    []imapstore.Folder   `json:"listed"`
	DetailsAt map[string]time.Time `json:"details_at"`
}

// checkReplicated is checkOwner for recheck's shared call: with replicas,
// it takes the owner's check from Redis when one there is good for the
// waiting requests, else checks under the owner's lease and stores the
// result, else waits for the replica holding the lease.
func (c *Cache) checkReplicated(ctx context.Context, name string, good func(time.Time) bool) (ownerCheck, error) {
	return c.checkShared(ctx, name, checkStates, good)
}

// lookUpReplicated is checkOwner's look-up (an owner this replica does
// not know) for lookUp's shared call: with replicas, it takes another
// replica's check or look-up of the owner when it is recent (a look-up
// that found nothing within NegativeTTL, as this replica's own would
// be remembered), else looks up under the owner's lease and stores the
// result.
func (c *Cache) lookUpReplicated(ctx context.Context, owner string, mode checkMode) (ownerCheck, error) {
	now := c.opts.Now()
	c.mu.Lock()
	pushed := c.pushed
	c.mu.Unlock()
	return c.checkShared(ctx, owner, mode, func(t time.Time) bool { return c.goodCheck(t, now, pushed) })
}

// checkShared is checkReplicated, or lookUpReplicated when mode is
// checkLookup or checkFind.
func (c *Cache) checkShared(ctx context.Context, name string, mode checkMode, good func(time.Time) bool) (ownerCheck, error) {
	r := c.rep.Load()
	if r == nil {
		return c.checkOwner(ctx, name, mode)
	}
	var negative time.Duration
	if mode == checkLookup || mode == checkFind {
		negative = c.opts.NegativeTTL
	}
	key := ownerKey(name)
	waited := false
	for {
		wake := r.await("c\x00" + key)
		if oc, ok := c.adoptCheck(ctx, r, key, good, negative); ok {
			return oc, nil
		}
		lease, err := r.sh.TryLock(ctx, "check\x00"+key, checkLease)
		if err == nil {
			if waited {
				r.m.Takeovers.WithLabelValues("check").Inc()
			}
			return c.checkLeased(ctx, r, name, key, mode, good, negative, lease)
		}
		if !errors.Is(err, shared.ErrBusy) {
			return ownerCheck{}, err
		}
		if !waited {
			waited = true
			r.m.LeaseWaits.WithLabelValues("check").Inc()
		}
		if err := pause(ctx, wake); err != nil {
			return ownerCheck{}, err
		}
	}
}

// checkLeased checks owner name holding its lease and stores the check
// for the other replicas.
func (c *Cache) checkLeased(ctx context.Context, r *replicas, name, key string, mode checkMode, good func(time.Time) bool, negative time.Duration, lease *shared.Lease) (ownerCheck, error) {
	defer lease.Unlock(context.WithoutCancel(ctx))
	if oc, ok := c.adoptCheck(ctx, r, key, good, negative); ok {
		return oc, nil
	}
	r.m.Shared.WithLabelValues("check", "miss").Inc()
	oc, err := c.checkOwner(ctx, name, mode)
	if err != nil {
		return oc, err
	}
	// The entry the check published (none when the proxy sees none of
	// the owner's folders); a later check may have replaced it already,
	// and then there is nothing to share.
	c.mu.Lock()
	o := c.dir.owners[key]
	sc := sharedCheck{Name: name, Checked: oc.checked}
	current := o == nil || o.checked.Equal(oc.checked)
	if o != nil && current {
		sc.Name, sc.DetailsAt = o.name, o.detailsAt
		for _, f := range o.listed {
			sc.Listed = append(sc.Listed, f)
		}
	}
	c.mu.Unlock()
	if !current {
		return oc, nil
	}
	b, err := json.Marshal(sc)
	if err == nil {
		// A check older than the check interval is good for no request,
		// a look-up that found nothing for none past NegativeTTL.
		err = r.sh.SetBlob(ctx, "check\x00"+key, b, max(c.opts.CheckInterval, c.opts.NegativeTTL)+10*time.Second)
	}
	if err != nil {
		c.log.Info("owner check not shared", "owner", name, "err", err)
		return oc, nil
	}
	r.sh.Publish(ctx, noticeChannel, "c\x00"+key+"\x00"+strconv.FormatInt(oc.checked.UnixNano(), 10))
	return oc, nil
}

// adoptCheck takes the owner's check from Redis when it is good for the
// waiting requests (or, with negative set, found no folders within
// negative of now), as if this replica had made it.
func (c *Cache) adoptCheck(ctx context.Context, r *replicas, key string, good func(time.Time) bool, negative time.Duration) (ownerCheck, bool) {
	b, ok := r.sh.GetBlob(ctx, "check\x00"+key)
	if !ok {
		return ownerCheck{}, false
	}
	var sc sharedCheck
	if err := json.Unmarshal(b, &sc); err != nil || ownerKey(sc.Name) != key {
		return ownerCheck{}, false
	}
	if sc.DetailsAt == nil {
		sc.DetailsAt = map[string]time.Time{}
	}
	o, unknown := c.buildEntry(sc.Name, sc.Listed, sc.DetailsAt, sc.Checked)
	c.mu.Lock()
	cur := c.dir.owners[key]
	pushed := c.pushed
	if cur != nil {
		pushed = c.pushedFor(cur)
	}
	// Good for the requests, or as good as a check of this replica
	// would be with NOTIFY watching the owner's folders (watchedFresh):
	// what the watching replica checked after the last announced change
	// holds until RevalidateWatched, whichever replica checked it.
	now := c.opts.Now()
	valid := sc.Checked // what the waiting requests compare with good
	if !good(sc.Checked) && !(negative > 0 && len(sc.Listed) == 0 && sc.Checked.After(now.Add(-negative))) {
		if !c.watchedFresh(o, now, pushed) {
			c.mu.Unlock()
			return ownerCheck{}, false
		}
		// Good as of now, as fresh would have found it: the
		// requests waiting must not ask for another check.
		valid = now
	}
	c.mu.Unlock()
	r.m.Shared.WithLabelValues("check", "hit").Inc()
	if cur != nil && !cur.checked.Before(sc.Checked) {
		if cur.checked.After(valid) {
			valid = cur.checked
		}
		return ownerCheck{cur.folders, valid}, true
	}
	c.publish(key, o, unknown)
	return ownerCheck{o.folders, valid}, true
}
