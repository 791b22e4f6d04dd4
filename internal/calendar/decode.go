// Package calendar turns the calendar payloads found in IMAP messages into
// events, and events into the instances they stand for.
//
// It is the second step of fbpub's pipeline (IMAP → calendar → free/busy or
// feed → HTTP): it knows iCalendar (RFC 5545), the MIME shapes groupware
// clients store it in, time zones and recurrence, but nothing of IMAP or
// HTTP. Everything here treats its input as hostile: decoders are guarded
// against panics and every loop is bounded.
package calendar

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"sync"

	"github.com/emersion/go-ical"
)

// Errors that classify why a payload was not used. Callers count them by
// category (see Reason); the text never contains the payload itself.
var (
	ErrMalformed  = errors.New("malformed iCalendar")
	ErrNoCalendar = errors.New("no calendar data")
	ErrTooLarge   = errors.New("calendar data too large")
)

// MaxPayload bounds the size of one calendar payload that is decoded.
const MaxPayload = 16 << 20

// maxComponents bounds how many components one payload may hold.
const maxComponents = 100000

var utf8BOM = []byte("\xef\xbb\xbf")

// readers holds the *bufio.Reader go-ical decodes through, for reuse: a
// cold read of a folder decodes one payload per message, and a reader
// made for each was the largest allocation of that read. They have
// NewReader's default size, so that go-ical's own bufio.NewReader hands
// each back as it is.
var readers = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// Decode parses every VCALENDAR in data with go-ical's decoder, and
// corrects it where it is wrong for what IMAP folders hold:
//
//   - a leading UTF-8 BOM is skipped (go-ical reads it as part of the
//     first name and refuses the text);
//   - blanks after the last line are ignored (go-ical reads a final space
//     or tab as the continuation of END:VCALENDAR and drops the calendar);
//   - a text that ends inside a component is ErrMalformed (go-ical
//     answers it with a plain io.EOF, as it answers the end of the text);
//   - a panic of go-ical (some malformed parameters cause one) is
//     ErrMalformed.
//
// Bare LF line ends and several concatenated VCALENDARs are read as go-ical
// reads them. Text of more than MaxPayload octets, or calendars of more
// than maxComponents components in all, is ErrTooLarge; blank text is
// ErrNoCalendar; anything else go-ical refuses is ErrMalformed. Errors are
// those values themselves: they never quote the data. Decode may be called
// concurrently; the calendars it returns are the caller's.
//
// A TEXT value is read with Text, not go-ical's Prop.Text.
func Decode(data []byte) (cals []*ical.Calendar, err error) {
	if len(data) > MaxPayload {
		return nil, ErrTooLarge
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	data = bytes.TrimRight(data, " \t\r\n")
	if len(data) == 0 {
		return nil, ErrNoCalendar
	}
	defer func() {
		if recover() != nil {
			cals, err = nil, ErrMalformed
		}
	}()
	// go-ical reads through bufio.NewReader, which hands back a
	// *bufio.Reader it is given: so what is left of the text after each
	// calendar is known, and the io.EOF of a text cut short inside a
	// component is told apart from the end of the text.
	r := bytes.NewReader(data)
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	// Returned to the pool on every way out, a panic's included: go-ical
	// keeps no reference to it once Decode returns.
	defer func() {
		br.Reset(nil)
		readers.Put(br)
	}()
	dec := ical.NewDecoder(br)
	components := 0
	for {
		cal, err := dec.Decode()
		if err != nil {
			// io.EOF included: text is left (it is not blank), and it
			// ends inside a component.
			return nil, ErrMalformed
		}
		components += countComponents(cal.Component)
		if components > maxComponents {
			return nil, ErrTooLarge
		}
		cals = append(cals, cal)
		if br.Buffered() == 0 && r.Len() == 0 {
			return cals, nil
		}
	}
}

func countComponents(c *ical.Component) int {
	n := 1
	for _, ch := range c.Children {
		n += countComponents(ch)
	}
	return n
}

// Text returns a TEXT property's value unescaped (RFC 5545 §3.3.11), or ""
// for nil. Unlike go-ical's Prop.Text it keeps the whole value when a
// producer left a comma unescaped ("Budget, Q2"), as many do: go-ical
// reads that as a list and returns its first item. An unknown escape
// gives the character escaped.
func Text(p *ical.Prop) string {
	if p == nil {
		return ""
	}
	return unescapeText(p.Value)
}

// unescapeText undoes RFC 5545 TEXT escaping.
func unescapeText(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n', 'N':
				b.WriteByte('\n')
			default:
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
