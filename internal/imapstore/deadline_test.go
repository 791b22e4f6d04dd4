package imapstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestStalledServer: a server that stops answering in the middle of a
// session fails the command after the timeout, instead of holding the
// caller (and the pool's connection) forever.
func TestStalledServer(t *testing.T) {
	srv := testbed.Get(t)
	var stall atomic.Bool
	addr := testbed.Relay(t, srv.Addr, func(int64) testbed.Fault {
		if stall.Load() {
			return testbed.Stall
		}
		return testbed.Forward
	})
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
