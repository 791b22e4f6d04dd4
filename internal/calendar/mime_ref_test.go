package calendar

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refMessageParts is how MessageParts worked before it split messages
// itself: with net/textproto and mime/multipart. It is kept as the
// reference the faster code is compared with. ok is false when the
// standard library found the message malformed somewhere, where the two
// may part ways (MessageParts goes on; the reference stopped).
func refMessageParts(raw []byte) (parts []Part, ok bool) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, false
	}
	body, _ := io.ReadAll(tp.R)
	ok = true
	count := 0
	refWalk(hdr, body, 0, &count, &parts, &ok)
	return parts, ok
}

func refWalk(h textproto.MIMEHeader, body []byte, depth int, count *int, out *[]Part, ok *bool) {
	*count++
	if *count > maxParts || depth > maxDepth {
		return
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		params = map[string]string{}
	}
	if strings.HasPrefix(mt, "multipart/") {
		b := params["boundary"]
		if b == "" {
			return
		}
		mr := multipart.NewReader(bytes.NewReader(body), b)
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				*ok = false
				return
			}
			pb, err := io.ReadAll(p)
			if err != nil {
				*ok = false
				return
			}
			refWalk(p.Header, pb, depth+1, count, out, ok)
		}
	}
	if IsCalendarType(mt) {
		*out = append(*out, Part{MediaType: mt, Params: params, Body: DecodeTransfer(h.Get("Content-Transfer-Encoding"), body)})
	}
}

func describeParts(ps []Part) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %v %q\n", p.MediaType, p.Params, p.Body)
	}
	return b.String()
}

// checkAgree compares MessageParts with the reference on one message
// that the standard library reads without complaint.
//
// Text that mixes CRLF and bare LF line ends is not compared: which line
// break belongs to a delimiter is then a guess, and mime/multipart guesses
// from the first delimiter line, MessageParts line by line.
func checkAgree(t *testing.T, name string, raw []byte) bool {
	if bytes.Contains(raw, []byte("\r")) && bytes.Count(raw, []byte("\n")) != bytes.Count(raw, []byte("\r\n")) {
		return false
	}
	want, ok := refMessageParts(raw)
	if !ok {
		return false
	}
	got, _ := MessageParts(raw)
	if describeParts(got) != describeParts(want) {
		t.Errorf("%s: MessageParts differs from net/textproto + mime/multipart\ngot:\n%s\nwant:\n%s", name, describeParts(got), describeParts(want))
	}
	return true
}

// TestMessagePartsAgree: on every message of the corpus, on the corpus's
// calendars wrapped as the test bed and Kolab clients wrap them, and on
// hand-made edge cases, MessageParts finds exactly the parts the standard
// library finds.
func TestMessagePartsAgree(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.*")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".eml") && checkAgree(t, f, raw) {
			n++
		}
		wrapped := "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\npreamble\r\n--=_b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--=_b  \r\nContent-Type: text/calendar; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + string(raw) + "\r\n--=_b--\r\nepilogue\r\n"
		if checkAgree(t, f+" (wrapped)", []byte(wrapped)) {
			n++
		}
	}
	for name, raw := range map[string]string{
		"bare LF":          "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\nEND:VCALENDAR\n--b--\n",
		"folded type":      "Content-Type: multipart/mixed;\r\n\tboundary=\"b b\"\r\n\r\n--b b\r\nContent-Type:\r\n text/calendar; method=PUBLISH\r\n\r\nX\r\n--b b--\r\n",
		"nested":           "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nt\r\n--i\r\nContent-Type: text/calendar\r\n\r\nC\r\n--i--\r\n--o\r\nContent-Type: application/ics\r\nContent-Transfer-Encoding: base64\r\n\r\nQkVHSU4=\r\n--o--\r\n",
		"boundary prefix":  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\nline\r\n--bx not a delimiter\r\nmore\r\n--b--\r\n",
		"single calendar":  "Content-Type: text/calendar\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBEGIN:VCALENDAR=0D=0AEND:VCALENDAR\r\n",
		"empty part":       "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\n\r\n--b--",
		"case of headers":  "content-type: MULTIPART/MIXED; BOUNDARY=b\r\n\r\n--b\r\ncontent-TYPE: Text/Calendar\r\ncontent-transfer-encoding: BASE64\r\n\r\nQkVHSU4=\r\n--b--\r\n",
		"duplicate header": "Content-Type: text/calendar\r\nContent-Type: text/plain\r\n\r\nX",
	} {
		if !checkAgree(t, name, []byte(raw)) {
			t.Errorf("%s: the standard library rejects it; make it a valid message", name)
		}
		n++
	}
	t.Logf("%d messages compared", n)
}

// TestMessagePartsLenient: where the standard library gives up, the
// calendar is still found — a truncated message loses only its end.
func TestMessagePartsLenient(t *testing.T) {
	for name, raw := range map[string]string{
		"no closing delimiter": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n",
		"broken part header":   "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nnot a header line\r\n\r\nx\r\n--b\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n--b--\r\n",
	} {
		ps, err := MessageParts([]byte(raw))
		if err != nil || len(ps) != 1 || !bytes.HasPrefix(ps[0].Body, []byte("BEGIN:VCALENDAR")) {
			t.Errorf("%s: %v, %s", name, err, describeParts(ps))
		}
	}
}

// FuzzMessageParts compares MessageParts with the standard library on
// every input the standard library reads without complaint, and checks
// that it never panics on the others.
func FuzzMessageParts(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/calendar\n\nX\n--b--\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		MessageParts(raw)
		checkAgree(t, "fuzz input", raw)
	})
}

// refMediaType is how a part's Content-Type was read before the fast
// path: mime.ParseMediaType, and for a value it refuses, the type before
// the ';' and no parameters.
func refMediaType(ct string) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])), map[string]string{}
	}
	return mt, params
}

func checkMediaType(t *testing.T, ct string) {
	t.Helper()
	wantType, wantParams := refMediaType(ct)
	if got := mediaTypeOnly(ct); got != wantType {
		t.Errorf("mediaTypeOnly(%q) = %q, want %q", ct, got, wantType)
	}
	if got := mediaParams(ct); fmt.Sprint(got) != fmt.Sprint(wantParams) {
		t.Errorf("mediaParams(%q) = %q, want %q", ct, got, wantParams)
	}
	for _, name := range []string{"boundary", "charset"} {
		if got := mediaParam(ct, name); got != wantParams[name] {
			t.Errorf("mediaParam(%q, %q) = %q, want %q", ct, name, got, wantParams[name])
		}
	}
}

var mediaTypeCases = []string{
	"text/calendar",
	"text/calendar; charset=utf-8; method=REQUEST",
	`text/calendar; charset="UTF-8"; method=REQUEST; component=VEVENT`,
	"TEXT/Calendar;Charset=ISO-8859-1",
	"multipart/mixed; boundary=\"----=_Part_1_2.3\"",
	"multipart/alternative;\r\n boundary=abc",
	"multipart/mixed; boundary=abc;",
	"multipart/mixed; boundary=abc; boundary=def",
	"text/calendar; charset = utf-8",
	"text/calendar; name*=utf-8''%E2%82%AC.ics",
	"text/calendar; name*0=a; name*1=b",
	`text/calendar; name="a\"b"`,
	"text/calendar; name=\"\xc3\xa9.ics\"",
	"text/calendar; name=a/b",
	"text/calendar; name=",
	`text/calendar; name=""`,
	"text/calendar;;charset=utf-8",
	"text/calendar; charset=utf-8 method=x",
	"text/ calendar; charset=utf-8",
	"text; charset=utf-8",
	"/calendar",
	"",
	"application/x-vnd.kolab.event; name=kolab.xml",
	"multipart/mixed; Boundary=x; BOUNDARY=y",
	"multipart/mixed; a=1; b=2; c=3; d=4; e=5; f=6; g=7; h=8; boundary=9",
}

// TestMediaTypeAgrees compares the Content-Type fast path with
// mime.ParseMediaType.
func TestMediaTypeAgrees(t *testing.T) {
	for _, ct := range mediaTypeCases {
		checkMediaType(t, ct)
	}
}

func FuzzMediaType(f *testing.F) {
	for _, ct := range mediaTypeCases {
		f.Add(ct)
	}
	f.Fuzz(checkMediaType)
}
