package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/config"
)

// TestCachedFreeBusyAllocs counts the allocations of a request for a
// cached .vfb through fbpub's whole handler (route, name mapping, access
// policy, freshness check, cache, headers, metrics), as Outlook asks for
// it and in the other forms a calendar client polls with. Folder states
// are trusted for an hour here, so that no request re-reads them: what is
// counted is the cached path alone. A pooled exchange that the garbage
// collector dropped is one allocation in the runs, which the average
// rounds away.
func TestCachedFreeBusyAllocs(t *testing.T) {
	s := demoServiceWith(t, func(c *config.Config) { c.Publish.CheckInterval = config.Duration(time.Hour) })
	first := httptest.NewRecorder()
	s.handler.ServeHTTP(first, httptest.NewRequest("GET", "/freebusy/alice@example.org.vfb", nil))
	if first.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", first.Code, first.Body)
	}
	etag := first.Header().Get("Etag")
	for _, tc := range []struct {
		name   string
		header []string
		code   int
		max    float64
	}{
		{"plain", nil, http.StatusOK, 0},
		{"gzip", []string{"Accept-Encoding", "gzip, deflate"}, http.StatusOK, 0},
		{"request id", []string{"X-Request-Id", "proxy-1234"}, http.StatusOK, 0},
		{"not modified", []string{"If-None-Match", etag}, http.StatusNotModified, 0},
	} {
		req := httptest.NewRequest("GET", "/freebusy/alice@example.org.vfb", nil)
		for i := 0; i < len(tc.header); i += 2 {
			req.Header.Set(tc.header[i], tc.header[i+1])
		}
		w := &discardWriter{h: http.Header{}}
		code := &codeWriter{discardWriter: w}
		s.handler.ServeHTTP(code, req)
		if code.code != tc.code {
			t.Fatalf("%s: code %d, want %d", tc.name, code.code, tc.code)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			clear(w.h)
			s.handler.ServeHTTP(w, req)
		})
		if allocs > tc.max {
			t.Errorf("%s: %v allocations per request, want at most %v", tc.name, allocs, tc.max)
		}
	}
}

// codeWriter is a discardWriter that remembers the status code.
type codeWriter struct {
	*discardWriter
	code int
}

func (w *codeWriter) WriteHeader(code int) { w.code = code }

func (w *codeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}

// TestNotModifiedAsServeContent compares the 304 fbpub writes itself, for
// a client that sends back the entity tag it holds, with the one
// http.ServeContent writes for the weak form of the same tag (which it
// matches too): the same headers, the request ID apart.
func TestNotModifiedAsServeContent(t *testing.T) {
	s := demoService(t)
	get := func(header ...string) *httptest.ResponseRecorder {
		t.Helper()
		req := httptest.NewRequest("GET", "/freebusy/alice@example.org.vfb", nil)
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, req)
		return w
	}
	for _, enc := range []string{"", "gzip"} {
		full := get("Accept-Encoding", enc)
		tag := full.Header().Get("Etag")
		if full.Code != http.StatusOK || tag == "" || full.Header().Get("Content-Encoding") != enc {
			t.Fatalf("GET with Accept-Encoding %q: %d, ETag %q, Content-Encoding %q", enc, full.Code, tag, full.Header().Get("Content-Encoding"))
		}
		own := get("Accept-Encoding", enc, "If-None-Match", tag)
		lib := get("Accept-Encoding", enc, "If-None-Match", "W/"+tag)
		if own.Code != http.StatusNotModified || lib.Code != http.StatusNotModified {
			t.Fatalf("Accept-Encoding %q: If-None-Match %s: %d, W/%s: %d; want 304 twice", enc, tag, own.Code, tag, lib.Code)
		}
		if own.Body.Len() != 0 {
			t.Errorf("Accept-Encoding %q: 304 with a body of %d bytes", enc, own.Body.Len())
		}
		oh, lh := own.Result().Header, lib.Result().Header
		if oh.Get("X-Request-Id") == "" {
			t.Errorf("Accept-Encoding %q: 304 without X-Request-Id", enc)
		}
		oh.Del("X-Request-Id")
		lh.Del("X-Request-Id")
		if !maps.EqualFunc(oh, lh, func(a, b []string) bool { return len(a) == len(b) && (len(a) == 0 || a[0] == b[0]) }) {
			t.Errorf("Accept-Encoding %q: fbpub's 304 headers\n%v\nhttp.ServeContent's\n%v", enc, oh, lh)
		}
	}
}

// TestRequestIDKept checks that a response's X-Request-Id stays as it was
// written after later requests: the writers of finished requests are
// reused, and the header map, which belongs to the caller, must hold
// nothing of them.
func TestRequestIDKept(t *testing.T) {
	s := demoService(t)
	var ws []*httptest.ResponseRecorder
	ids := map[string]bool{}
	for i := range 200 {
		req := httptest.NewRequest("GET", "/freebusy/alice@example.org.vfb", nil)
		if i%2 == 1 {
			req.Header.Set("X-Request-Id", "proxy-"+strconv.Itoa(i))
		}
		w := httptest.NewRecorder()
		s.handler.ServeHTTP(w, req)
		id := w.Header().Get("X-Request-Id")
		if w.Code != http.StatusOK || id == "" || ids[id] {
			t.Fatalf("request %d: %d, X-Request-Id %q (seen before: %v)", i, w.Code, id, ids[id])
		}
		if i%2 == 1 && id != "proxy-"+strconv.Itoa(i) {
			t.Errorf("request %d: X-Request-Id %q, want the proxy's", i, id)
		}
		ids[id] = true
		ws = append(ws, w)
	}
	seen := map[string]bool{}
	for i, w := range ws {
		id := w.Header().Get("X-Request-Id")
		if !ids[id] || seen[id] {
			t.Errorf("request %d: X-Request-Id is %q after the later requests", i, id)
		}
		seen[id] = true
	}
}
