package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/demo"
	"github.com/fbpub/fbpub/internal/httpapi"
	"github.com/fbpub/fbpub/internal/httpserve"
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
	srv, err := demo.Start(time.Now(), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	cfg := config.Default()
	cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
	cfg.IMAP.User, cfg.IMAP.Password = demo.Proxy, config.Secret(srv.Password)
	cfg.Publish.MailDomain = "example.org"
	s, err := newService(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.pool.Close() })
	return s
}

// BenchmarkCachedFreeBusy is the hot path of an Internet Free/Busy server:
// a cached .vfb, as Outlook asks for it, through the whole handler (route,
// name mapping, access policy, freshness check, cache, headers, metrics),
// without the network. The demo server (no CONDSTORE) is checked once per
// check interval, as in production.
func BenchmarkCachedFreeBusy(b *testing.B) {
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

// BenchmarkCachedFreeBusyHTTP is BenchmarkCachedFreeBusy through a real
// server on loopback, configured as serve configures it, with a minimal
// keep-alive client that allocates nothing: ns/op includes the client and
// the system calls of both sides, allocs/op is the server's, which the
// handler benchmark cannot show. Sub-benchmarks: net/http alone, and the
// lean loop of internal/httpserve in front of it (fast_path, the default).
func BenchmarkCachedFreeBusyHTTP(b *testing.B) {
	s := demoService(b)
	b.Run("net-http", func(b *testing.B) {
		benchHTTP(b, s, func(hs *http.Server, ln net.Listener) func() {
			go hs.Serve(ln)
			return func() { hs.Close() }
		})
	})
	b.Run("lean", func(b *testing.B) {
		benchHTTP(b, s, func(hs *http.Server, ln net.Listener) func() {
			lean := &httpserve.Server{HTTP: hs, Fast: httpapi.FastTarget}
			go lean.Serve(ln)
			return func() { lean.Shutdown(context.Background()) }
		})
	})
}

func benchHTTP(b *testing.B, s *service, serve func(*http.Server, net.Listener) (stop func())) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	defer serve(hs, ln)()
	req := []byte("GET /freebusy/alice@example.org.vfb HTTP/1.1\r\nHost: " + ln.Addr().String() + "\r\n\r\n")
	get := func(c net.Conn, r *bufio.Reader) error {
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
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if err := get(c, bufio.NewReader(c)); err != nil { // fills the cache
		b.Fatal(err)
	}
	c.Close()
	b.ReportAllocs()
	b.SetParallelism(16) // 32 connections on 2 CPUs, as bench/http-vs-nginx
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		r := bufio.NewReaderSize(c, 8192)
		for pb.Next() {
			if err := get(c, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
