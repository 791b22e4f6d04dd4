package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/httpapi"
	"github.com/fbpub/fbpub/internal/httpserve"
)

// TestFastPathSameAnswers serves the demo through net/http alone and
// through the lean loop (fast_path), as serve sets them up, and checks
// that what Outlook and calendar clients ask for gets the same answer,
// byte for byte but the Date and a generated X-Request-Id: status, every
// header, the body, gzip, 304, HEAD, ranges, errors.
func TestFastPathSameAnswers(t *testing.T) {
	s := demoService(t)
	serve := func(lean bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		if lean {
			ls := &httpserve.Server{HTTP: hs, Fast: httpapi.FastTarget}
			go ls.Serve(ln)
			t.Cleanup(func() { ls.Shutdown(context.Background()) })
		} else {
			go hs.Serve(ln)
			t.Cleanup(func() { hs.Close() })
		}
		return ln.Addr().String()
	}
	std, lean := serve(false), serve(true)

	// The entity tag of alice's free/busy, for conditional requests.
	resp, err := http.Get("http://" + std + "/freebusy/alice@example.org.vfb")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("Etag")
	if resp.StatusCode != 200 || etag == "" {
		t.Fatalf("demo answered %s, ETag %q", resp.Status, etag)
	}

	vfb := "GET /freebusy/alice@example.org.vfb HTTP/1.1\r\nHost: fb.example.org\r\n"
	for _, c := range []struct{ name, raw, method string }{
		{"Outlook", "GET /freebusy/alice@example.org.vfb HTTP/1.1\r\nAccept: */*\r\nUser-Agent: Microsoft Office/16.0\r\nHost: fb.example.org\r\nConnection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n", "GET"},
		{"login name, .ifb", "GET /freebusy/bob.ifb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"extended", "GET /freebusy/carol@example.org.xfb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"gzip", vfb + "Accept-Encoding: gzip, deflate\r\n\r\n", "GET"},
		{"If-None-Match", vfb + "If-None-Match: " + etag + "\r\n\r\n", "GET"},
		{"If-None-Match, other", vfb + "If-None-Match: \"other\"\r\n\r\n", "GET"},
		{"If-Modified-Since", vfb + "If-Modified-Since: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat) + "\r\n\r\n", "GET"},
		{"Range", vfb + "Range: bytes=0-15\r\n\r\n", "GET"},
		{"HEAD", "HEAD /freebusy/alice@example.org.vfb HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD"},
		{"unknown user", "GET /freebusy/nobody@example.org.vfb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"unknown extension", "GET /freebusy/alice.txt HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"overlong name", "GET /freebusy/" + strings.Repeat("a", 300) + ".vfb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"bad authorization", vfb + "Authorization: Bearer abc\r\n\r\n", "GET"},
		{"no file", "GET /freebusy/ HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"trigger", "GET /freebusy/trigger/alice/Calendar.pfb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"escaped", "GET /freebusy/alice%40example.org.vfb HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
		{"feed after free/busy", vfb + "\r\nGET /calendar/alice.ics HTTP/1.1\r\nHost: x\r\n\r\n", "GET"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The caller's request ID runs through: the answers must
			// not differ by a generated one.
			raw := strings.ReplaceAll(c.raw, "Host: ", "X-Request-ID: test-1\r\nHost: ")
			n := strings.Count(raw, " HTTP/1.1\r\n")
			want, got := exchange(t, std, raw, c.method, n), exchange(t, lean, raw, c.method, n)
			if got != want {
				t.Errorf("lean loop:\n%s\nnet/http:\n%s", got, want)
			}
		})
	}
}

// exchange sends raw on a new connection and returns the n answers, each
// as status, headers (sorted, Date left out) and body. The connection
// stays open: net/http cancels a request whose client closed its side.
func exchange(t *testing.T, addr, raw, method string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var b strings.Builder
	for range n {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Header.Del("Date")
		fmt.Fprintf(&b, "%s %s\n", resp.Proto, resp.Status)
		resp.Header.Write(&b)
		fmt.Fprintf(&b, "\n%q (%v)\n----\n", body, err)
	}
	return b.String()
}
