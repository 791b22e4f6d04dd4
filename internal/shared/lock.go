package shared

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBusy is TryLock's answer when another holder has the lease.
var ErrBusy = errors.New("shared: lease held by another holder")

// ErrLost is Unlock's answer when the lease was lost before it: another
// holder may have held it meanwhile, so what was written under it may have
// interleaved with that holder's writes.
var ErrLost = errors.New("shared: lease lost before Unlock")

// Lease is a held lock on one key, got from Lock or TryLock. Its methods
// are safe for concurrent use. The holder must call Unlock, also after the
// lease is lost.
//
// While held, a shared lease is renewed in Redis every third of its TTL by
// a goroutine the Lease owns (Unlock stops it and waits for it). When a
// renewal is refused (the key expired and was taken by another holder) or
// Redis is unreachable for a whole TTL, so that another replica may hold
// it now, Lost's channel is closed: the holder must stop writing under it
// and re-check what it was about to write.
type Lease struct {
	c      *Client
	rkey   string // the lock's Redis key; "" for a local lease
	relkey string // the key of the token last released; "" for a local lease
	token  uint64
	ttl    time.Duration
	shared bool

	lost     chan struct{}
	lostOnce sync.Once
	isLost   atomic.Bool

	stop     chan struct{} // closed by Unlock to end the renewal
	renewing sync.WaitGroup
	release  func() // releases the process-local lock
	unlock   sync.Once
	err      error // Unlock's answer; set inside unlock
}

// Token returns the lease's fencing token. Tokens of one key increase with
// every shared lease granted on it, across replicas and restarts of fbpub
// (Redis keeps a counter per key that never expires): a holder that finds
// a larger token recorded knows a later holder wrote. A local lease's
// token comes from a counter of this process and compares only with other
// local leases.
func (l *Lease) Token() uint64 { return l.token }

// Shared reports whether the lease is held in Redis (excluding every
// replica) rather than only in this process.
func (l *Lease) Shared() bool { return l.shared }

// Lost returns a channel that is closed when the lease is lost. A local
// lease is never lost.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Unlock stops the renewal and releases the lease: in Redis with a
// compare-and-delete, so a lease that expired and went to another holder
// is left alone, then in this process. It returns ErrLost if the lease was
// lost, and nil otherwise, also when Redis is unreachable (the key then
// expires after its TTL). Calls after the first return the first's answer.
func (l *Lease) Unlock(ctx context.Context) error {
	l.unlock.Do(func() {
		close(l.stop)
		l.renewing.Wait()
		if l.shared && !l.isLost.Load() {
			var n int64
			err := l.c.do(context.WithoutCancel(ctx), "unlock", func(ctx context.Context) error {
				var err error
				n, err = unlockScript.Run(ctx, l.c.rdb, []string{l.rkey, l.relkey}, l.token).Int64()
				return err
			})
			if err == nil && n == 0 {
				l.markLost()
			}
		}
		if l.isLost.Load() {
			l.err = ErrLost
		}
		l.release()
	})
	return l.err
}

// markLost closes Lost's channel once.
func (l *Lease) markLost() {
	l.lostOnce.Do(func() {
		l.isLost.Store(true)
		close(l.lost)
		if m := l.c.opts.Metrics; m != nil {
			m.LeasesLost.Inc()
		}
	})
}

// Scripts of the shared leases. KEYS[1] is the lease, KEYS[2] its fencing
// counter, KEYS[3] the token last released by Unlock; the lease's value is
// its token.
var (
	// lockScript grants the lease if it is free: the next token, stored
	// with the TTL (ARGV[1], ms), and 1 when the last token granted was
	// never released (a takeover), else 0. {0, 0} means held by another.
	lockScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local released = tonumber(redis.call('GET', KEYS[3]) or '0')
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t, 'PX', ARGV[1])
local takeover = 0
if prev > released then takeover = 1 end
return {t, takeover}`)
	// renewScript extends the lease to ARGV[2] ms if it still holds
	// token ARGV[1]: 1, else 0.
	renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	// unlockScript deletes the lease if it still holds token ARGV[1] and
	// records the token as released: 1, else 0.
	unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  return redis.call('DEL', KEYS[1])
end
return 0`)
)

// Lock waits until it holds the lease on key and returns it, or returns
// ctx's error. Holders in this process are served one at a time whatever
// the mode; in Shared mode the lease is then also taken in Redis, where it
// excludes every replica, expires ttl after its last renewal (so a holder
// that died frees it after ttl) and carries a fencing token. While another
// replica holds it, Lock polls Redis every ttl/8 (5 ms to 100 ms). When
// Redis is unreachable, Lock returns a local lease: it excludes only this
// process's holders, also after Redis comes back (Shared tells which kind
// a lease is). ttl must be at least 30 ms.
func (c *Client) Lock(ctx context.Context, key string, ttl time.Duration) (*Lease, error) {
	return c.lock(ctx, key, ttl, true)
}

// TryLock is Lock without the wait: it returns ErrBusy when the lease is
// held, by this process or, in Shared mode, by another replica.
func (c *Client) TryLock(ctx context.Context, key string, ttl time.Duration) (*Lease, error) {
	return c.lock(ctx, key, ttl, false)
}

func (c *Client) lock(ctx context.Context, key string, ttl time.Duration, wait bool) (*Lease, error) {
	if ttl < 30*time.Millisecond {
		return nil, fmt.Errorf("shared: lease TTL %s is shorter than 30ms", ttl)
	}
	asked := time.Now()
	waited := false // the lease was held by another holder when asked for
	release, err := c.locks.acquire(ctx, key, wait, &waited)
	if err != nil {
		return nil, err
	}
	l := &Lease{c: c, ttl: ttl, lost: make(chan struct{}), stop: make(chan struct{}), release: release}
	poll := min(max(ttl/8, 5*time.Millisecond), 100*time.Millisecond)
	rkey, fkey, relkey := c.key("lease", key), c.key("fence", key), c.key("released", key)
	for c.shared() {
		start := time.Now()
		var res []int64
		err := c.do(ctx, "lock", func(ctx context.Context) error {
			var err error
			res, err = lockScript.Run(ctx, c.rdb, []string{rkey, fkey, relkey}, ttl.Milliseconds()).Int64Slice()
			return err
		})
		if err != nil && ctx.Err() != nil {
			release()
			return nil, context.Cause(ctx)
		}
		if err != nil || len(res) != 2 {
			break // Degraded now: a local lease.
		}
		if token := res[0]; token > 0 {
			l.rkey, l.relkey, l.token, l.shared = rkey, relkey, uint64(token), true
			c.leaseGranted(asked, waited, res[1] == 1)
			l.renewing.Go(func() { l.renew(start) })
			return l, nil
		}
		if !wait {
			release()
			return nil, ErrBusy
		}
		waited = true
		select {
		case <-ctx.Done():
			release()
			return nil, context.Cause(ctx)
		case <-time.After(poll):
		}
	}
	c.fallback("lock")
	c.leaseGranted(asked, waited, false)
	l.token = c.locks.seq.Add(1)
	return l, nil
}

// leaseGranted records a lease granted after it was asked for at asked:
// how long it waited if it was held by another, and a takeover.
func (c *Client) leaseGranted(asked time.Time, waited, takeover bool) {
	m := c.opts.Metrics
	if m == nil {
		return
	}
	if waited {
		m.LeaseWaits.Observe(time.Since(asked).Seconds())
	}
	if takeover {
		m.LeaseTakeovers.Inc()
	}
}

// renew extends the shared lease every third of its TTL until Unlock,
// or until the lease is lost. granted is when the request that granted
// it was sent: the lease is known to last until ttl after it.
func (l *Lease) renew(granted time.Time) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	valid := granted // the lease lasts at least until valid + ttl
	token := strconv.FormatUint(l.token, 10)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		sent := time.Now()
		var n int64
		err := l.c.do(context.Background(), "renew", func(ctx context.Context) error {
			var err error
			n, err = renewScript.Run(ctx, l.c.rdb, []string{l.rkey}, token, l.ttl.Milliseconds()).Int64()
			return err
		})
		switch {
		case err == nil && n == 1:
			valid = sent
		case err == nil:
			// Expired, and perhaps granted to another holder.
			l.markLost()
			return
		case time.Since(valid) >= l.ttl:
			// Unreachable for a whole TTL: another replica may
			// hold it now.
			l.markLost()
			return
		}
	}
}

// localLocks are the process-local locks, one per key in use, and the
// counter of local fencing tokens.
type localLocks struct {
	mu sync.Mutex
	m  map[string]*localLock // guarded by mu
	// seq numbers local leases.
	seq atomic.Uint64
}

// localLock is a lock of one key: a one-token semaphore, and the number
// of goroutines holding or waiting for it (guarded by localLocks.mu),
// which removes it from the map when it drops to 0.
type localLock struct {
	sem  chan struct{}
	refs int
}

func (l *localLocks) init() { l.m = map[string]*localLock{} }

// acquire takes key's local lock, waiting for it if wait is set (else
// ErrBusy), and returns the function that releases it. It sets *waited
// when another holder had the lock.
func (l *localLocks) acquire(ctx context.Context, key string, wait bool, waited *bool) (func(), error) {
	l.mu.Lock()
	e := l.m[key]
	if e == nil {
		e = &localLock{sem: make(chan struct{}, 1)}
		l.m[key] = e
	}
	e.refs++
	l.mu.Unlock()
	drop := func() {
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
	if !wait {
		select {
		case e.sem <- struct{}{}:
		default:
			drop()
			return nil, ErrBusy
		}
	} else {
		select {
		case e.sem <- struct{}{}:
		default:
			*waited = true
			select {
			case e.sem <- struct{}{}:
			case <-ctx.Done():
				drop()
				return nil, context.Cause(ctx)
			}
		}
	}
	return func() {
		<-e.sem
		drop()
	}, nil
}
