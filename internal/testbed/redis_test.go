package testbed

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedis starts a private Redis, checks that it answers and keeps
// nothing across Kill and Start, and that the requirepass variant refuses
// a client without the password.
func TestRedis(t *testing.T) {
	r := StartRedis(t, nil)
	if !strings.HasPrefix(r.Addr, "127.0.0.1:") || r.URL() != "redis://"+r.Addr+"/0" {
		t.Fatalf("StartRedis: Addr %q, URL %q", r.Addr, r.URL())
	}
	ctx := context.Background()
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	r.Kill(t)
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET after Kill succeeded")
	}
	addr := r.Addr
	r.Start(t)
	if r.Addr != addr {
		t.Errorf("Start moved Redis from %s to %s", addr, r.Addr)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET after Start = %v, want redis.Nil (nothing saved)", err)
	}

	p := StartRedis(t, &RedisOptions{Password: "s3cret/pw"})
	if !strings.Contains(p.URL(), ":s3cret%2Fpw@") {
		t.Errorf("URL() = %q, want the password in it", p.URL())
	}
	anon := redis.NewClient(&redis.Options{Addr: p.Addr, MaxRetries: -1, ReadTimeout: 2 * time.Second})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password = %v, want NOAUTH", err)
	}
	popts, err := redis.ParseURL(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	pc := redis.NewClient(popts)
	defer pc.Close()
	if err := pc.Ping(ctx).Err(); err != nil {
		t.Errorf("PING with the password: %v", err)
	}
}
