package imapstore

import (
	"net"
	"syscall"
)

// quickAck makes c acknowledge what it reads at once (TCP_QUICKACK, set
// again after every read: Linux clears it as it sees fit). An IMAP server
// whose socket keeps Nagle's algorithm (Cyrus 3.6 here) holds the last
// segment of a response that spans several until the previous ones are
// acknowledged, and Linux delays an acknowledgement up to 40 ms when the
// receiver has nothing to send: a FETCH of a 30-event calendar took 45 ms
// on Cyrus, 2-4 ms with this (bench/README.md, "2026-12-07, 18:00–18:35").
func quickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, rc: rc}
}

type quickAckConn struct {
	*net.TCPConn
	rc syscall.RawConn
}

func (q *quickAckConn) Read(b []byte) (int, error) {
	n, err := q.TCPConn.Read(b)
	if n > 0 {
		_ = q.rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return n, err
}
