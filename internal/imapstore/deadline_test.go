package imapstore

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// stallProxy forwards to addr until stall is set; from then on it reads
// but forwards nothing, like a server that hangs with the connection open.
func stallProxy(t *testing.T, addr string, stall *atomic.Bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if n > 0 && !stall.Load() {
						dst.Write(buf[:n])
					}
					if err != nil {
						dst.Close()
						return
					}
				}
			}
			go pipe(s, c)
			go pipe(c, s)
			t.Cleanup(func() { c.Close(); s.Close() })
		}
	}()
	return ln.Addr().String()
}

// TestStalledServer: a server that stops answering in the middle of a
// session fails the command after the timeout, instead of holding the
// caller (and the pool's connection) forever.
func TestStalledServer(t *testing.T) {
	srv := testbed.Get(t)
	var stall atomic.Bool
	addr := stallProxy(t, srv.Addr, &stall)
	s, err := Dial(t.Context(), Options{Addr: addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stall.Store(true)
	done := make(chan error, 1)
	go func() { _, err := s.Folders(context.Background()); done <- err }()
	select {
	case err := <-done:
		// go-imap's decoder words the timeout its own way; what
		// matters is that the command fails and the session is dead.
		if err == nil {
			t.Errorf("Folders on a stalled server succeeded")
		}
		select {
		case <-s.Closed():
		case <-time.After(5 * time.Second):
			t.Errorf("the session is still open after the timeout: a pool would reuse it")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Folders on a stalled server did not return within 30 s (timeout 1 s)")
	}
}
