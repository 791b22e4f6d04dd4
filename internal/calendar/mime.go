package calendar

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-message/charset"
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
// depth of multipart nesting, with net/textproto and mime/multipart. A
// message that is itself text/calendar (no multipart) yields one part. A
// parse error in one part does not hide calendar parts found elsewhere: a
// damaged multipart branch keeps the parts before the damage and its
// siblings are read, a part whose header cannot be read is skipped and
// reading resumes at the next delimiter, and a message cut short keeps the
// part it ends in. At most maxParts parts (damaged ones included) and
// maxDepth levels of nesting are looked at. The error is ErrMalformed when
// the message header cannot be read, ErrNoCalendar when there is no
// calendar part.
func MessageParts(raw []byte) ([]Part, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.NewReader(br).ReadMIMEHeader()
	if err == io.EOF && len(h) > 0 {
		err = nil // a header that runs to the end of the text: no body
	}
	if err != nil {
		return nil, fmt.Errorf("calendar: message header: %w", ErrMalformed)
	}
	w := partWalker{}
	w.walk(h, br, 0)
	if len(w.parts) == 0 {
		return nil, ErrNoCalendar
	}
	return w.parts, nil
}

// partWalker gathers the calendar parts of one message.
type partWalker struct {
	count int // parts looked at, damaged ones included
	parts []Part
}

func (w *partWalker) walk(h textproto.MIMEHeader, body io.Reader, depth int) {
	w.count++
	if w.count > maxParts || depth > maxDepth {
		return
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	// A broken parameter list still names the type; one not even that
	// is no calendar.
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		params = map[string]string{}
	}
	if strings.HasPrefix(mt, "multipart/") {
		if params["boundary"] == "" {
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for w.count < maxParts {
			// NextRawPart, not NextPart: the transfer encoding is
			// removed below, leniently, and only for calendar parts.
			p, err := mr.NextRawPart()
			switch {
			case err == nil:
				w.walk(p.Header, p, depth+1)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
				return // the end, with or without a closing delimiter
			case errors.Is(err, bufio.ErrBufferFull):
				// A long line between parts: the reader has consumed
				// a buffer of it and goes on from there.
			default:
				// A part header that cannot be read, or a stray line
				// between parts: the reader has consumed that line and
				// resumes at the next delimiter. Counted, so damage
				// cannot keep the loop going.
				w.count++
			}
		}
		return
	}
	if !IsCalendarType(mt) {
		return // the multipart reader skips its body
	}
	// A part cut short (io.ErrUnexpectedEOF: no closing delimiter) keeps
	// what arrived; one over MaxPayload is cut one octet past it, so that
	// decoding it is ErrTooLarge.
	b, _ := io.ReadAll(io.LimitReader(body, MaxPayload+1))
	w.parts = append(w.parts, Part{MediaType: mt, Params: params, Body: DecodeTransfer(h.Get("Content-Transfer-Encoding"), b)})
}

// IsMIMEToken reports whether s is a non-empty RFC 2045 token.
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

// ErrCharset marks a part in a charset fbpub cannot convert to UTF-8. It
// is also ErrUnsupported.
var ErrCharset = fmt.Errorf("%w: unknown charset", ErrUnsupported)

// ToUTF8 converts a body in the named charset to UTF-8, with go-message's
// charset support: every charset of the IANA registry and of the WHATWG
// Encoding Standard that golang.org/x/text implements (ISO-8859-x,
// Windows-125x, KOI8, Shift_JIS, EUC-JP, ISO-2022-JP, GB18030, GBK, Big5,
// EUC-KR, UTF-16 and more), under any of their registered names. Bytes
// that are invalid in the charset become U+FFFD. No charset at all is
// UTF-8 (RFC 5545's default). In a charset that writes ASCII as ASCII,
// text that is valid UTF-8 is returned as it is: pure ASCII needs no
// work, and valid UTF-8 with non-ASCII bytes is far more likely
// mislabelled UTF-8 than, say, Latin-1 text. A charset it does not know
// (UTF-7, UTF-32, a private name), or one whose label names the WHATWG
// replacement encoding (ISO-2022-KR), which converts nothing, is
// ErrCharset. It may be called concurrently.
func ToUTF8(label string, b []byte) ([]byte, error) {
	label = strings.ToLower(strings.TrimSpace(label))
	if label == "" {
		label = "utf-8"
	}
	asciiCompatible, err := charsetKind(label)
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", ErrCharset)
	}
	if asciiCompatible && utf8.Valid(b) {
		return b, nil // the common case: no copy
	}
	r, err := charset.Reader(label, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", ErrCharset)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("calendar: charset: %w", ErrMalformed)
	}
	return out, nil
}

// charsets caches, for each charset name go-message knows (lower case),
// whether it writes ASCII as ASCII. Names it does not know are not kept,
// so the cache is bounded by the registries' names.
var charsets sync.Map // string → bool

// charsetKind reports whether the named charset (lower case) writes the
// ASCII characters as ASCII octets, or an error when go-message does not
// know it.
func charsetKind(label string) (asciiCompatible bool, err error) {
	if v, ok := charsets.Load(label); ok {
		return v.(bool), nil
	}
	var ascii [0x80]byte
	for i := range ascii {
		ascii[i] = byte(i)
	}
	r, err := charset.Reader(label, bytes.NewReader(ascii[:]))
	if err != nil {
		return false, err
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return false, err
	}
	if string(out) == "\uFFFD" {
		// The WHATWG "replacement" encoding, which the labels of some
		// obsolete charsets (ISO-2022-KR) name: it reads any text as
		// one U+FFFD, converting nothing.
		return false, errors.New("replacement encoding")
	}
	asciiCompatible = bytes.Equal(out, ascii[:])
	charsets.Store(label, asciiCompatible)
	return asciiCompatible, nil
}

// PartObjects decodes the calendar objects of one part.
func PartObjects(p Part) ([]*Object, error) {
	body := p.Body
	if cs := p.Params["charset"]; cs != "" || !isXMLType(p.MediaType) {
		// Without a charset parameter, XML names its encoding in its
		// declaration (RFC 7303), which parseXML reads.
		var err error
		if body, err = ToUTF8(cs, body); err != nil {
			return nil, err
		}
	}
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

func isXMLType(mediaType string) bool {
	return mediaType == "application/calendar+xml" || mediaType == "application/x-vnd.kolab.event"
}

// ErrUnsupported marks calendar payload formats fbpub does not read.
var ErrUnsupported = fmt.Errorf("unsupported calendar format")
