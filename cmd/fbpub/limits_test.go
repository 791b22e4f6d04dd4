package main

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/testbed"
)

// runDemoService runs fbpub's service, configured by set, on the demo's
// embedded IMAP server until the test ends, and returns it with its HTTP
// address.
func runDemoService(t *testing.T, set func(*config.Config)) (*service, string) {
	t.Helper()
	s := demoServiceWith(t, func(c *config.Config) {
		c.Listen = "127.0.0.1:0"
		set(c)
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready, errc := make(chan string, 1), make(chan error, 1)
	go func() { errc <- s.run(ctx, ready) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return s, addr
	case err := <-errc:
		t.Fatalf("run: %v", err)
	}
	return nil, ""
}

// eventually fails the test if cond does not hold within a generous
// bound; it is for what happens on another goroutine, not for timing.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 30 s: %s", what)
		}
	}
}

func value(c prometheus.Collector) int { return int(testutil.ToFloat64(c)) }

// TestClientThatNeverReads: a client that pipelines GETs and never reads
// the answers fills the socket buffers and leaves fbpub blocked in a
// write; after http.write_timeout fbpub closes the connection, counts it,
// and goes on serving others.
func TestClientThatNeverReads(t *testing.T) {
	s, addr := runDemoService(t, func(c *config.Config) { c.HTTP.WriteTimeout = config.Duration(time.Second) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096) // fill up sooner
	batch := []byte(strings.Repeat("GET /freebusy/alice@example.org.vfb HTTP/1.1\r\nHost: fbpub\r\n\r\n", 64))
	cut := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(batch); err != nil {
				cut <- err // fbpub closed the connection
				return
			}
		}
	}()
	select {
	case err := <-cut:
		t.Logf("the client's write failed: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("a client that never reads still holds its connection after 60 s (http.write_timeout is 1 s)")
	}
	if n := value(s.metrics.HTTPWriteTimeouts); n != 1 {
		t.Errorf("fbpub_http_write_timeouts_total = %d, want 1", n)
	}
	eventually(t, "fbpub_http_connections back to 0", func() bool { return value(s.metrics.HTTPConnections) == 0 })
	res, err := http.Get("http://" + addr + "/freebusy/alice@example.org.vfb")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("a normal client after it: %v, %v", res, err)
	}
	res.Body.Close()
}

// TestConnectionBound: with http.max_connections open, a further client
// waits, unserved, and is served once one of them closes.
func TestConnectionBound(t *testing.T) {
	s, addr := runDemoService(t, func(c *config.Config) { c.HTTP.MaxConnections = 2 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request answered proves the connection was accepted; it
		// then stays open (keep-alive).
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: fbpub\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz on connection %d: %v, %v", len(held)+1, res, err)
		}
		res.Body.Close()
		held = append(held, c)
	}
	if n := value(s.metrics.HTTPConnections); n != 2 {
		t.Errorf("fbpub_http_connections = %d, want 2", n)
	}
	type result struct {
		res *http.Response
		err error
	}
	third := make(chan result, 1)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 60 * time.Second}
	defer client.CloseIdleConnections()
	go func() {
		res, err := client.Get("http://" + addr + "/freebusy/alice@example.org.vfb")
		third <- result{res, err}
	}()
	eventually(t, "the third connection waits", func() bool { return value(s.metrics.HTTPConnectionsWaited) == 1 })
	select {
	case r := <-third:
		t.Fatalf("the third connection was answered while two were open: %v, %v", r.res, r.err)
	default:
	}
	if n := value(s.metrics.HTTPConnections); n != 2 {
		t.Errorf("fbpub_http_connections = %d while one waits, want 2", n)
	}
	held[0].Close()
	r := <-third
	if r.err != nil || r.res.StatusCode != http.StatusOK {
		t.Fatalf("the third connection once a slot freed: %v, %v", r.res, r.err)
	}
	r.res.Body.Close()
}

// TestRemovedSettingWarns: serve still starts with FBPUB_FAST_PATH set,
// and logs that it was removed.
func TestRemovedSettingWarns(t *testing.T) {
	env := map[string]string{"FBPUB_FAST_PATH": "true", "FBPUB_LISTEN": "127.0.0.1:0", "FBPUB_IMAP_ADDR": "127.0.0.1:1"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // serve starts, then shuts down at once
	var logs syncBuffer
	if err := serve(ctx, nil, &logs, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("serve with FBPUB_FAST_PATH set: %v", err)
	}
	if want := "FBPUB_FAST_PATH was removed and is ignored"; !strings.Contains(logs.String(), want) {
		t.Errorf("serve's log lacks %q:\n%s", want, logs.String())
	}
}

// TestConnectionLimitIsNotAuthFailure: when Dovecot refuses the proxy's
// login because of mail_max_userip_connections, fbpub answers 503 and logs
// Dovecot's reason, not "authentication failed", and serves again once a
// connection is free. A requester whose credential check meets the limit
// gets 503, not 401, and is not remembered as having a wrong password.
func TestConnectionLimitIsNotAuthFailure(t *testing.T) {
	// 2, not 1: Dovecot counts a session that logged out for a moment
	// longer, and the test bed's set-up logs in as alice twice in a row.
	srv := testbed.StartDovecot(t, "mail_max_userip_connections = 2")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	// Another replica holds the two connections allowed.
	others := []*imapclient.Client{srv.Dial(t, testbed.Proxy), srv.Dial(t, testbed.Proxy)}

	cfg := config.Default()
	cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
	cfg.IMAP.User, cfg.IMAP.Password = testbed.Proxy, config.Secret(testbed.Password(testbed.Proxy))
	cfg.Publish.MailDomain, cfg.Publish.Watch = "example.org", 0
	var logs syncBuffer
	s, err := newService(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.pool.Close()
	hs := httptest.NewServer(s.handler)
	defer hs.Close()

	res, err := http.Get(hs.URL + "/freebusy/alice.vfb")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET with the connection limit reached = %d, want 503", res.StatusCode)
	}
	log := logs.String()
	for _, want := range []string{"NO [LIMIT] Maximum number of connections from user+IP exceeded", "mail_max_userip_connections=2"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "authentication failed") {
		t.Errorf("log calls the connection limit an authentication failure:\n%s", log)
	}

	others[0].Logout().Wait()
	others[0].Close()
	eventually(t, "GET answers 200 once a connection is free", func() bool {
		res, err := http.Get(hs.URL + "/freebusy/alice.vfb")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	// bob's own connections, elsewhere on fbpub's address, use up his.
	bobs := []*imapclient.Client{srv.Dial(t, "bob"), srv.Dial(t, "bob")}
	getAsBob := func() int {
		req, _ := http.NewRequest("GET", hs.URL+"/calendar/alice/Calendar.ics", nil)
		req.SetBasicAuth("bob", testbed.Password("bob"))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := getAsBob(); code != http.StatusServiceUnavailable {
		t.Errorf("GET as bob with his connection limit reached = %d, want 503", code)
	}
	bobs[0].Logout().Wait()
	bobs[0].Close()
	eventually(t, "GET as bob answers 200 once one of his connections is gone", func() bool { return getAsBob() == http.StatusOK })
}
