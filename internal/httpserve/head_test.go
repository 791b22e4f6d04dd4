package httpserve

import (
	"bufio"
	"bytes"
	"maps"
	"net/http"
	"slices"
	"testing"
)

// FuzzParseHead checks that every head the lean loop accepts is one
// net/http reads without error, and to the same request.
func FuzzParseHead(f *testing.F) {
	for _, r := range requests {
		f.Add([]byte(r.raw))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		end := indexHeadEnd(b)
		if end < 0 {
			return
		}
		b = b[:end]
		h, ok := parseHead(b, func(string) bool { return true })
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("lean loop accepted what net/http refuses (%v): %q", err, b)
		}
		// What net/http's server checks on top of ReadRequest (which
		// refuses two Host fields and moves the one to Request.Host).
		if want.Host == "" {
			t.Fatalf("accepted a request without a Host: %q", b)
		}
		for k, vs := range want.Header {
			for _, v := range vs {
				if !plainValue(v) || !isToken(k) {
					t.Fatalf("accepted field %q: %q", k, v)
				}
			}
		}
		var got http.Request
		h.fill(&got)
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			*got.URL != *want.URL || !maps.EqualFunc(got.Header, want.Header, slices.Equal) {
			t.Fatalf("for %q\nlean: %s %q %q %#v %v\nnet/http: %s %q %q %#v %v", b,
				got.Method, got.RequestURI, got.Host, got.URL, got.Header,
				want.Method, want.RequestURI, want.Host, want.URL, want.Header)
		}
		if want.ProtoMajor != 1 || want.ProtoMinor != 1 || want.Close || want.ContentLength != 0 || want.TransferEncoding != nil {
			t.Fatalf("accepted a request with a body or a close: %q", b)
		}
	})
}
