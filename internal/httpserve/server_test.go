package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lean counts the requests the lean loop served, across tests.
var lean atomic.Int64

// testHandler answers like fbpub's routes do, in the ways that matter to
// framing: ServeContent (HEAD, 304, ranges), errors, large bodies without
// a length, no body, no Content-Type, a panic; and it echoes what it saw
// of the request, so that any difference in parsing shows in the body.
func testHandler(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(*responseWriter); ok {
		lean.Add(1)
	}
	echo := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "method=%s uri=%q host=%q path=%q rawpath=%q query=%q proto=%s close=%v length=%d te=%v\n",
			r.Method, r.RequestURI, r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Proto, r.Close, r.ContentLength, r.TransferEncoding)
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%q\n", k, r.Header[k])
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(&b, "body=%q\n", body)
		return b.String()
	}
	switch r.URL.Path {
	case "/freebusy/alice.vfb":
		w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
		w.Header().Set("Etag", `"v1"`)
		w.Header()["X-Multi"] = []string{"a", "b\r\nInjected: no"}
		http.ServeContent(w, r, "", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), strings.NewReader(echo()))
	case "/freebusy/missing.vfb":
		http.Error(w, "not found", http.StatusNotFound)
	case "/freebusy/big.vfb":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat(echo(), 40))
	case "/freebusy/empty.vfb":
		w.WriteHeader(http.StatusNoContent)
	case "/freebusy/sniff.vfb":
		io.WriteString(w, "<html><body>"+echo())
	case "/freebusy/early.vfb":
		w.Header().Set("Link", "</x>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, echo())
	case "/freebusy/short.vfb":
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "too short")
	case "/freebusy/close.vfb":
		w.Header().Set("Connection", "close")
		io.WriteString(w, echo())
	case "/freebusy/panic.vfb":
		panic("test panic")
	case "/freebusy/abort.vfb":
		panic(http.ErrAbortHandler)
	default:
		io.WriteString(w, echo())
	}
}

func fastFreeBusy(target string) bool { return strings.HasPrefix(target, "/freebusy/") }

// pair serves testHandler twice: with net/http alone, and with the lean
// loop in front of net/http. It returns their addresses.
func pair(t testing.TB) (std, leanAddr string) {
	t.Helper()
	quiet := func() *http.Server {
		return &http.Server{Handler: http.HandlerFunc(testHandler), ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: log0()}
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = quiet()
	ts.Start()
	t.Cleanup(ts.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{HTTP: quiet(), Fast: fastFreeBusy}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ts.Listener.Addr().String(), ln.Addr().String()
}

// outcome is what a client saw of a connection: the responses, in order,
// and how the connection ended.
type outcome struct {
	responses []string
	end       string
}

// talk writes raw to a new connection to addr, closes its side of the
// connection, and reads responses until the server closes its side too.
func talk(t testing.TB, addr string, raw []byte, methods []string) outcome {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	var o outcome
	for i := 0; ; i++ {
		method := http.MethodGet
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				o.end = "timeout"
			case errors.Is(err, io.EOF):
				o.end = "closed"
			default:
				o.end = "broken: " + err.Error()
			}
			return o
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		o.responses = append(o.responses, describe(resp, body, err))
	}
}

// describe renders a response for comparison, without its Date and with
// its framing reduced to what the client got.
func describe(resp *http.Response, body []byte, err error) string {
	resp.Header.Del("Date")
	if resp.Header.Get("Content-Length") != "" || len(resp.TransferEncoding) > 0 {
		// Length or chunks: either frames the same body.
		resp.Header.Del("Content-Length")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	resp.Header.Write(&b)
	// A HEAD answer read as a GET's (FuzzServe cannot tell) takes the
	// next answer as its body, Date field included.
	fmt.Fprintf(&b, "\n%s", dateField.ReplaceAll(body, []byte("Date: (a date)")))
	if err != nil {
		fmt.Fprintf(&b, "\n(body cut short)")
	}
	return b.String()
}

var dateField = regexp.MustCompile(`Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT`)

// requests are raw requests to both servers: what calendar clients send,
// and everything the lean loop must leave to net/http.
var requests = []struct {
	name    string
	raw     string
	methods []string // of the responses, where not GET
}{
	{"plain GET", "GET /freebusy/alice.vfb HTTP/1.1\r\nHost: fb.example.org\r\n\r\n", nil},
	{"Outlook", "GET /freebusy/alice@example.org.vfb HTTP/1.1\r\nAccept: */*\r\nUser-Agent: Microsoft Office/16.0\r\nAccept-Encoding: gzip, deflate\r\nHost: fb.example.org\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n", nil},
	{"HEAD", "HEAD /freebusy/alice.vfb HTTP/1.1\r\nHost: x\r\n\r\n", []string{"HEAD"}},
	{"If-None-Match", "GET /freebusy/alice.vfb HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n", nil},
	{"If-Modified-Since", "GET /freebusy/alice.vfb HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 02 Nov 2026 00:00:00 GMT\r\n\r\n", nil},
	{"Range", "GET /freebusy/alice.vfb HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n", nil},
	{"Authorization and duplicates", "GET /freebusy/x.vfb HTTP/1.1\r\nhost: x:8080\r\nauthorization: Basic Ym9iOnNlY3JldA==\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Tab:\tv \t\r\n\r\n", nil},
	{"Pragma", "GET /freebusy/x.vfb HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", nil},
	{"obs-text", "GET /freebusy/x.vfb HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n", nil},
	{"pipelined", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\nHEAD /freebusy/b.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/missing.vfb HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET", "HEAD"}},
	{"hand-off mid-connection", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\nPOST /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /freebusy/c.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"other route", "GET /calendar/alice.ics HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"query", "GET /freebusy/x.vfb?start=20260101 HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"escaped", "GET /freebusy/al%69ce%2Fx.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"unclean path", "GET /freebusy/../calendar/x.ics HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"absolute form", "GET http://x/freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"HTTP/1.0", "GET /freebusy/a.vfb HTTP/1.0\r\n\r\n", nil},
	{"HTTP/1.0 keep-alive", "GET /freebusy/a.vfb HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /freebusy/b.vfb HTTP/1.0\r\n\r\n", nil},
	{"Connection close", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /freebusy/b.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"no Host", "GET /freebusy/a.vfb HTTP/1.1\r\n\r\n", nil},
	{"two Hosts", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", nil},
	{"bad Host", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: a b\r\n\r\n", nil},
	{"empty Host", "GET /freebusy/a.vfb HTTP/1.1\r\nHost:\r\n\r\n", nil},
	{"space before colon", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", nil},
	{"obs-fold", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", nil},
	{"bare LF", "GET /freebusy/a.vfb HTTP/1.1\nHost: x\n\n", nil},
	{"CR in value", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", nil},
	{"NUL in value", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", nil},
	{"chunked GET", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", nil},
	{"GET with a body", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", nil},
	{"Expect", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", nil},
	{"Upgrade", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", nil},
	{"lower-case method", "get /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"double space", "GET  /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", nil},
	{"TLS hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", nil},
	{"large head", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 10000) + "\r\n\r\n", nil},
	{"404", "GET /freebusy/missing.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"large body", "GET /freebusy/big.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"204", "GET /freebusy/empty.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"sniffed type", "GET /freebusy/sniff.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"sniffed type, HEAD", "HEAD /freebusy/sniff.vfb HTTP/1.1\r\nHost: x\r\n\r\n", []string{"HEAD"}},
	{"HEAD without length", "HEAD /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/b.vfb HTTP/1.1\r\nHost: x\r\n\r\n", []string{"HEAD"}},
	{"early hints", "GET /freebusy/early.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"short body", "GET /freebusy/short.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"handler closes", "GET /freebusy/close.vfb HTTP/1.1\r\nHost: x\r\n\r\nGET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"panic", "GET /freebusy/panic.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"abort", "GET /freebusy/abort.vfb HTTP/1.1\r\nHost: x\r\n\r\n", nil},
	{"truncated head", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n", nil},
}

// TestSameAsNetHTTP sends every request to both servers and compares what
// a client gets: statuses, headers (but Date), bodies, and whether the
// connection stays open.
func TestSameAsNetHTTP(t *testing.T) {
	std, lean := pair(t)
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			want := talk(t, std, []byte(r.raw), r.methods)
			got := talk(t, lean, []byte(r.raw), r.methods)
			if !slices.Equal(got.responses, want.responses) || got.end != want.end {
				t.Errorf("lean loop:\n%s\nnet/http:\n%s", show(got), show(want))
			}
		})
	}
}

func show(o outcome) string {
	return fmt.Sprintf("%d responses, %s\n%s", len(o.responses), o.end, strings.Join(o.responses, "\n----\n"))
}

// TestLeanPath checks that what calendar clients send is served on the
// lean loop, and that a connection handed to net/http stays with it.
func TestLeanPath(t *testing.T) {
	_, addr := pair(t)
	for _, c := range []struct {
		raw  string
		lean int64
	}{
		{requests[0].raw, 1},
		{requests[1].raw, 1},
		{requests[9].raw, 3},  // pipelined
		{requests[10].raw, 1}, // the requests after the POST go to net/http
		{requests[11].raw, 0}, // another route
		{requests[16].raw, 0}, // HTTP/1.0
	} {
		before := lean.Load()
		talk(t, addr, []byte(c.raw), nil)
		if got := lean.Load() - before; got != c.lean {
			t.Errorf("%q: %d requests on the lean loop, want %d", c.raw, got, c.lean)
		}
	}
}

// TestSlowClient sends a request byte by byte: the loop must wait for
// the whole head, as net/http does.
func TestSlowClient(t *testing.T) {
	_, addr := pair(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := "GET /freebusy/slow.vfb HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := range raw {
		if _, err := c.Write([]byte{raw[i]}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`path="/freebusy/slow.vfb"`)) {
		t.Errorf("got %s\n%s", resp.Status, body)
	}
}

// TestTimeouts checks that the loop closes a connection that sends half a
// head, and an idle one, after the server's timeouts.
func TestTimeouts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(testHandler), ReadHeaderTimeout: 200 * time.Millisecond,
		IdleTimeout: 300 * time.Millisecond, ErrorLog: log0()}, Fast: fastFreeBusy}
	go s.Serve(ln)
	defer s.Shutdown(context.Background())
	// A client that sends a byte now and then must not hold the
	// connection past the header timeout.
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	start := time.Now()
	for i := 0; ; i++ {
		if _, err := slow.Write([]byte("GET /freebusy/a.vfb HTTP/1.1\r\nX-Slow: 1"[i%20 : i%20+1])); err != nil || time.Since(start) > 3*time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	slow.SetReadDeadline(time.Now().Add(time.Second))
	// Closed: EOF, or a reset if a byte arrived after the close.
	var ne net.Error
	if _, err := slow.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("a client trickling its head kept the connection for %v: %v", time.Since(start), err)
	}

	for _, raw := range []string{"GET /freebusy/a.vfb HTTP/1.1\r\nHo", "GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n", ""} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(raw))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		start := time.Now()
		_, err = io.Copy(io.Discard, c) // until the server closes
		c.Close()
		if err != nil {
			t.Errorf("%q: connection not closed by the server: %v", raw, err)
		} else if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("%q: closed after %v, before the timeout", raw, d)
		}
	}
}

// TestShutdown checks that Shutdown lets a request in progress finish,
// closes idle connections on both paths, and returns.
func TestShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/freebusy/slow.vfb" {
			close(entered)
			<-release
		}
		io.WriteString(w, "done")
	})
	s := &Server{HTTP: &http.Server{Handler: h, ErrorLog: log0()}, Fast: fastFreeBusy}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	addr := ln.Addr().String()
	dial := func(raw string) *bufio.Reader {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte(raw))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		return bufio.NewReader(c)
	}
	idleLean := dial("GET /freebusy/a.vfb HTTP/1.1\r\nHost: x\r\n\r\n")
	idleStd := dial("GET /calendar/a.ics HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, br := range []*bufio.Reader{idleLean, idleStd} {
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("first answers: %v", err)
		} else {
			io.Copy(io.Discard, resp.Body)
		}
	}
	busy := dial("GET /freebusy/slow.vfb HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	var wg sync.WaitGroup
	var shutErr error
	wg.Go(func() { shutErr = s.Shutdown(context.Background()) })
	for _, br := range []*bufio.Reader{idleLean, idleStd} {
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("idle connection not closed: %v", err)
		}
	}
	close(release)
	resp, err := http.ReadResponse(busy, nil)
	if err != nil {
		t.Fatalf("request in progress: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "done" || !resp.Close {
		t.Errorf("request in progress got %q, close %v", body, resp.Close)
	}
	wg.Wait()
	if shutErr != nil {
		t.Errorf("Shutdown: %v", shutErr)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// FuzzServe sends arbitrary bytes to both servers and compares what a
// client gets, as TestSameAsNetHTTP does for its table.
func FuzzServe(f *testing.F) {
	for _, r := range requests {
		f.Add([]byte(r.raw))
	}
	std, lean := pair(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		want := talk(t, std, raw, nil)
		got := talk(t, lean, raw, nil)
		if !slices.Equal(got.responses, want.responses) || got.end != want.end {
			t.Errorf("for %q\nlean loop:\n%s\nnet/http:\n%s", raw, show(got), show(want))
		}
	})
}

// log0 discards the servers' error logs: panics and bad requests are
// expected here.
func log0() *log.Logger { return log.New(io.Discard, "", 0) }
