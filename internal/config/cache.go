package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Cache configures the state several fbpub replicas share through one
// Redis (or Valkey): see internal/shared and README, "Several replicas".
// Without it every replica keeps its own state, which is all one needs.
// MaxBytes bounds that local state.
type Cache struct {
	// MaxBytes bounds the heap the cached snapshots and rendered answers
	// hold, counted allocation by allocation (feed.Options.MaxBytes):
	// past it, the folders used least recently are dropped and read
	// again when asked for. 0: no bound.
	MaxBytes int64 `toml:"max_bytes"`
	// Redis is the URL of the Redis replicas share:
	// redis://[[user]:password@]host[:port][/db], rediss:// for TLS.
	// Empty: none.
	Redis RedisURL `toml:"redis"`
	// RedisPasswordFile holds Redis' password (the URL then holds none).
	RedisPasswordFile string `toml:"redis_password_file"`
	// RedisCAFile adds trusted certificates (PEM) for a rediss:// server
	// with a private CA.
	RedisCAFile string `toml:"redis_ca_file"`
	// RedisTimeout bounds each Redis operation; past it the replica
	// falls back to its local state.
	RedisTimeout Duration `toml:"redis_timeout"`
}

// DefaultCacheMaxBytes is cache.max_bytes when the file does not set it:
// about two million cached events (bench/README.md, "Where a cached
// event's memory goes").
const DefaultCacheMaxBytes = 1 << 30

// RedisURL is a Redis URL, which may hold a password: it prints with the
// password replaced by "xxxxx" and without its query.
type RedisURL string

func (u RedisURL) String() string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(string(u))
	if err != nil {
		return "(a Redis URL that does not parse)"
	}
	return redactURL(p)
}

// redactURL shows u with its password replaced by "xxxxx" and without its
// query and fragment (go-redis reads a password from ?password=).
func redactURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	return v.Redacted()
}

// LogValue keeps the password out of structured logs.
func (u RedisURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// GoString keeps the password out of %#v.
func (u RedisURL) GoString() string { return strconv.Quote(u.String()) }

// RedisPassword returns Redis' password from cache.redis_password_file, or
// "" when the file is not set (the URL's, if any, is then used).
func (c *Config) RedisPassword() (string, error) {
	if c.Cache.RedisPasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.Cache.RedisPasswordFile)
	if err != nil {
		return "", fmt.Errorf("config: cache.redis_password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// validateCache checks the cache keys. Messages show the URL with its
// password replaced, or not at all when it does not parse.
func (c *Config) validateCache(bad func(format string, a ...any)) {
	k := c.Cache
	if k.MaxBytes != 0 && (k.MaxBytes < 1<<20 || k.MaxBytes > 1<<40) {
		bad("cache.max_bytes: %d is neither 0 (no bound) nor between 1 MiB and 1 TiB", k.MaxBytes)
	}
	if k.RedisTimeout < Duration(10*time.Millisecond) || k.RedisTimeout > Duration(30*time.Second) {
		bad("cache.redis_timeout: %s is not between 10ms and 30s", time.Duration(k.RedisTimeout))
	}
	if k.Redis == "" {
		if k.RedisPasswordFile != "" {
			bad("cache.redis_password_file is set but cache.redis is empty")
		}
		if k.RedisCAFile != "" {
			bad("cache.redis_ca_file is set but cache.redis is empty")
		}
		return
	}
	u, err := url.Parse(string(k.Redis))
	if err != nil {
		bad("cache.redis is not a URL like redis://127.0.0.1:6379/0")
		return
	}
	shown := redactURL(u)
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		bad("cache.redis: %s: the scheme is not redis or rediss", shown)
		return
	}
	if u.Opaque != "" || u.Hostname() == "" {
		bad("cache.redis: %s has no host", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			bad("cache.redis: %s: port %q is not between 1 and 65535", shown, p)
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || strconv.Itoa(n) != db {
			bad("cache.redis: %s: %q is not a database number", shown, db)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		bad("cache.redis: %s: query parameters and fragments are not read; use the cache.redis_* keys", shown)
	}
	if _, has := u.User.Password(); has && k.RedisPasswordFile != "" {
		bad("cache.redis holds a password and cache.redis_password_file is set")
	}
	if k.RedisCAFile != "" && u.Scheme != "rediss" {
		bad("cache.redis_ca_file is set but cache.redis is not rediss:// (TLS)")
	}
}
