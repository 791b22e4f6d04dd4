package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/demo"
)

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures fbpub and not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// demoService is fbpub's service on the demo's embedded IMAP server, as
// serve sets it up; it is closed when b ends.
func demoService(b testing.TB) *service {
	return demoServiceWith(b, func(*config.Config) {})
}

// demoServiceWith is demoService with the configuration changed by set.
func demoServiceWith(b testing.TB, set func(*config.Config)) *service {
	srv, err := demo.Start(time.Now(), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	cfg := config.Default()
	cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
	cfg.IMAP.User, cfg.IMAP.Password = demo.Proxy, config.Secret(srv.Password)
	cfg.Publish.MailDomain = "example.org"
	set(&cfg)
	s, err := newService(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.pool.Close() })
	return s
}

// BenchmarkCachedFreeBusyHandler is the hot path of an Internet Free/Busy
// server: a cached .vfb, as Outlook asks for it, through the whole handler
// (route, name mapping, access policy, freshness check, cache, headers,
// metrics), without the network. The demo server (no CONDSTORE) is checked
// once per check interval, as in production.
func BenchmarkCachedFreeBusyHandler(b *testing.B) {
	s := demoService(b)
	req := httptest.NewRequest("GET", "/freebusy/alice@example.org.vfb", nil)
	w := &discardWriter{h: http.Header{}}
	s.handler.ServeHTTP(w, req)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			s.handler.ServeHTTP(w, req)
		}
	})
}

// BenchmarkCachedFreeBusy serves a cached .vfb over loopback from fbpub
// (its handler on net/http, with the connection limits, as serve sets it
// up) and from a bare net/http server that writes the same bytes, as
// bench/gostatic does, in one run. 32 keep-alive connections to each (as
// bench/http-vs-nginx), with a minimal client that allocates nothing, take
// turns: each op is one round of requests to each server, in alternating
// order, so that the machine's other load falls on both alike.
//
// Reported: fbpub/bare, the throughput of fbpub over that of the bare
// server (the target is at least 0.85); fbpub/bare-cpu, the same from the
// process's CPU time per request (client and server; steadier than
// throughput when other jobs load the machine); the wall time per request
// of each (all connections at once); and the allocations per request of
// each server.
func BenchmarkCachedFreeBusy(b *testing.B) {
	const conns, per = 32, 16 // per connection and round
	s := demoService(b)
	hs := s.httpServer()
	fbpub := serveLoopback(b, hs, s.limit)
	path := "/freebusy/alice@example.org.vfb"
	res, err := http.Get("http://" + fbpub + path) // fills the cache
	if err != nil {
		b.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || len(body) == 0 {
		b.Fatalf("GET %s: %s, %d bytes, %v", path, res.Status, len(body), err)
	}
	ctype, length := res.Header["Content-Type"], []string{strconv.Itoa(len(body))}
	// net/http sets the Content-Length of a body written whole that fits
	// its 2 KiB buffer itself, which is cheaper; a larger one needs it.
	implicit := len(body) <= 2048
	bare := serveLoopback(b, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = ctype
		if !implicit {
			h["Content-Length"] = length
		}
		w.Write(body)
	})}, nil)

	fc, bc := newLoadClient(b, fbpub, path, conns), newLoadClient(b, bare, path, conns)
	type totals struct {
		wall, cpu time.Duration
		allocs    uint64
	}
	var ms runtime.MemStats
	measure := func(lc *loadClient, t *totals) {
		runtime.ReadMemStats(&ms)
		m0, c0 := ms.Mallocs, cpuTime(b)
		d, err := lc.round(per)
		if err != nil {
			b.Fatal(err)
		}
		c1 := cpuTime(b)
		runtime.ReadMemStats(&ms)
		t.wall += d
		t.cpu += c1 - c0
		t.allocs += ms.Mallocs - m0
	}
	var warm, f, bt totals
	measure(fc, &warm)
	measure(bc, &warm)
	rounds := 0
	for b.Loop() {
		if rounds%2 == 0 {
			measure(fc, &f)
			measure(bc, &bt)
		} else {
			measure(bc, &bt)
			measure(fc, &f)
		}
		rounds++
	}
	n := float64(rounds * conns * per)
	tf, tb, af, ab := f.wall, bt.wall, f.allocs, bt.allocs
	b.ReportMetric(float64(tb)/float64(tf), "fbpub/bare")
	b.ReportMetric(float64(bt.cpu)/float64(f.cpu), "fbpub/bare-cpu")
	b.ReportMetric(float64(tf.Nanoseconds())/n, "fbpub-ns/req")
	b.ReportMetric(float64(tb.Nanoseconds())/n, "bare-ns/req")
	b.ReportMetric(float64(af)/n, "fbpub-allocs/req")
	b.ReportMetric(float64(ab)/n, "bare-allocs/req")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serveLoopback serves hs on a loopback port, through wrap when it is not
// nil, until b ends, and returns the address.
func serveLoopback(b testing.TB, hs *http.Server, wrap func(net.Listener) net.Listener) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	if wrap != nil {
		ln = wrap(ln)
	}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	b.Cleanup(func() { hs.Close(); <-done })
	return addr
}

// loadClient holds keep-alive connections to one server, each with a
// goroutine that sends GETs of one path when told, one at a time.
type loadClient struct {
	work []chan int
	done chan error
}

func newLoadClient(b testing.TB, addr, path string, conns int) *loadClient {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	lc := &loadClient{done: make(chan error, conns)}
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		w := make(chan int)
		lc.work = append(lc.work, w)
		b.Cleanup(func() { close(w); c.Close() })
		go func() {
			r := bufio.NewReaderSize(c, 8192)
			for n := range w {
				var err error
				for range n {
					if err = getCached(c, r, req); err != nil {
						break
					}
				}
				lc.done <- err
			}
		}()
	}
	return lc
}

// round sends n GETs on every connection at once, and returns how long
// they took.
func (lc *loadClient) round(n int) (time.Duration, error) {
	t0 := time.Now()
	for _, w := range lc.work {
		w <- n
	}
	var first error
	for range lc.work {
		if err := <-lc.done; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(t0), first
}

// getCached sends req on c and reads a 200 answer with a Content-Length from r,
// allocating nothing.
func getCached(c net.Conn, r *bufio.Reader, req []byte) error {
	if _, err := c.Write(req); err != nil {
		return err
	}
	status, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status %q", status)
	}
	n := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n = 0
			for _, d := range bytes.TrimSpace(v) {
				n = n*10 + int(d-'0')
			}
		}
	}
	if n < 0 {
		return errors.New("no Content-Length")
	}
	_, err = r.Discard(n)
	return err
}
