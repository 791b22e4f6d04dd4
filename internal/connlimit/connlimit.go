// Package connlimit bounds how many connections a listener hands out at
// once, and how long a write on one of them may block.
//
// It is what keeps HTTP clients from holding fbpub's connections for ever:
// net/http's ReadHeaderTimeout and IdleTimeout end connections whose
// clients stop sending, but a client that sends requests and never reads
// the answers keeps the server blocked in a write (net/http's WriteTimeout
// would count the handler's wait for IMAP too, which may be long).
package connlimit

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options say how a Listener limits its connections. The functions, when
// set, must be safe for concurrent use and must not block.
type Options struct {
	// Max bounds the open connections: Accept holds a further one,
	// unserved, until another is closed (later ones wait in the
	// system's listen queue). 0 means no bound.
	Max int
	// WriteTimeout is how long one write on a connection may block before
	// it fails and the server closes the connection: at least 7/8 of it
	// and at most all of it (the deadline is moved on in steps of 1/8, not
	// at every write); large writes get it per writeChunk. 0 means no
	// deadline.
	WriteTimeout time.Duration

	// Open is called with +1 for each connection handed out and -1 when
	// it is closed.
	Open func(delta int)
	// Waited is called when a connection had to wait for a free slot.
	Waited func()
	// TimedOut is called when a write failed at its deadline.
	TimedOut func()
}

// writeChunk is the most a write sends under one deadline, so that a client
// reading a large answer slowly but steadily is not cut off.
const writeChunk = 64 << 10

// Listener wraps a net.Listener; see Listen. Accept and Close may be
// called concurrently, as net.Listener allows.
type Listener struct {
	net.Listener
	opts Options
	// slots holds a token for each open connection, when Max > 0.
	slots     chan struct{}
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

// Listen returns ln limited as opts say.
func Listen(ln net.Listener, opts Options) *Listener {
	l := &Listener{Listener: ln, opts: opts, done: make(chan struct{})}
	if opts.Max > 0 {
		l.slots = make(chan struct{}, opts.Max)
	}
	return l
}

// Accept waits for a connection and, when Max are open, for one of them
// to close.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			if l.opts.Waited != nil {
				l.opts.Waited()
			}
			select {
			case l.slots <- struct{}{}:
			case <-l.done:
				c.Close()
				return nil, net.ErrClosed
			}
		}
	}
	if l.opts.Open != nil {
		l.opts.Open(+1)
	}
	return &conn{Conn: c, l: l}, nil
}

// Close closes the listener; a connection waiting in Accept for a slot is
// closed too.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// conn is a connection handed out by a Listener. It owns its write
// deadline: it sets one before a write, and ignores the write deadlines its
// user sets (net/http clears the deadline after every request, and
// http.ResponseController's would be replaced at the next write anyway).
type conn struct {
	net.Conn
	l      *Listener
	closed atomic.Bool
	// deadline is the write deadline set last, in Unix nanoseconds.
	deadline atomic.Int64
}

func (c *conn) Write(p []byte) (int, error) {
	d := c.l.opts.WriteTimeout
	if d <= 0 {
		return c.Conn.Write(p)
	}
	n := 0
	for {
		chunk := p[:min(len(p), writeChunk)]
		// Setting a deadline updates a runtime timer, a cost of its own
		// for small answers on a busy connection: it is moved on only
		// once it is d/8 old.
		if next := time.Now().Add(d).UnixNano(); next-c.deadline.Load() > int64(d/8) {
			_ = c.Conn.SetWriteDeadline(time.Unix(0, next))
			c.deadline.Store(next)
		}
		m, err := c.Conn.Write(chunk)
		n += m
		p = p[m:]
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && c.l.opts.TimedOut != nil {
				c.l.opts.TimedOut()
			}
			return n, err
		}
		if len(p) == 0 {
			return n, nil
		}
	}
}

// SetWriteDeadline does nothing: see conn.
func (c *conn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only: see conn.
func (c *conn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// CloseWrite half-closes the connection where it can, as net/http does
// before it closes a connection whose request it did not read to the end.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close closes the connection and, the first time, frees its slot.
func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		if c.l.slots != nil {
			<-c.l.slots
		}
		if c.l.opts.Open != nil {
			c.l.opts.Open(-1)
		}
	}
	return err
}
