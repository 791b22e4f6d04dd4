package calendar

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// Part is one MIME body part that may hold calendar data, with its
// content-transfer-encoding already removed.
type Part struct {
	// MediaType is the lower-case media type, e.g. "text/calendar".
	MediaType string
	// Params are the Content-Type parameters, keys in lower case.
	Params map[string]string
	// Body is the decoded body; its charset is still Params["charset"].
	Body []byte
}

// IsCalendarType reports whether a part of this media type carries calendar
// data fbpub reads. The IMAP layer fetches only such parts.
func IsCalendarType(mediaType string) bool {
	switch strings.ToLower(mediaType) {
	case "text/calendar", "application/ics", "text/x-vcalendar",
		"application/calendar+xml", "application/x-vnd.kolab.event":
		return true
	}
	return false
}

// maxParts bounds how many MIME parts of one message are looked at.
const maxParts = 200

// maxDepth bounds multipart nesting.
const maxDepth = 10

// MessageParts finds the calendar parts of a whole RFC 5322 message, at any
// depth of multipart nesting. A message that is itself text/calendar (no
// multipart) yields one part. Parse errors in one branch do not hide
// calendar parts found elsewhere.
func MessageParts(raw []byte) ([]Part, error) {
	// A small buffer: long header lines are still read whole, and the
	// body is sliced from raw rather than copied.
	src := bytes.NewReader(raw)
	br := bufio.NewReaderSize(src, 256)
	tp := textproto.NewReader(br)
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && len(hdr) == 0 {
		return nil, fmt.Errorf("calendar: message header: %w", ErrMalformed)
	}
	body := raw[len(raw)-src.Len()-br.Buffered():]
	var parts []Part
	count := 0
	walkPart(textproto.MIMEHeader(hdr), body, 0, &count, &parts)
	if len(parts) == 0 {
		return nil, ErrNoCalendar
	}
	return parts, nil
}

func walkPart(h textproto.MIMEHeader, body []byte, depth int, count *int, out *[]Part) {
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
		// A broken parameter list still names the type before the ';'.
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
		params = map[string]string{}
	}
	if strings.HasPrefix(mt, "multipart/") {
		b := params["boundary"]
		if b == "" {
			return
		}
		br := getReader(bytes.NewReader(body))
		defer putReader(br)
		mr := multipart.NewReader(br, b)
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			pb, err := io.ReadAll(io.LimitReader(p, MaxPayload+1))
			if err != nil && len(pb) == 0 {
				return
			}
			walkPart(p.Header, pb, depth+1, count, out)
		}
	}
	if !IsCalendarType(mt) {
		return
	}
	*out = append(*out, Part{MediaType: mt, Params: params, Body: DecodeTransfer(h.Get("Content-Transfer-Encoding"), body)})
}

// DecodeTransfer removes a Content-Transfer-Encoding. Damaged base64 or
// quoted-printable yields what could be decoded up to the damage.
func DecodeTransfer(cte string, body []byte) []byte {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		clean := bytes.Map(func(r rune) rune {
			switch {
			case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '+', r == '/', r == '=':
				return r
			}
			return -1
		}, body)
		clean = bytes.TrimRight(clean, "=")
		out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
		n, _ := base64.RawStdEncoding.Decode(out, clean)
		return out[:n]
	case "quoted-printable":
		out, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		return out
	}
	return body
}

// ToUTF8 converts a body in the named charset to UTF-8. UTF-8, US-ASCII,
// ISO-8859-1 and Windows-1252 are understood; any other charset is read as
// UTF-8 with invalid bytes replaced, which keeps ASCII structure intact.
func ToUTF8(charset string, b []byte) []byte {
	cs := strings.ToLower(strings.TrimSpace(charset))
	switch cs {
	case "iso-8859-1", "latin1", "iso_8859-1", "l1", "windows-1252", "cp1252":
	default:
		return bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	if utf8.Valid(b) {
		// Pure ASCII needs no work, and valid UTF-8 with non-ASCII bytes
		// is far more likely mislabelled UTF-8 than Latin-1 text.
		return b
	}
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/8)
	for _, c := range b {
		if c >= 0x80 && c < 0xa0 && strings.Contains(cs, "1252") {
			buf.WriteRune(cp1252[c-0x80])
			continue
		}
		buf.WriteRune(rune(c))
	}
	return buf.Bytes()
}

// cp1252 maps Windows-1252's 0x80–0x9F block.
var cp1252 = [32]rune{
	'€', '\uFFFD', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\uFFFD', 'Ž', '\uFFFD',
	'\uFFFD', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\uFFFD', 'ž', 'Ÿ',
}

// PartObjects decodes the calendar objects of one part.
func PartObjects(p Part) ([]*Object, error) {
	body := ToUTF8(p.Params["charset"], p.Body)
	switch p.MediaType {
	case "text/calendar", "application/ics", "text/x-vcalendar":
		cals, err := Decode(body)
		if err != nil {
			return nil, err
		}
		return Objects(cals), nil
	case "application/calendar+xml":
		cals, err := xcalCalendars(body)
		if err != nil {
			return nil, err
		}
		return Objects(cals), nil
	case "application/x-vnd.kolab.event":
		cal, err := kolab2Calendar(body)
		if err != nil {
			return nil, err
		}
		return Objects([]*ical.Calendar{cal}), nil
	}
	return nil, fmt.Errorf("calendar: %w: %s", ErrUnsupported, p.MediaType)
}

// ErrUnsupported marks calendar payload formats fbpub does not read.
var ErrUnsupported = fmt.Errorf("unsupported calendar format")
