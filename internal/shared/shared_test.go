package shared

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// replica is one fbpub replica's Client with its metrics and log.
type replica struct {
	*Client
	m   *metrics.Redis
	reg *prometheus.Registry
	log *logBuffer
}

// newReplica returns a Client for url with short timeouts, closed when
// the test ends.
func newReplica(t *testing.T, url string, opts *Options) *replica {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	r := &replica{reg: prometheus.NewRegistry(), log: &logBuffer{}}
	r.m = metrics.NewRedis(r.reg)
	o := *opts
	o.URL = url
	if o.Timeout == 0 {
		o.Timeout = 250 * time.Millisecond
	}
	o.Probe = 20 * time.Millisecond
	o.Metrics = r.m
	o.Logger = slog.New(slog.NewTextHandler(r.log, nil))
	c, err := New(o)
	if err != nil {
		t.Fatalf("New(%q): %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	r.Client = c
	return r
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLockContention: holders on two replicas contend for one lease; only
// one holds it at any time, every lease is shared, and the fencing tokens
// increase in the order the leases were granted.
func TestLockContention(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rs.URL(), nil), newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	var holders, maxHolders atomic.Int32
	var mu sync.Mutex
	var tokens []uint64
	var wg sync.WaitGroup
	for i := range 6 {
		c := a.Client
		if i%2 == 1 {
			c = b.Client
		}
		wg.Go(func() {
			for range 5 {
				l, err := c.Lock(ctx, "alice/Calendar", 5*time.Second)
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				n := holders.Add(1)
				for {
					m := maxHolders.Load()
					if n <= m || maxHolders.CompareAndSwap(m, n) {
						break
					}
				}
				mu.Lock()
				tokens = append(tokens, l.Token())
				mu.Unlock()
				if !l.Shared() {
					t.Errorf("lease %d is not shared", l.Token())
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("at most %d holders at once, want 1", m)
	}
	if len(tokens) != 30 || !slices.IsSorted(tokens) || len(slices.Compact(slices.Clone(tokens))) != len(tokens) {
		t.Errorf("fencing tokens in the order granted = %v, want 30 increasing", tokens)
	}
	// Another key is another lease.
	l, err := a.TryLock(ctx, "bob/Calendar", time.Second)
	if err != nil || !l.Shared() {
		t.Fatalf("TryLock(bob/Calendar) = %v, %v", l, err)
	}
	if _, err := b.TryLock(ctx, "bob/Calendar", time.Second); !errors.Is(err, ErrBusy) {
		t.Errorf("TryLock on the other replica while held = %v, want ErrBusy", err)
	}
	l.Unlock(ctx)
	if got := testutil.ToFloat64(a.m.Fallbacks.WithLabelValues("lock")) + testutil.ToFloat64(b.m.Fallbacks.WithLabelValues("lock")); got != 0 {
		t.Errorf("fbpub_redis_fallbacks_total{op=lock} = %v, want 0", got)
	}
}

// TestLockRenewedAndLost: a held lease outlives its TTL while its holder
// renews it; a holder cut off from Redis stops renewing, learns the lease
// is lost, and the other replica gets it after the TTL with a larger
// token.
func TestLockRenewedAndLost(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	var cut atomic.Bool
	relay := testbed.Relay(t, rs.Addr, func(int64) testbed.Fault {
		if cut.Load() {
			return testbed.Stall
		}
		return testbed.Forward
	})
	a := newReplica(t, "redis://"+relay+"/0", nil)
	b := newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	const ttl = 600 * time.Millisecond
	la, err := a.Lock(ctx, "alice/Calendar", ttl)
	if err != nil || !la.Shared() {
		t.Fatalf("Lock = %v, %v", la, err)
	}
	time.Sleep(3 * ttl)
	if _, err := b.TryLock(ctx, "alice/Calendar", ttl); !errors.Is(err, ErrBusy) {
		t.Fatalf("TryLock after 3 TTLs of a renewed lease = %v, want ErrBusy", err)
	}
	select {
	case <-la.Lost():
		t.Fatal("renewed lease reported lost")
	default:
	}

	cut.Store(true)
	waitFor(t, "the cut-off holder to learn its lease is lost", func() bool {
		select {
		case <-la.Lost():
			return true
		default:
			return false
		}
	})
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	lb, err := b.Lock(lctx, "alice/Calendar", ttl)
	if err != nil || !lb.Shared() {
		t.Fatalf("Lock on the other replica = %v, %v", lb, err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token of the new holder %d, not above the lost one's %d", lb.Token(), la.Token())
	}
	if err := la.Unlock(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock of the lost lease = %v, want ErrLost", err)
	}
	if err := lb.Unlock(ctx); err != nil {
		t.Errorf("Unlock: %v", err)
	}
	if a.Mode() != Degraded || testutil.ToFloat64(a.m.LeasesLost) != 1 || testutil.ToFloat64(a.m.Up) != 0 {
		t.Errorf("cut-off replica: mode %v, leases lost %v, up %v; want degraded, 1, 0",
			a.Mode(), testutil.ToFloat64(a.m.LeasesLost), testutil.ToFloat64(a.m.Up))
	}
}

// TestThrottleAcrossReplicas: failures counted on two replicas add up, and
// throttles of different names count apart.
func TestThrottleAcrossReplicas(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rs.URL(), nil), newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	ta, tb := a.Throttle("login", time.Minute), b.Throttle("login", time.Minute)
	for i := range 3 {
		if n, _ := ta.Add(ctx, "192.0.2.1"); n != int64(i+1) {
			t.Errorf("Add #%d on replica a = %d, want %d", i+1, n, i+1)
		}
	}
	n, left := tb.Add(ctx, "192.0.2.1")
	if n != 4 || left <= 0 || left > time.Minute {
		t.Errorf("Add on replica b = %d, %s; want 4 and the rest of a 1m window", n, left)
	}
	if n, _ := ta.Count(ctx, "192.0.2.1"); n != 4 {
		t.Errorf("Count on replica a = %d, want 4", n)
	}
	if n, left := ta.Count(ctx, "192.0.2.2"); n != 0 || left != 0 {
		t.Errorf("Count of a key with no failures = %d, %s; want 0, 0", n, left)
	}
	if n, _ := b.Throttle("link", time.Minute).Add(ctx, "192.0.2.1"); n != 1 {
		t.Errorf("Add on another throttle = %d, want 1", n)
	}
	if got := testutil.ToFloat64(a.m.Fallbacks.WithLabelValues("throttle")); got != 0 {
		t.Errorf("fbpub_redis_fallbacks_total{op=throttle} = %v, want 0", got)
	}
	// Redis holds no addresses.
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("KEYS * = %v, %v; want 2 keys", keys, err)
	}
	for _, k := range keys {
		if strings.Contains(k, "192.0.2") || !strings.HasPrefix(k, "fbpub:throttle:") {
			t.Errorf("key %q: want fbpub:throttle:… with the address hashed", k)
		}
	}
}

// TestLocalThrottleWindow: a local window ends after its duration and the
// count starts again.
func TestLocalThrottleWindow(t *testing.T) {
	var l localThrottles
	l.init()
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	l.add("login", "k", time.Minute, t0)
	if n, left := l.add("login", "k", time.Minute, t0.Add(59*time.Second)); n != 2 || left != time.Second {
		t.Errorf("add within the window = %d, %s; want 2, 1s", n, left)
	}
	if n, left := l.count("login", "k", t0.Add(time.Minute)); n != 0 || left != 0 {
		t.Errorf("count at the window's end = %d, %s; want 0, 0", n, left)
	}
	if n, left := l.add("login", "k", time.Minute, t0.Add(time.Minute)); n != 1 || left != time.Minute {
		t.Errorf("add after the window = %d, %s; want 1, 1m", n, left)
	}
}

// TestBlob: a blob set on one replica is read on the other, stored
// compressed; blobs above the bound are refused, and stored values that
// are not fbpub's or inflate beyond the bound read as misses.
func TestBlob(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a := newReplica(t, rs.URL(), &Options{MaxBlob: 1 << 20})
	b := newReplica(t, rs.URL(), &Options{MaxBlob: 1 << 20})
	ctx := context.Background()
	blob := bytes.Repeat([]byte("BEGIN:VFREEBUSY\r\nFREEBUSY:20261207T090000Z/PT1H\r\n"), 22000)[:1<<20]
	if err := a.SetBlob(ctx, "alice/Calendar@42", blob, time.Minute); err != nil {
		t.Fatalf("SetBlob: %v", err)
	}
	got, ok := b.GetBlob(ctx, "alice/Calendar@42")
	if !ok || !bytes.Equal(got, blob) {
		t.Fatalf("GetBlob on the other replica = %d bytes, %v; want the %d set", len(got), ok, len(blob))
	}
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	key := a.key("blob", "alice/Calendar@42")
	if n, err := raw.StrLen(ctx, key).Result(); err != nil || n == 0 || n > int64(len(blob))/10 {
		t.Errorf("stored size %d (%v) of a %d-byte repetitive blob; want it compressed below a tenth", n, err, len(blob))
	}
	if ttl, err := raw.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL = %s, %v; want at most 1m", ttl, err)
	}
	if err := a.SetBlob(ctx, "big", make([]byte, 1<<20+1), time.Minute); !errors.Is(err, ErrTooLarge) {
		t.Errorf("SetBlob of MaxBlob+1 bytes = %v, want ErrTooLarge", err)
	}
	if _, ok := b.GetBlob(ctx, "missing"); ok {
		t.Error("GetBlob of a key never set: hit")
	}
	// A value that is not fbpub's.
	raw.Set(ctx, a.key("blob", "foreign"), "\x00not fbpub's", time.Minute)
	if _, ok := b.GetBlob(ctx, "foreign"); ok {
		t.Error("GetBlob of a foreign value: hit")
	}
	// A value that inflates beyond the bound (set by a replica with a
	// larger bound).
	big := newReplica(t, rs.URL(), &Options{MaxBlob: 4 << 20})
	if err := big.SetBlob(ctx, "bomb", make([]byte, 2<<20), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.GetBlob(ctx, "bomb"); ok {
		t.Error("GetBlob of a value inflating beyond MaxBlob: hit")
	}
}

// collector gathers the notices a subscription receives.
type collector struct {
	mu      sync.Mutex
	notices []string
}

func (c *collector) add(n string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notices = append(c.notices, n)
}

func (c *collector) has(n string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.notices, n)
}

// TestPubSub: a notice published on one replica reaches the subscriptions
// of both, and only those of its channel.
func TestPubSub(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rs.URL(), nil), newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	var onA, onB, other collector
	sa := a.Subscribe(ctx, "folders", onA.add)
	defer sa.Close()
	b.Subscribe(ctx, "folders", onB.add) // closed by b.Close
	so := a.Subscribe(ctx, "other", other.add)
	defer so.Close()
	if err := b.Publish(ctx, "folders", "alice/Calendar"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the notice on both replicas", func() bool { return onA.has("alice/Calendar") && onB.has("alice/Calendar") })
	if err := a.Publish(ctx, "folders", strings.Repeat("x", MaxNotice+1)); err == nil {
		t.Error("Publish of a notice above MaxNotice: no error")
	}
	sa.Close()
	b.Publish(ctx, "folders", "bob/Calendar")
	waitFor(t, "the second notice on b", func() bool { return onB.has("bob/Calendar") })
	if onA.has("bob/Calendar") || len(other.notices) != 0 {
		t.Errorf("closed subscription got %q, other channel got %q", onA.notices, other.notices)
	}
}

// TestRedisDown: with Redis killed mid-test, every operation falls back
// to local state without an error to the caller, the mode says degraded
// (logged once), and the metrics move; once Redis is back, the replica
// returns to shared mode and subscribers are told to resync.
func TestRedisDown(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a := newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	var notices collector
	sub := a.Subscribe(ctx, "folders", notices.add)
	defer sub.Close()
	if a.Mode() != Shared || testutil.ToFloat64(a.m.Up) != 1 || !strings.HasPrefix(a.Ready(), "redis: shared (redis://127.0.0.1:") {
		t.Fatalf("before: mode %v, up %v, Ready %q", a.Mode(), testutil.ToFloat64(a.m.Up), a.Ready())
	}
	held, err := a.Lock(ctx, "alice/Calendar", time.Second)
	if err != nil || !held.Shared() {
		t.Fatalf("Lock = %v, %v", held, err)
	}

	rs.Kill(t)
	thr := a.Throttle("login", time.Minute)
	for i := range 3 {
		if n, _ := thr.Add(ctx, "192.0.2.1"); n != int64(i+1) {
			t.Errorf("local Add #%d = %d", i+1, n)
		}
	}
	if a.Mode() != Degraded {
		t.Fatalf("mode after Redis died = %v, want degraded", a.Mode())
	}
	// The lease held in Redis cannot be renewed: it is lost after its TTL.
	waitFor(t, "the shared lease to be lost", func() bool {
		select {
		case <-held.Lost():
			return true
		default:
			return false
		}
	})
	if err := held.Unlock(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock of the lease lost with Redis = %v, want ErrLost", err)
	}
	l, err := a.Lock(ctx, "alice/Calendar", time.Second)
	if err != nil || l.Shared() {
		t.Fatalf("Lock while degraded = %v, %v; want a local lease", l, err)
	}
	if _, err := a.TryLock(ctx, "alice/Calendar", time.Second); !errors.Is(err, ErrBusy) {
		t.Errorf("TryLock of a locally held lease = %v, want ErrBusy", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Errorf("Unlock of a local lease: %v", err)
	}
	if err := a.SetBlob(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Errorf("SetBlob while degraded: %v", err)
	}
	if _, ok := a.GetBlob(ctx, "k"); ok {
		t.Error("GetBlob while degraded: hit")
	}
	if err := a.Publish(ctx, "folders", "alice/Calendar"); err != nil {
		t.Errorf("Publish while degraded: %v", err)
	}
	waitFor(t, "the local notice", func() bool { return notices.has("alice/Calendar") })
	if r := a.Ready(); !strings.HasPrefix(r, "redis: degraded since ") || !strings.Contains(r, "serving from local state") {
		t.Errorf("Ready() = %q", r)
	}
	if up, errs, fb := testutil.ToFloat64(a.m.Up), testutil.ToFloat64(a.m.Commands.WithLabelValues("throttle", "error")),
		testutil.ToFloat64(a.m.Fallbacks.WithLabelValues("throttle")); up != 0 || errs < 1 || fb != 3 {
		t.Errorf("degraded: up %v, throttle errors %v, throttle fallbacks %v; want 0, ≥1, 3", up, errs, fb)
	}

	rs.Start(t)
	waitFor(t, "shared mode again", func() bool { return a.Mode() == Shared })
	if testutil.ToFloat64(a.m.Up) != 1 {
		t.Error("fbpub_redis_up not 1 after Redis came back")
	}
	waitFor(t, "the resync notice", func() bool { return notices.has("") })
	// The subscription is back in Redis: another replica's notices arrive.
	b := newReplica(t, rs.URL(), nil)
	waitFor(t, "another replica's notice after Redis came back", func() bool {
		b.Publish(ctx, "folders", "bob/Calendar")
		time.Sleep(20 * time.Millisecond)
		return notices.has("bob/Calendar")
	})
	l, err = a.Lock(ctx, "alice/Calendar", time.Second)
	if err != nil || !l.Shared() {
		t.Fatalf("Lock after Redis came back = %v, %v; want a shared lease", l, err)
	}
	l.Unlock(ctx)
	log := a.log.String()
	if strings.Count(log, "Redis unreachable") != 1 || strings.Count(log, "Redis answers again") != 1 {
		t.Errorf("want each transition logged once; log:\n%s", log)
	}
	if p, err := testutil.GatherAndLint(a.reg); err != nil || len(p) != 0 {
		t.Errorf("GatherAndLint: %v %v", p, err)
	}
}

// TestPasswordNeverShown: the password, in the URL or from a file, is in
// no log line, Ready detail or error, also when Redis refuses it.
func TestPasswordNeverShown(t *testing.T) {
	const pw = "s3cret-redis-pw"
	rs := testbed.StartRedis(t, &testbed.RedisOptions{Password: pw})
	wrong := newReplica(t, "redis://:wrong-"+pw+"@"+rs.Addr+"/0", nil)
	if wrong.Mode() != Degraded || !strings.Contains(wrong.Ready(), "WRONGPASS") {
		t.Errorf("with a wrong password: mode %v, Ready %q; want degraded, WRONGPASS", wrong.Mode(), wrong.Ready())
	}
	inURL := newReplica(t, rs.URL(), nil)
	fromFile := newReplica(t, "redis://"+rs.Addr+"/0", &Options{Password: pw})
	for _, r := range []*replica{inURL, fromFile} {
		if r.Mode() != Shared {
			t.Errorf("mode %v with the right password, want shared; Ready %q", r.Mode(), r.Ready())
		}
		if n, _ := r.Throttle("t", time.Minute).Add(context.Background(), "k"); n < 1 {
			t.Errorf("Add = %d", n)
		}
	}
	_, _, err := ParseURL("redis://:" + pw + "@127.0.0.1:notaport/0")
	if err == nil {
		t.Error("ParseURL of a bad port: no error")
	}
	_, _, qerr := ParseURL("redis://127.0.0.1:6379/0?password=" + pw)
	if qerr == nil {
		t.Error("ParseURL with a query: no error")
	}
	for _, s := range []string{wrong.log.String(), wrong.Ready(), inURL.log.String(), inURL.Ready(), fromFile.log.String(), fmt.Sprint(err), fmt.Sprint(qerr)} {
		if strings.Contains(s, pw) {
			t.Errorf("password shown: %s", s)
		}
	}
}

// TestLocal: without Redis, every operation works on this process's state.
func TestLocal(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if c.Mode() != Local || c.Ready() != "redis: not configured (local state)" {
		t.Errorf("Mode %v, Ready %q", c.Mode(), c.Ready())
	}
	l1, err := c.Lock(ctx, "k", time.Second)
	if err != nil || l1.Shared() {
		t.Fatalf("Lock = %v, %v", l1, err)
	}
	if _, err := c.TryLock(ctx, "k", time.Second); !errors.Is(err, ErrBusy) {
		t.Errorf("TryLock while held = %v, want ErrBusy", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(wctx, "k", time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock while held, until ctx ends = %v, want DeadlineExceeded", err)
	}
	l1.Unlock(ctx)
	l2, err := c.TryLock(ctx, "k", time.Second)
	if err != nil || l2.Token() <= l1.Token() {
		t.Fatalf("TryLock after Unlock = %v, %v", l2, err)
	}
	l2.Unlock(ctx)
	if len(c.locks.m) != 0 {
		t.Errorf("%d local locks left after every Unlock", len(c.locks.m))
	}
	var got collector
	s := c.Subscribe(ctx, "folders", got.add)
	defer s.Close()
	c.Publish(ctx, "folders", "alice/Calendar")
	waitFor(t, "the local notice", func() bool { return got.has("alice/Calendar") })
	if n, _ := c.Throttle("login", time.Minute).Add(ctx, "k"); n != 1 {
		t.Errorf("Add = %d, want 1", n)
	}
	if _, err := c.Lock(ctx, "k", time.Millisecond); err == nil {
		t.Error("Lock with a 1ms TTL: no error")
	}
}

// TestLeaseTakenOver: a lease whose key went to another holder behind its
// back is reported lost by the next renewal, and Unlock leaves the other
// holder's key alone (compare-and-delete).
func TestLeaseTakenOver(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a := newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	key := a.key("lease", "alice/Calendar")

	// Unlock after another holder took the key.
	l, err := a.Lock(ctx, "alice/Calendar", time.Minute)
	if err != nil || !l.Shared() {
		t.Fatalf("Lock = %v, %v", l, err)
	}
	if v, err := raw.Get(ctx, key).Uint64(); err != nil || v != l.Token() {
		t.Fatalf("the lease's key holds %d (%v), want its token %d", v, err, l.Token())
	}
	raw.Set(ctx, key, "999999", time.Minute)
	if err := l.Unlock(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock of a lease taken over = %v, want ErrLost", err)
	}
	if v, _ := raw.Get(ctx, key).Result(); v != "999999" {
		t.Errorf("after Unlock the other holder's key holds %q, want it untouched", v)
	}
	raw.Del(ctx, key)

	// A renewal that finds the key gone.
	l, err = a.Lock(ctx, "alice/Calendar", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	raw.Del(ctx, key)
	waitFor(t, "the renewal to find the lease gone", func() bool {
		select {
		case <-l.Lost():
			return true
		default:
			return false
		}
	})
	if a.Mode() != Shared {
		t.Errorf("mode %v after a refused renewal, want shared (Redis answered)", a.Mode())
	}
	if err := l.Unlock(ctx); !errors.Is(err, ErrLost) {
		t.Errorf("Unlock = %v, want ErrLost", err)
	}
}

// TestProbe: with no operation running, the probe alone notices Redis
// going away and coming back.
func TestProbe(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a := newReplica(t, rs.URL(), nil)
	rs.Kill(t)
	waitFor(t, "the probe to find Redis gone", func() bool { return a.Mode() == Degraded })
	if got := testutil.ToFloat64(a.m.Commands.WithLabelValues("ping", "error")); got < 1 {
		t.Errorf("fbpub_redis_commands_total{op=ping,result=error} = %v, want ≥1", got)
	}
	rs.Start(t)
	waitFor(t, "the probe to find Redis back", func() bool { return a.Mode() == Shared })
}

// TestRefusedCommand: a command Redis refuses (a key of another type in
// its place) falls back to local state for that call, without switching
// the replica to degraded mode.
func TestRefusedCommand(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a := newReplica(t, rs.URL(), nil)
	ctx := context.Background()
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	raw.LPush(ctx, a.key("throttle:login", "192.0.2.1"), "not a counter")
	if n, _ := a.Throttle("login", time.Minute).Add(ctx, "192.0.2.1"); n != 1 {
		t.Errorf("Add over a list = %d, want 1 (counted locally)", n)
	}
	if a.Mode() != Shared || testutil.ToFloat64(a.m.Fallbacks.WithLabelValues("throttle")) != 1 ||
		testutil.ToFloat64(a.m.Commands.WithLabelValues("throttle", "error")) != 1 {
		t.Errorf("mode %v, throttle fallbacks %v, errors %v; want shared, 1, 1", a.Mode(),
			testutil.ToFloat64(a.m.Fallbacks.WithLabelValues("throttle")), testutil.ToFloat64(a.m.Commands.WithLabelValues("throttle", "error")))
	}
	if strings.Contains(a.log.String(), "unreachable") {
		t.Errorf("a refused command was logged as Redis unreachable:\n%s", a.log.String())
	}
}

// TestTLS: a rediss:// Redis whose certificate a private CA signed is
// reached with that CA in Options.TLSConfig, and not without it.
func TestTLS(t *testing.T) {
	rs := testbed.StartRedis(t, &testbed.RedisOptions{TLS: true, Password: "tls-pw"})
	if !strings.HasPrefix(rs.URL(), "rediss://") {
		t.Fatalf("URL() = %q", rs.URL())
	}
	caPEM, err := os.ReadFile(rs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	a := newReplica(t, rs.URL(), &Options{TLSConfig: &tls.Config{RootCAs: roots}})
	if a.Mode() != Shared {
		t.Fatalf("with the CA: mode %v, Ready %q", a.Mode(), a.Ready())
	}
	if n, _ := a.Throttle("login", time.Minute).Add(context.Background(), "k"); n != 1 {
		t.Errorf("Add over TLS = %d, want 1", n)
	}
	if a.Fallbacks() != 0 {
		t.Errorf("%v operations fell back over TLS", a.Fallbacks())
	}
	// A handshake under the race detector on a loaded machine may take
	// longer than the other tests' 250 ms, which would end it before the
	// certificate is refused.
	b := newReplica(t, rs.URL(), &Options{Timeout: 5 * time.Second})
	if b.Mode() != Degraded || !strings.Contains(b.Ready(), "certificate") {
		t.Errorf("without the CA: mode %v, Ready %q; want degraded for the certificate", b.Mode(), b.Ready())
	}
}

// Fallbacks returns the operations r did locally, over all ops.
func (r *replica) Fallbacks() float64 {
	var n float64
	for _, op := range metrics.RedisOps {
		n += testutil.ToFloat64(r.m.Fallbacks.WithLabelValues(op))
	}
	return n
}
