package connlimit

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlots: a connection closed twice frees one slot, and an Accept
// holding a connection for a slot ends when the listener is closed.
func TestSlots(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var open, waited atomic.Int32
	l := Listen(inner, Options{Max: 1, Open: func(d int) { open.Add(int32(d)) }, Waited: func() { waited.Add(1) }})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close()
	if n := open.Load(); n != 0 {
		t.Errorf("open after closing twice = %d, want 0", n)
	}
	dial()
	b, err := l.Accept() // the slot a freed, once
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dial()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept() // holds the connection: b has the slot
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	for waited.Load() == 0 {
		runtime.Gosched() // Accept has not taken the connection yet
		select {
		case err := <-accepted:
			t.Fatalf("Accept returned %v while the slot was taken", err)
		default:
		}
	}
	l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	if n := open.Load(); n != 1 {
		t.Errorf("open = %d, want 1 (b)", n)
	}
}

// TestWriteTimeout: a write to a peer that reads nothing fails at the
// deadline, even after the user cleared it (as net/http does after every
// request), and is counted.
func TestWriteTimeout(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var timedOut atomic.Int32
	l := Listen(inner, Options{WriteTimeout: 200 * time.Millisecond, TimedOut: func() { timedOut.Add(1) }})
	defer l.Close()
	peer, err := net.Dial("tcp", inner.Addr().String()) // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		c.SetWriteDeadline(time.Time{})
		_, err := c.Write(buf)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write = %v, want os.ErrDeadlineExceeded", err)
			}
			break
		}
		if i > 1000 {
			t.Fatal("1 GiB written to a peer that reads nothing")
		}
	}
	if n := timedOut.Load(); n != 1 {
		t.Errorf("TimedOut called %d times, want 1", n)
	}
}
