package testbed

import (
	"net"
	"sync/atomic"
	"testing"
)

// Fault is what a Relay does with what a client sends.
type Fault int

// The faults a Relay can inject.
const (
	// Forward passes the bytes on.
	Forward Fault = iota
	// Stall keeps the connection open but passes nothing on, either
	// way, from then on: a server that hangs.
	Stall
	// Cut closes both sides: a connection that breaks.
	Cut
)

// Relay starts a loopback TCP relay to addr and returns its address. For
// every chunk a client sends, decide is told how many bytes that client
// has sent so far, the chunk included, and says what happens to it. The
// relay stops when the test ends.
func Relay(t testing.TB, addr string, decide func(sent int64) Fault) string {
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
			var sent atomic.Int64
			var stalled atomic.Bool
			go func() { // client → server
				defer s.Close()
				buf := make([]byte, 512)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						switch decide(sent.Add(int64(n))) {
						case Cut:
							c.Close()
							return
						case Stall:
							stalled.Store(true)
						}
						if !stalled.Load() {
							s.Write(buf[:n])
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { // server → client
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 && !stalled.Load() {
						c.Write(buf[:n])
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
