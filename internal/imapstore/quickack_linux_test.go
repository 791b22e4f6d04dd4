package imapstore

import (
	"net"
	"syscall"
	"testing"

	"github.com/fbpub/fbpub/internal/testbed"
)

// quickAckOn reads c's TCP_QUICKACK.
func quickAckOn(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestQuickAck: every read on an IMAP connection leaves TCP_QUICKACK
// set, which Linux clears as it sees fit: a server socket with Nagle's
// algorithm (Cyrus) otherwise waits up to 40 ms for the acknowledgement
// of a response's next-to-last segment. Sessions are dialled that way.
func TestQuickAck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan struct{})
	defer func() { <-served }()
	go func() {
		defer close(served)
		s, err := l.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		s.Write([]byte("* OK one\r\n"))
		buf := make([]byte, 1)
		s.Read(buf) // the client's byte
		s.Write([]byte("* OK two\r\n"))
		s.Read(buf)
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := quickAck(raw)
	tc := raw.(*net.TCPConn)
	buf := make([]byte, 64)
	for i := range 2 {
		setQuickAck(t, tc, 0)
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if v := quickAckOn(t, tc); v != 1 {
			t.Errorf("read %d: TCP_QUICKACK %d after it, want 1", i, v)
		}
		c.Write([]byte("x"))
	}

	srv := testbed.Get(t)
	s, err := Dial(t.Context(), proxyOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.conn.(*quickAckConn); !ok {
		t.Errorf("a session's connection is a %T, not one that acknowledges at once", s.conn)
	}
}

func setQuickAck(t *testing.T, c *net.TCPConn, v int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, v) })
}
