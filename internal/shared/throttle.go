package shared

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Throttle counts failures per key (a client address, a user name) in a
// fixed window: the window starts with a key's first failure and lasts
// Window; its count then starts again from zero. In Shared mode the counts
// are those of every replica together; while Redis is unreachable, and
// without Redis, each replica counts its own failures (a count a replica
// made locally is not carried into Redis when it comes back, nor the
// reverse). A Throttle is safe for concurrent use.
type Throttle struct {
	c      *Client
	name   string
	window time.Duration
}

// Throttle returns the throttle called name (several throttles with
// different names count apart) with the given window, at least 1 ms.
func (c *Client) Throttle(name string, window time.Duration) *Throttle {
	return &Throttle{c: c, name: name, window: max(window, time.Millisecond)}
}

// throttleScript counts one failure of KEYS[1], starting a window of
// ARGV[1] ms with the first, and returns the count and the window's
// remaining ms.
var throttleScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}`)

// Add counts one failure of key and returns the failures of key in the
// current window, this one included, and how long the window still runs.
// It never fails: when Redis is unreachable it counts locally.
func (t *Throttle) Add(ctx context.Context, key string) (int64, time.Duration) {
	if t.c.shared() {
		var res []int64
		err := t.c.do(ctx, "throttle", func(ctx context.Context) error {
			var err error
			res, err = throttleScript.Run(ctx, t.c.rdb, []string{t.c.key("throttle:"+t.name, key)}, t.window.Milliseconds()).Int64Slice()
			return err
		})
		if err == nil && len(res) == 2 {
			return res[0], time.Duration(res[1]) * time.Millisecond
		}
	}
	t.c.fallback("throttle")
	return t.c.throttle.add(t.name, key, t.window, time.Now())
}

// Count returns the failures of key in the current window and how long
// the window still runs (0, 0 when there is none). It never fails: when
// Redis is unreachable it reads the local count.
func (t *Throttle) Count(ctx context.Context, key string) (int64, time.Duration) {
	if t.c.shared() {
		var n int64
		var ttl time.Duration
		rkey := t.c.key("throttle:"+t.name, key)
		err := t.c.do(ctx, "throttle", func(ctx context.Context) error {
			pipe := t.c.rdb.Pipeline()
			get := pipe.Get(ctx, rkey)
			pttl := pipe.PTTL(ctx, rkey)
			if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
				return err
			}
			n, _ = get.Int64()
			ttl = max(pttl.Val(), 0)
			return nil
		})
		if err == nil {
			if n == 0 {
				ttl = 0
			}
			return n, ttl
		}
	}
	t.c.fallback("throttle")
	return t.c.throttle.count(t.name, key, time.Now())
}

// localThrottles are the failure counts of this process, by throttle
// name and key.
type localThrottles struct {
	mu sync.Mutex
	m  map[[2]string]*window // guarded by mu
}

// window is one key's current window.
type window struct {
	end time.Time
	n   int64
}

// maxLocalKeys bounds the local counts: past it, ended windows are swept
// before a new key is added.
const maxLocalKeys = 10000

func (l *localThrottles) init() { l.m = map[[2]string]*window{} }

func (l *localThrottles) add(name, key string, d time.Duration, now time.Time) (int64, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := [2]string{name, key}
	w := l.m[k]
	if w == nil || !now.Before(w.end) {
		if w == nil && len(l.m) >= maxLocalKeys {
			for k, w := range l.m {
				if !now.Before(w.end) {
					delete(l.m, k)
				}
			}
		}
		w = &window{end: now.Add(d)}
		l.m[k] = w
	}
	w.n++
	return w.n, w.end.Sub(now)
}

func (l *localThrottles) count(name, key string, now time.Time) (int64, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.m[[2]string{name, key}]
	if w == nil || !now.Before(w.end) {
		return 0, 0
	}
	return w.n, w.end.Sub(now)
}
