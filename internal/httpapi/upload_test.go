package httpapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/internal/upload"
)

// setupUploads serves the test bed's calendars with uploads written by
// internal/upload into Dovecot, as fbpub does.
func setupUploads(t *testing.T) *server {
	t.Helper()
	addr := testbed.Get(t).Addr
	svc := upload.New(upload.Options{Dial: func(ctx context.Context, user, password string) (*imapstore.Session, error) {
		return imapstore.Dial(ctx, imapstore.Options{Addr: addr, TLS: imapstore.TLSNone, User: user, Password: password, Timeout: 5 * time.Second})
	}})
	return setupWith(t, time.Second, func(o *Options, _ feed.Source) {
		o.MaxUpload = 1 << 20
		o.Upload = svc.Put
	})
}

// put sends a PUT of body to path with the headers given as name, value
// pairs; a Content-Type of text/calendar unless one is given.
func (s *server) put(t *testing.T, path, body string, hdr ...string) response {
	t.Helper()
	typed := false
	for i := 0; i+1 < len(hdr); i += 2 {
		typed = typed || http.CanonicalHeaderKey(hdr[i]) == "Content-Type"
	}
	if !typed {
		hdr = append([]string{"Content-Type", "text/calendar"}, hdr...)
	}
	return s.send(t, "PUT", path, strings.NewReader(body), hdr...)
}

// TestUploadCharset: an upload in the charset its Content-Type names is
// stored as UTF-8 and served back as it was meant; one that is not
// UTF-8 and names no charset, or names UTF-8, is 400 saying which line,
// and one naming a charset fbpub does not know 415, with nothing written.
func TestUploadCharset(t *testing.T) {
	s := setupUploads(t)
	const path = "/calendar/alice/Calendar.ics"
	planning := strings.TrimSuffix(ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z"), "END:VCALENDAR\r\n")
	latin1 := planning + "BEGIN:VEVENT\r\nUID:c1\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250305T120000Z\r\nDTEND:20250305T130000Z\r\nSUMMARY:Caf\xe9\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	line := 1 + strings.Count(latin1[:strings.Index(latin1, "Caf\xe9")], "\n")
	before := s.do(t, "GET", path, asAlice...)
	for _, ct := range []string{"text/calendar", "text/calendar; charset=utf-8", "text/calendar; charset=UTF-8; method=PUBLISH"} {
		r := s.put(t, path, latin1, append(asAlice, "Content-Type", ct)...)
		if r.code != http.StatusBadRequest || !strings.Contains(r.body, "not valid UTF-8") || !strings.Contains(r.body, "line "+strconv.Itoa(line)) {
			t.Errorf("Latin-1 PUT as %q = %d %q; want 400 naming UTF-8 and line %d", ct, r.code, r.body, line)
		}
	}
	if r := s.put(t, path, latin1, append(asAlice, "Content-Type", "text/calendar; charset=x-martian")...); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("PUT in an unknown charset = %d %q; want 415", r.code, r.body)
	}
	if after := s.do(t, "GET", path, asAlice...); after.hdr.Get("ETag") != before.hdr.Get("ETag") {
		t.Errorf("refused uploads changed the calendar:\n%s", after.body)
	}
	r := s.put(t, path, latin1, append(asAlice, "Content-Type", "text/calendar; charset=iso-8859-1")...)
	if r.code != 200 || !strings.Contains(r.body, "SUMMARY:Café\r\n") {
		t.Errorf("Latin-1 PUT that says so = %d %q:\n%s", r.code, r.hdr.Get("X-Fbpub-Upload"), r.body)
	}
}

// TestUploadPreconditions: a PUT honours If-None-Match and
// If-Unmodified-Since as RFC 9110 §13.2.2 orders them, against the feed
// it would replace, and changes nothing when one fails.
func TestUploadPreconditions(t *testing.T) {
	s := setupUploads(t)
	const path = "/calendar/alice/Calendar.ics"
	cur := s.do(t, "GET", path, asAlice...)
	etag, modified := cur.hdr.Get("ETag"), cur.hdr.Get("Last-Modified")
	if etag == "" || modified == "" {
		t.Fatalf("GET: ETag %q, Last-Modified %q", etag, modified)
	}
	// Would delete a1, the folder's only event.
	other := ics("n1", "New", "20250307T090000Z", "20250307T100000Z")
	for _, tc := range []struct {
		hdr []string
		msg string
	}{
		{[]string{"If-None-Match", "*"}, "If-None-Match"},
		{[]string{"If-None-Match", `"x", ` + etag}, "If-None-Match"},
		{[]string{"If-None-Match", "W/" + etag}, "If-None-Match"},
		{[]string{"If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"}, "If-Unmodified-Since"},
	} {
		r := s.put(t, path, other, append(asAlice, tc.hdr...)...)
		if r.code != http.StatusPreconditionFailed || !strings.Contains(r.body, tc.msg) {
			t.Errorf("PUT with %q = %d %q; want 412 naming %s", tc.hdr, r.code, r.body, tc.msg)
		}
	}
	if after := s.do(t, "GET", path, asAlice...); after.hdr.Get("ETag") != etag {
		t.Fatalf("a PUT whose precondition failed changed the calendar:\n%s", after.body)
	}
	// If-Match, when present, decides, and If-Unmodified-Since is not
	// evaluated (§13.1.4); a date that does not parse is ignored.
	for _, hdr := range [][]string{
		{"If-Match", etag, "If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"},
		{"If-Unmodified-Since", "yesterday"},
		{"If-Unmodified-Since", modified, "If-None-Match", `"something else"`},
	} {
		body := ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z") // as it is: unchanged
		if r := s.put(t, path, body, append(asAlice, hdr...)...); r.code != 200 {
			t.Errorf("PUT with %q = %d %q; want 200", hdr, r.code, r.body)
		}
	}
}

// setupCountedUploads serves the fake source with a stand-in uploader
// that counts its calls, and a 4 KiB upload limit.
func setupCountedUploads(t *testing.T, uploads *atomic.Int64) *unitServer {
	return setupUnit(t, time.Hour, func(o *Options, _ feed.Source) {
		o.MaxUpload = 4096
		o.Upload = func(ctx context.Context, r upload.Request) (upload.Result, error) {
			uploads.Add(1)
			return upload.Result{Unchanged: 1}, nil
		}
	})
}

// TestUploadCompressed: a compressed upload is 415 saying that fbpub
// takes the identity coding only (RFC 7694); fbpub does not decode
// uploads.
func TestUploadCompressed(t *testing.T) {
	var uploads atomic.Int64
	s := setupCountedUploads(t, &uploads)
	const path = "/calendar/alice/Calendar.ics"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(ics("a1", "Planning", "20250303T090000Z", "20250303T100000Z")))
	zw.Close()
	for _, coding := range []string{"gzip", "identity, gzip", "br"} {
		r := s.put(t, path, gz.String(), append(asAlice, "Content-Encoding", coding)...)
		if r.code != http.StatusUnsupportedMediaType || r.hdr.Get("Accept-Encoding") != "identity" || !strings.Contains(r.body, "Content-Encoding") {
			t.Errorf("PUT with Content-Encoding %q = %d, Accept-Encoding %q, %q; want 415 accepting identity", coding, r.code, r.hdr.Get("Accept-Encoding"), r.body)
		}
	}
	if n := uploads.Load(); n != 0 {
		t.Errorf("compressed bodies reached the uploader %d times", n)
	}
}

// TestUploadDeclaredTooLarge: an upload whose declared length is over the
// limit is 413 before its body is asked for: a client that sent Expect:
// 100-continue gets 413, not 100 Continue.
func TestUploadDeclaredTooLarge(t *testing.T) {
	var uploads atomic.Int64
	s := setupCountedUploads(t, &uploads)
	const path = "/calendar/alice/Calendar.ics"
	// A raw request: the head alone, announcing a body it never sends.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: fbpub\r\n%s: %s\r\nContent-Type: text/calendar\r\nContent-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n", path, asAlice[0], asAlice[1])
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT announcing 99999999999 bytes with Expect: 100-continue = %d first; want 413 at once", resp.StatusCode)
	}
	if n := uploads.Load(); n != 0 {
		t.Errorf("an oversized body reached the uploader %d times", n)
	}
}
