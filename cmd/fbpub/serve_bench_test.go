package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// BenchmarkCachedFreeBusy is the hot path of an Internet Free/Busy server:
// a cached .vfb, as Outlook asks for it, through the whole handler (route,
// name mapping, access policy, freshness check, cache, headers, metrics),
// without the network. The demo server (no CONDSTORE) is checked once per
// check interval, as in production.
func BenchmarkCachedFreeBusy(b *testing.B) {
	srv, err := demo.Start(time.Now(), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cfg := config.Default()
	cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
	cfg.IMAP.User, cfg.IMAP.Password = demo.Proxy, config.Secret(srv.Password)
	cfg.Publish.MailDomain = "example.org"
	s, err := newService(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.pool.Close()
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
