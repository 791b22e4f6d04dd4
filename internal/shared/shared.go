// Package shared is the state several fbpub replicas share through one
// Redis (or Valkey): leases with fencing tokens, failure throttles, a store
// of compressed blobs and change notices, each with a local fallback for
// when Redis is unreachable, and for a single replica with no Redis.
//
// A Client is safe for concurrent use. It is in one of three modes (Mode):
// Local when no Redis is configured, where everything is done in-process
// exactly as one replica needs it; Shared while Redis answers; and
// Degraded while it does not, where every operation falls back to this
// process's local state without an error to the caller (a lock then
// serialises only this replica's holders, a throttle counts only this
// replica's failures, the blob store misses, a notice reaches only this
// replica's subscribers). The first operation that finds Redis
// unreachable switches to Degraded (one that Redis refuses falls back for
// that call only); a probe every Options.Probe switches back to Shared once Redis
// answers again. Each transition is logged once, is visible in Ready and
// moves the fbpub_redis_up gauge.
//
// Keys are stored hashed (SHA-256) under Options.Prefix, so Redis holds no
// user names, addresses or folder names.
package shared

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fbpub/fbpub/metrics"
)

// Mode says where a Client keeps its state.
type Mode int

// The modes of a Client.
const (
	// Local: no Redis is configured; state is this process's.
	Local Mode = iota
	// Shared: Redis answers; state is shared by the replicas.
	Shared
	// Degraded: Redis is configured but unreachable; state is this
	// process's until Redis answers again.
	Degraded
)

func (m Mode) String() string {
	switch m {
	case Local:
		return "local"
	case Shared:
		return "shared"
	case Degraded:
		return "degraded"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configures a Client. The zero value is a Local client.
type Options struct {
	// URL is Redis' address: redis://[[user]:password@]host[:port][/db],
	// or rediss:// for TLS. Empty means no Redis: a Local client.
	URL string
	// Password, when set, replaces the URL's (it comes from a file).
	Password string
	// TLSConfig, when set, is used for rediss:// (a private CA); nil
	// verifies the server against the system's roots.
	TLSConfig *tls.Config
	// Timeout bounds each Redis operation, connecting included; past it
	// the operation falls back to local state. Default 1s.
	Timeout time.Duration
	// Probe is how often Redis is pinged to notice it going and coming
	// back. Default 2s.
	Probe time.Duration
	// Prefix starts every key and channel name. Default "fbpub:".
	Prefix string
	// MaxBlob bounds a blob's uncompressed size. Default 16 MiB.
	MaxBlob int
	// Metrics, when set, receives the Redis metrics.
	Metrics *metrics.Redis
	// Logger receives the mode transitions; nil discards them.
	Logger *slog.Logger
}

// Client is the shared-state layer of one replica. Its methods are safe
// for concurrent use; Close stops its background work.
type Client struct {
	opts Options
	rdb  *redis.Client // nil for a Local client
	// where is Redis' address without credentials, for logs and Ready.
	where string
	log   *slog.Logger

	mu sync.Mutex
	// mode, since and cause are the current mode, when it began and the
	// error that caused Degraded; guarded by mu.
	mode  Mode
	since time.Time
	cause string
	// subs are the live subscriptions, told when shared mode returns;
	// guarded by mu.
	subs map[*Subscription]struct{}

	locks    localLocks
	throttle localThrottles

	stop chan struct{}
	done sync.WaitGroup
}

// New returns a Client for opts. With an empty URL it is Local and starts
// nothing. Otherwise it starts in Shared mode if Redis answers a PING
// within Timeout, else in Degraded mode (an unreachable Redis is not an
// error: the replica keeps answering); the error is only for a URL that
// does not parse. The caller must Close the Client.
func New(opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Probe <= 0 {
		opts.Probe = 2 * time.Second
	}
	if opts.Prefix == "" {
		opts.Prefix = "fbpub:"
	}
	if opts.MaxBlob <= 0 {
		opts.MaxBlob = 16 << 20
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, log: log.With("component", "redis"), subs: map[*Subscription]struct{}{}, stop: make(chan struct{}), since: time.Now()}
	c.locks.init()
	c.throttle.init()
	if opts.URL == "" {
		return c, nil
	}
	ro, where, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	c.where = where
	if opts.Password != "" {
		ro.Password = opts.Password
	}
	if ro.TLSConfig != nil && opts.TLSConfig != nil {
		tc := opts.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = ro.TLSConfig.ServerName
		}
		ro.TLSConfig = tc
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = opts.Timeout, opts.Timeout, opts.Timeout
	ro.ContextTimeoutEnabled = true
	// A failed command falls back to local state at once: retrying
	// would only make the request wait longer.
	ro.MaxRetries = -1
	ro.DialerRetries = 1
	quiet.Do(func() { redis.SetLogger(discard{}) })
	c.rdb = redis.NewClient(ro)
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	err = c.rdb.Ping(ctx).Err()
	cancel()
	c.mu.Lock()
	if err != nil {
		c.mode, c.cause = Degraded, err.Error()
		c.log.Warn("Redis unreachable: serving from local state until it answers", "redis", c.where, "err", err)
	} else {
		c.mode = Shared
		c.log.Info("sharing state through Redis", "redis", c.where)
	}
	c.mu.Unlock()
	c.setUp()
	c.done.Go(c.probe)
	return c, nil
}

// ParseURL checks a Redis URL and returns go-redis' options for it and the
// address to name in logs, which never holds the password. Its errors do
// not hold the password either.
func ParseURL(s string) (*redis.Options, string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", errors.New("shared: the Redis URL does not parse")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, "", fmt.Errorf("shared: Redis URL scheme %q is not redis or rediss", u.Scheme)
	}
	where := u.Scheme + "://" + u.Host + u.Path
	// What errors show: the password replaced, without the query
	// (go-redis reads a password from ?password=).
	shown := *u
	shown.RawQuery, shown.ForceQuery, shown.Fragment, shown.RawFragment = "", false, "", ""
	if u.Host == "" || u.Opaque != "" {
		return nil, "", fmt.Errorf("shared: Redis URL %s has no host", shown.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("shared: Redis URL %s has a query or fragment; fbpub sets the connection's options itself", shown.Redacted())
	}
	ro, err := redis.ParseURL(s)
	if err != nil {
		// go-redis' messages may quote the URL whole.
		return nil, "", fmt.Errorf("shared: Redis URL %s is not host[:port][/db]", shown.Redacted())
	}
	return ro, where, nil
}

// Close stops the probe and the subscriptions still open and closes the
// connections to Redis. Leases still held are not released; they expire.
func (c *Client) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.done.Wait()
	c.mu.Lock()
	var subs []*Subscription
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	if c.rdb != nil {
		return c.rdb.Close()
	}
	return nil
}

// Mode returns the current mode.
func (c *Client) Mode() Mode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// Ready describes the mode for /readyz, one line without credentials:
// "redis: not configured (local state)", "redis: shared (redis://host:port/0)"
// or "redis: degraded since 2026-…Z, serving from local state (redis://…): <error>".
// Degraded is not unready: the replica answers from local state.
func (c *Client) Ready() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.mode {
	case Shared:
		return fmt.Sprintf("redis: shared (%s)", c.where)
	case Degraded:
		return fmt.Sprintf("redis: degraded since %s, serving from local state (%s): %s", c.since.UTC().Format(time.RFC3339), c.where, c.cause)
	}
	return "redis: not configured (local state)"
}

// shared reports whether operations should go to Redis.
func (c *Client) shared() bool { return c.Mode() == Shared }

// setMode moves to mode m (Shared or Degraded), logging a transition once
// and telling subscriptions when shared mode returns.
func (c *Client) setMode(m Mode, cause error) {
	c.mu.Lock()
	if c.mode == m || c.mode == Local {
		c.mu.Unlock()
		return
	}
	c.mode, c.since = m, time.Now()
	var subs []*Subscription
	if m == Degraded {
		c.cause = cause.Error()
		c.log.Warn("Redis unreachable: serving from local state until it answers", "redis", c.where, "err", cause)
	} else {
		c.cause = ""
		c.log.Info("Redis answers again: sharing state", "redis", c.where)
		for s := range c.subs {
			subs = append(subs, s)
		}
	}
	c.mu.Unlock()
	c.setUp()
	// Notices published while Redis was away are lost: anything may
	// have changed.
	for _, s := range subs {
		s.deliver("")
	}
}

// setUp sets the fbpub_redis_up gauge from the mode.
func (c *Client) setUp() {
	if c.opts.Metrics == nil {
		return
	}
	if c.Mode() == Shared {
		c.opts.Metrics.Up.Set(1)
	} else {
		c.opts.Metrics.Up.Set(0)
	}
}

// probe pings Redis every Options.Probe until Close, switching modes.
func (c *Client) probe() {
	t := time.NewTicker(c.opts.Probe)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		err := c.do(context.Background(), "ping", func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() })
		if err == nil {
			c.setMode(Shared, nil)
		}
	}
}

// do runs one Redis operation f under the timeout, records it in the
// metrics, and switches to Degraded when it fails because Redis is
// unreachable; the caller falls back to local state in either case. redis.Nil (no such
// key) is a success; a failure because the caller's ctx ended is not
// Redis' fault and changes no mode.
func (c *Client) do(outer context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(outer, c.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if m := c.opts.Metrics; m != nil {
		m.Duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
		if err != nil {
			m.Commands.WithLabelValues(op, "error").Inc()
		} else {
			m.Commands.WithLabelValues(op, "ok").Inc()
		}
	}
	if err != nil && outer.Err() != nil {
		// The caller gave up, or its deadline passed before ours.
		return err
	}
	if err != nil && unreachable(err) {
		c.setMode(Degraded, err)
	}
	return err
}

// unreachable reports whether err says Redis cannot serve this replica
// (no connection, a timeout, a refused login, a server loading, read-only
// or down), rather than refusing one command (a key of another type, out
// of memory under noeviction): only the former switches to Degraded, so
// that a bad key cannot make the mode flap.
func unreachable(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return true
	}
	return redis.IsAuthError(err) || redis.IsPermissionError(err) || redis.IsLoadingError(err) || redis.IsReadOnlyError(err) ||
		redis.IsMasterDownError(err) || redis.IsClusterDownError(err) || redis.IsMaxClientsError(err)
}

// quiet silences go-redis' own logger, once per process: it writes to
// stderr, outside fbpub's log, about each failed dial. fbpub logs what
// matters itself: the transitions between modes.
var quiet sync.Once

// discard is a go-redis logger that writes nothing.
type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// fallback counts an operation done locally because Redis is unreachable.
func (c *Client) fallback(op string) {
	if c.rdb != nil && c.opts.Metrics != nil {
		c.opts.Metrics.Fallbacks.WithLabelValues(op).Inc()
	}
}

// key returns the Redis key of kind and name: the prefix, the kind and the
// name's SHA-256 in braces (a cluster hash tag, so a lease's keys share a
// slot).
func (c *Client) key(kind, name string) string {
	sum := sha256.Sum256([]byte(name))
	return c.opts.Prefix + kind + ":{" + hex.EncodeToString(sum[:16]) + "}"
}
