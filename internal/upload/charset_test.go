package upload

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestUTF8Text: an upload is UTF-8 when it names no charset, and is
// converted from the one it names; text not valid in its charset is
// refused with the line of the first invalid octet, never stored with the
// octet or a U+FFFD in its place.
func TestUTF8Text(t *testing.T) {
	for _, c := range []struct {
		body, charset string
		want          string // "" for an error
		line          int    // of the *EncodingError
		unknown       bool   // ErrCharset
	}{
		{body: "SUMMARY:Café", want: "SUMMARY:Café"},
		{body: "SUMMARY:Café", charset: "UTF-8", want: "SUMMARY:Café"},
		{body: "SUMMARY:Caf\xe9", charset: "iso-8859-1", want: "SUMMARY:Café"},
		{body: "SUMMARY:Caf\xe9", charset: "windows-1252", want: "SUMMARY:Café"},
		{body: "A\r\nSUMMARY:Caf\xe9", line: 2},
		{body: "A\r\nB\r\nSUMMARY:Caf\xe9", charset: "utf-8", line: 3},
		{body: "A\nSUMMARY:Caf\xe9", charset: "utf8", line: 2},
		{body: "A\r\nSUMMARY:\x82\xa0\xff", charset: "shift_jis", line: 2}, // 0xFF is no Shift_JIS
		{body: "SUMMARY:x", charset: "x-unknown", unknown: true},
		{body: "SUMMARY:\uFFFD kept", want: "SUMMARY:\uFFFD kept"},
	} {
		got, err := utf8Text([]byte(c.body), c.charset)
		var ee *EncodingError
		switch {
		case c.unknown:
			if !errors.Is(err, ErrCharset) {
				t.Errorf("utf8Text(%q, %q) = %q, %v; want ErrCharset", c.body, c.charset, got, err)
			}
		case c.line != 0:
			if !errors.As(err, &ee) || ee.Line != c.line || !errors.Is(err, ErrBadInput) {
				t.Errorf("utf8Text(%q, %q) = %q, %v; want an EncodingError for line %d", c.body, c.charset, got, err, c.line)
			}
		case err != nil || string(got) != c.want:
			t.Errorf("utf8Text(%q, %q) = %q, %v; want %q", c.body, c.charset, got, err, c.want)
		}
	}
}

// TestCharsetUpload: a Latin-1 upload that says so is stored as UTF-8;
// one that does not is refused, with nothing written.
func TestCharsetUpload(t *testing.T) { onBothServers(t, testCharsetUpload) }

func testCharsetUpload(t *testing.T, srv *testbed.Server) {
	seed(t, srv)
	svc := newService(srv.Addr)
	latin1 := cal(ev("c", "Caf\xe9", "")) // SUMMARY on line 9
	before := state(t, srv, "alice", "Calendar")
	for _, cs := range []string{"", "utf-8"} {
		_, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
			Folder: []string{"Calendar"}, Body: latin1, Charset: cs})
		var ee *EncodingError
		if !errors.As(err, &ee) || ee.Line != 9 {
			t.Errorf("Latin-1 upload with charset %q: %v; want an EncodingError for line 9", cs, err)
		}
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("a refused upload changed the folder")
	}
	res, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: latin1, Charset: "ISO-8859-1"})
	if err != nil || res != (Result{Added: 1}) {
		t.Fatalf("Latin-1 upload that says so: %+v, %v", res, err)
	}
	if got, _ := content(t, srv, "alice", "Calendar"); got["c"] != "Café" {
		t.Errorf("stored %q, want Café", got["c"])
	}
	for _, m := range storedMessages(t, srv, "alice", "Calendar") {
		if !utf8.Valid(m) {
			t.Errorf("a message is not valid UTF-8:\n%q", m)
		}
	}
}
