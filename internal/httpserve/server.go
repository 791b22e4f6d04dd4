// Package httpserve serves HTTP/1.1 for an http.Server, answering the
// simplest requests on a lean connection loop of its own.
//
// Outlook and calendar clients poll a few URLs (free/busy files) over and
// over, with plain keep-alive GET requests. For those, net/http's general
// machinery (a header map copied and sorted per response, buffered writers,
// a context and a background reader per request) costs more CPU than
// fbpub's handler and the system calls together. A connection here starts
// on a small loop that parses such requests strictly, calls the same
// http.Handler with a minimal ResponseWriter and writes each response in
// one system call. The first request on a connection that is anything
// else (another method or target, a body, an upgrade, HTTP/1.0, a header
// that does not parse cleanly, a head larger than the loop's buffer) hands
// the connection, with every byte already read, to the http.Server, which
// serves it from then on exactly as if it had accepted it. So net/http
// stays the judge of everything unusual; the loop only does what it can
// prove it does the same way (FuzzParseHead compares the two parsers).
package httpserve

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves connections from a listener: simple requests whose target
// Fast accepts on the lean loop, everything else through HTTP.
//
// Differences from net/http on the lean loop, none of which a GET of a
// cached answer can notice: a request's context ends with its connection
// (or Shutdown), not when its handler returns, and a client that goes
// away while the handler runs is noticed when the answer is written (net/http
// reads in the background and cancels the context); the whole response is
// buffered and sent with a Content-Length, never chunked; headers changed
// after WriteHeader are still sent; ConnState sees only the connections
// handed to HTTP.
type Server struct {
	// HTTP serves every connection the loop hands over; its Handler also
	// serves the loop's requests, and its timeouts, BaseContext and
	// ErrorLog apply to both. TLS is not supported.
	HTTP *http.Server
	// Fast reports whether a GET or HEAD request for the given request
	// target (origin form, no query) may be served on the lean loop.
	Fast func(target string) bool

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	handoff  *chanListener
	httpDone chan error
	closing  atomic.Bool
	headMax  int // the largest head the loop reads
}

// headMax is the largest request head the loop reads (or MaxHeaderBytes,
// when smaller); a larger one goes to net/http, which applies its own
// limit.
const headMax = 8 << 10

// Serve accepts connections on ln until Shutdown, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.ln != nil {
		s.mu.Unlock()
		return errors.New("httpserve: Serve called twice")
	}
	s.ln = ln
	s.conns = map[*conn]struct{}{}
	s.headMax = headMax
	if m := s.HTTP.MaxHeaderBytes; m > 0 && m < headMax {
		s.headMax = m
	}
	s.handoff = newChanListener(ln.Addr())
	s.httpDone = make(chan error, 1)
	s.mu.Unlock()
	go func() { s.httpDone <- s.HTTP.Serve(s.handoff) }()

	base := context.Background()
	if s.HTTP.BaseContext != nil {
		if base = s.HTTP.BaseContext(ln); base == nil {
			panic("httpserve: BaseContext returned a nil context")
		}
	}
	base = context.WithValue(base, http.ServerContextKey, s.HTTP)
	var pause time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if temporary(err) {
				// Out of file descriptors and the like: wait, as
				// net/http does, rather than spin.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				s.logf("httpserve: accept error: %v; retrying in %v", err, pause)
				time.Sleep(pause)
				continue
			}
			s.handoff.Close()
			return err
		}
		pause = 0
		c := &conn{srv: s, rwc: rwc}
		if !s.track(c, true) {
			rwc.Close()
			continue
		}
		go c.serve(base)
	}
}

// temporary reports whether an accept error is worth waiting out: a
// timeout, or one that says it is temporary (EMFILE and the like still
// do).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// track adds or removes a connection of the loop; adding fails once the
// server is closing.
func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// Shutdown stops accepting, closes idle connections, lets the requests in
// progress finish (on the loop and in net/http), and returns when all
// connections are gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	ln, httpDone := s.ln, s.httpDone
	s.mu.Unlock()
	if ln == nil {
		return s.HTTP.Shutdown(ctx)
	}
	lnErr := ln.Close()
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.HTTP.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	if err := <-httpErr; err != nil {
		return err
	}
	<-httpDone
	if lnErr != nil && !errors.Is(lnErr, net.ErrClosed) {
		return lnErr
	}
	return nil
}

// closeIdle closes the loop's idle connections and reports how many
// connections it still has.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.rwc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) logf(format string, args ...any) {
	if s.HTTP.ErrorLog != nil {
		s.HTTP.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// conn is one connection on the lean loop.
type conn struct {
	srv *Server
	rwc net.Conn
	// idle is set while the loop waits for a request with nothing of it
	// read yet: Shutdown may then close the connection.
	idle atomic.Bool
	// buf[r:w] holds what was read and not yet served.
	buf  [headMax]byte
	r, w int
	out  []byte // the response being written
	rw   responseWriter
}

// serve runs the loop until the connection ends or is handed over.
func (c *conn) serve(base context.Context) {
	handedOff := false
	defer func() {
		if !handedOff {
			c.rwc.Close()
		}
		c.srv.track(c, false)
	}()
	ctx := context.WithValue(base, http.LocalAddrContextKey, c.rwc.LocalAddr())
	if cc := c.srv.HTTP.ConnContext; cc != nil {
		if ctx = cc(ctx, c.rwc); ctx == nil {
			panic("httpserve: ConnContext returned nil")
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	remote := c.rwc.RemoteAddr().String()
	// One request value per connection, copied for each request: the
	// copy keeps the context without another allocation.
	proto := (&http.Request{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: remote, Body: http.NoBody}).WithContext(ctx)
	first := true
	for {
		end, ok := c.readHead(first)
		if !ok {
			if end < 0 {
				return // closed, timed out or shut down
			}
			handedOff = c.handOff()
			return
		}
		h, ok := parseHead(c.buf[c.r:end], c.srv.Fast)
		if !ok {
			handedOff = c.handOff()
			return
		}
		c.r = end
		first = false
		req := new(http.Request)
		*req = *proto
		h.fill(req)
		if !c.respond(req) {
			return
		}
		if c.srv.closing.Load() {
			return
		}
	}
}

// readHead reads until buf holds a whole request head and returns the
// index just past it. It returns ok false with end -1 when the
// connection is done (closed, timed out, shut down), or with end 0 when
// it should be handed over (the head does not fit).
func (c *conn) readHead(first bool) (end int, ok bool) {
	hs := c.srv.HTTP
	headTimeout := hs.ReadHeaderTimeout
	if headTimeout <= 0 {
		headTimeout = hs.ReadTimeout
	}
	// headBy is when the head must be complete: the header timeout runs
	// from the connection's start for its first request, from the first
	// byte for the next ones, however slowly the bytes come.
	var headBy time.Time
	if headTimeout > 0 && (first || c.r < c.w) {
		headBy = time.Now().Add(headTimeout)
	}
	for {
		if i := indexHeadEnd(c.buf[c.r:c.w]); i >= 0 {
			return c.r + i, true
		}
		// Lines ended by LF alone are net/http's to judge; between
		// keep-alive requests, once it would have read the 4 bytes it
		// waits for (see below).
		if bareLF(c.buf[c.r:c.w]) && (first || c.w-c.r >= 4) {
			return 0, false
		}
		if c.r > 0 {
			c.w = copy(c.buf[:], c.buf[c.r:c.w])
			c.r = 0
		}
		if c.w == c.srv.headMax {
			return 0, false
		}
		deadline := headBy
		if c.w == 0 {
			c.idle.Store(true)
			if c.srv.closing.Load() {
				return -1, false
			}
			// Waiting for the next request: the idle timeout.
			if d := hs.IdleTimeout; d > 0 && !first {
				deadline = time.Now().Add(d)
			}
		} else if headBy.IsZero() && headTimeout > 0 {
			headBy = time.Now().Add(headTimeout)
			deadline = headBy
		}
		c.rwc.SetReadDeadline(deadline)
		n, err := c.rwc.Read(c.buf[c.w:c.srv.headMax])
		c.idle.Store(false)
		c.w += n
		if err != nil {
			// Part of a request, then the end of the stream: net/http
			// reads the part, meets the same end and answers as it
			// does. Except that, between keep-alive requests, net/http
			// first waits for 4 bytes and closes silently when the
			// stream ends before. A timeout or a closed connection just
			// ends.
			var ne net.Error
			if c.r < c.w && (first || c.w-c.r >= 4) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
				return 0, false
			}
			return -1, false
		}
	}
}

// handOff gives the connection, with what was read and not served, to
// the http.Server. It reports false when the server is closing and the
// connection was not taken.
func (c *conn) handOff() bool {
	c.rwc.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c.rwc}
	if c.r < c.w {
		pc.pending = append([]byte(nil), c.buf[c.r:c.w]...)
	}
	return c.srv.handoff.deliver(pc)
}

// respond runs the handler for req and writes its response. It reports
// whether the connection may serve another request.
func (c *conn) respond(req *http.Request) (keep bool) {
	w := &c.rw
	w.reset(req)
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logf("http: panic serving %v: %v\n%s", req.RemoteAddr, v, buf)
			}
			keep = false
		}
	}()
	h := c.srv.HTTP.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, req)
	closing := c.srv.closing.Load() || w.closeAfter || w.short()
	c.out = w.finish(c.out[:0], closing)
	if d := c.srv.HTTP.WriteTimeout; d > 0 {
		c.rwc.SetWriteDeadline(time.Now().Add(d))
	}
	if _, err := c.rwc.Write(c.out); err != nil {
		return false
	}
	if cap(c.out) > 256<<10 {
		c.out = nil // a large answer's buffer is not kept for the next
	}
	return !closing
}

// prefixConn is a connection handed to net/http: reads return first the
// bytes the loop had read and not served.
type prefixConn struct {
	net.Conn
	pending []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// chanListener is the listener the http.Server accepts handed-over
// connections from.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// deliver hands c to the http.Server, or closes it when the server has
// stopped accepting.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		c.Close()
		return false
	}
}
