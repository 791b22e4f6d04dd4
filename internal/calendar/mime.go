package calendar

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
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
//
// It splits the message itself rather than with net/textproto and
// mime/multipart: a folder is thousands of small messages, and those
// packages' buffers and maps were the largest cost of reading one (see
// TestMessagePartsAgree for the comparison with them).
func MessageParts(raw []byte) ([]Part, error) {
	h, body, ok := splitHeader(raw)
	if !ok {
		return nil, fmt.Errorf("calendar: message header: %w", ErrMalformed)
	}
	var parts []Part
	count := 0
	walkPart(h, body, 0, &count, &parts)
	if len(parts) == 0 {
		return nil, ErrNoCalendar
	}
	return parts, nil
}

// header holds the two fields MessageParts reads.
type header struct {
	contentType, encoding string
}

// splitHeader reads an RFC 5322 header (unfolding continuation lines)
// for Content-Type and Content-Transfer-Encoding, and returns the body
// after the blank line. It reports false for text with no header field at
// all; a header that runs to the end of the text has a nil body.
func splitHeader(raw []byte) (header, []byte, bool) {
	var h header
	var last *string                // the field a continuation line belongs to
	var seenType, seenEncoding bool // the first of repeated fields counts
	fields := 0
	rest := raw
	for len(rest) > 0 {
		line := rest
		next := len(rest)
		if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
			line, next = rest[:nl], nl+1
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		rest = rest[next:]
		if len(line) == 0 {
			return h, rest, fields > 0 || len(raw) > 0 && (raw[0] == '\n' || raw[0] == '\r')
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != nil {
				*last += " " + string(bytes.TrimSpace(line))
			}
			continue
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if !found {
			last = nil
			continue
		}
		fields++
		last = nil
		switch {
		case !seenType && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Type")):
			h.contentType, seenType = string(bytes.TrimSpace(value)), true
			last = &h.contentType
		case !seenEncoding && bytes.EqualFold(bytes.TrimSpace(name), []byte("Content-Transfer-Encoding")):
			h.encoding, seenEncoding = string(bytes.TrimSpace(value)), true
			last = &h.encoding
		}
	}
	return h, nil, fields > 0
}

func walkPart(h header, body []byte, depth int, count *int, out *[]Part) {
	*count++
	if *count > maxParts || depth > maxDepth {
		return
	}
	ct := h.contentType
	if ct == "" {
		ct = "text/plain"
	}
	mt := mediaTypeOnly(ct)
	multi := strings.HasPrefix(mt, "multipart/")
	if !multi && !IsCalendarType(mt) {
		return // its parameters do not matter
	}
	if multi {
		b := mediaParam(ct, "boundary")
		if b == "" {
			return
		}
		for _, p := range splitMultipart(body, b) {
			ph, pb, _ := splitHeader(p.text)
			if pb == nil {
				continue // a part header that never ends: no body
			}
			if p.delimited {
				// The line break before the delimiter belongs to it.
				pb = bytes.TrimSuffix(pb, []byte("\n"))
				pb = bytes.TrimSuffix(pb, []byte("\r"))
			}
			if len(pb) > MaxPayload {
				pb = pb[:MaxPayload+1]
			}
			walkPart(ph, pb, depth+1, count, out)
		}
		return
	}
	*out = append(*out, Part{MediaType: mt, Params: mediaParams(ct), Body: DecodeTransfer(h.encoding, body)})
}

// mediaTypeOnly returns the lower-case media type of a Content-Type
// value: what mime.ParseMediaType returns, or for a value it refuses (a
// broken parameter list still names the type) the text before the ';'.
func mediaTypeOnly(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	for i := 0; i < len(mt); i++ {
		if c := mt[i]; 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
			return strings.ToLower(mt)
		}
	}
	return mt
}

// mediaParams returns the parameters of a Content-Type value as
// mime.ParseMediaType does, or none when it refuses the value. Plain
// values (tokens and quoted strings without escapes) are read here;
// anything else (RFC 2231 continuations, escapes, 8-bit text, odd
// spacing) goes to mime.ParseMediaType, whose maps and checks were a
// measurable share of reading a folder.
func mediaParams(ct string) map[string]string {
	params := make(map[string]string, 2)
	if simpleParams(ct, func(name, value string) { params[name] = value }) {
		return params
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return map[string]string{}
	}
	return params
}

// mediaParam returns one parameter of a Content-Type value, as
// mediaParams(ct)[name] would, without building the map.
func mediaParam(ct, name string) string {
	var value string
	if simpleParams(ct, func(n, v string) {
		if n == name {
			value = v
		}
	}) {
		return value
	}
	return mediaParams(ct)[name]
}

// simpleParams is mediaParams' fast path: it calls each with every
// parameter (name in lower case) and reports true, or reports false when
// the value is not plain enough for it.
func simpleParams(ct string, each func(name, value string)) bool {
	mt, rest, _ := strings.Cut(ct, ";")
	main, sub, found := strings.Cut(strings.TrimSpace(mt), "/")
	if !found || !IsMIMEToken(main) || !IsMIMEToken(sub) {
		return false
	}
	// A name given twice makes mime.ParseMediaType refuse the value:
	// check before calling each.
	var names [8]string
	var values [8]string
	n := 0
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break // a trailing ';'
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || !IsMIMEToken(rest[:eq]) || strings.IndexByte(rest[:eq], '*') >= 0 {
			return false
		}
		name := rest[:eq]
		rest = rest[eq+1:]
		var value string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return false
			}
			value = rest[1 : 1+end]
			for i := 0; i < len(value); i++ {
				if c := value[i]; c == '\\' || c < 0x20 || c >= 0x7f {
					return false
				}
			}
			rest = rest[2+end:]
		} else {
			end := 0
			for end < len(rest) && rest[end] != ';' && rest[end] != ' ' && rest[end] != '\t' {
				end++
			}
			value = rest[:end]
			if !IsMIMEToken(value) {
				return false
			}
			rest = rest[end:]
		}
		if n == len(names) {
			return false
		}
		name = lowerASCII(name)
		for _, seen := range names[:n] {
			if seen == name {
				return false
			}
		}
		names[n], values[n] = name, value
		n++
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		if rest[0] != ';' {
			return false
		}
		rest = rest[1:]
	}
	for i := range n {
		each(names[i], values[i])
	}
	return true
}

// lowerASCII lower-cases an ASCII token, without allocating when it is
// already lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// isToken reports whether s is a non-empty RFC 2045 token.
func IsMIMEToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// bodyPart is one part of a multipart body: its text (header and body),
// and whether a delimiter line follows it, whose line break then ends
// text.
type bodyPart struct {
	text      []byte
	delimited bool
}

// splitMultipart returns the body parts of a multipart body (RFC 2046
// §5.1.1): what lies between delimiter lines "--boundary", after the
// first and before the closing "--boundary--". A last part with no
// closing delimiter runs to the end. Bare LF line ends are accepted, as
// mail software writes them.
func splitMultipart(body []byte, boundary string) []bodyPart {
	dash := "--" + boundary
	var parts []bodyPart
	at, closing := delimiter(body, dash, 0)
	for at >= 0 && !closing {
		nl := bytes.IndexByte(body[at:], '\n')
		if nl < 0 {
			break
		}
		start := at + nl + 1
		next, isClose := delimiter(body, dash, start)
		if next < 0 {
			parts = append(parts, bodyPart{text: body[start:]})
			break
		}
		parts = append(parts, bodyPart{text: body[start:next], delimited: true})
		at, closing = next, isClose
	}
	return parts
}

// delimiter finds the next delimiter line at or after from: dash at the
// start of a line, followed by "--" (closing) or by nothing but white
// space up to the end of the line.
func delimiter(body []byte, dash string, from int) (at int, closing bool) {
	for from <= len(body) {
		i := bytes.Index(body[from:], []byte(dash))
		if i < 0 {
			return -1, false
		}
		i += from
		if i == 0 || body[i-1] == '\n' {
			rest := body[i+len(dash):]
			if bytes.HasPrefix(rest, []byte("--")) {
				return i, true
			}
			line := rest
			if nl := bytes.IndexByte(rest, '\n'); nl >= 0 {
				line = rest[:nl]
			}
			if len(bytes.Trim(line, " \t\r")) == 0 {
				return i, false
			}
		}
		from = i + 1
	}
	return -1, false
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
		if utf8.Valid(b) {
			return b // the common case: no copy
		}
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
