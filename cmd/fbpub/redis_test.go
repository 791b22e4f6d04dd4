package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/testbed"
)

// getBody returns the status and body of GET url.
func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzRedis: with cache.redis set (the password from a file),
// /readyz says the shared state's mode and fbpub_redis_up follows it; a
// Redis that dies leaves the replica ready, degraded, and one that comes
// back restores shared mode. Without cache.redis, /readyz and /metrics are
// as before.
func TestReadyzRedis(t *testing.T) {
	const pw = "redis-pw-from-file"
	rs := testbed.StartRedis(t, &testbed.RedisOptions{Password: pw})
	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := runDemoService(t, func(c *config.Config) {
		c.Cache.Redis = config.RedisURL("redis://" + rs.Addr + "/0")
		c.Cache.RedisPasswordFile = pwFile
		c.Cache.RedisTimeout = config.Duration(200 * time.Millisecond)
	})
	base := "http://" + addr
	up := regexp.MustCompile(`(?m)^fbpub_redis_up (\d)$`)
	metric := func() string {
		_, body := getBody(t, base+"/metrics")
		if m := up.FindStringSubmatch(body); m != nil {
			return m[1]
		}
		return "absent"
	}
	code, body := getBody(t, base+"/readyz")
	if want := "ready\nredis: shared (redis://" + rs.Addr + "/0)\n"; code != 200 || body != want {
		t.Errorf("/readyz = %d %q, want 200 %q", code, body, want)
	}
	if m := metric(); m != "1" {
		t.Errorf("fbpub_redis_up = %s, want 1", m)
	}
	// promtool lints the exported Redis metrics with the rest.
	_, exported := getBody(t, base+"/metrics")
	cmd := exec.Command(lookPathOrSkip(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(exported)
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	rs.Kill(t)
	eventually(t, "/readyz to say degraded", func() bool {
		code, body := getBody(t, base+"/readyz")
		return code == 200 && strings.HasPrefix(body, "ready\nredis: degraded since ")
	})
	if m := metric(); m != "0" {
		t.Errorf("fbpub_redis_up with Redis dead = %s, want 0", m)
	}
	rs.Start(t)
	eventually(t, "/readyz to say shared again", func() bool {
		_, body := getBody(t, base+"/readyz")
		return strings.Contains(body, "redis: shared")
	})
	if m := metric(); m != "1" {
		t.Errorf("fbpub_redis_up with Redis back = %s, want 1", m)
	}

	_, plain := runDemoService(t, func(*config.Config) {})
	if code, body := getBody(t, "http://"+plain+"/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz without Redis = %d %q, want 200 \"ready\\n\"", code, body)
	}
	if _, body := getBody(t, "http://"+plain+"/metrics"); strings.Contains(body, "fbpub_redis_") {
		t.Error("/metrics without Redis exports fbpub_redis_ metrics")
	}
}

// TestRedisCAFile: cache.redis_ca_file lets fbpub reach a rediss:// Redis
// whose certificate a private CA signed.
func TestRedisCAFile(t *testing.T) {
	rs := testbed.StartRedis(t, &testbed.RedisOptions{TLS: true})
	_, addr := runDemoService(t, func(c *config.Config) {
		c.Cache.Redis = config.RedisURL(rs.URL())
		c.Cache.RedisCAFile = rs.CAFile
	})
	if code, body := getBody(t, "http://"+addr+"/readyz"); code != 200 || body != "ready\nredis: shared ("+rs.URL()+")\n" {
		t.Errorf("/readyz = %d %q, want shared over %s", code, body, rs.URL())
	}
}
