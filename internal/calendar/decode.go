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
	"bytes"
	"errors"
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

var crlf, lf = []byte("\r\n"), []byte("\n")

// MaxPayload bounds the size of one calendar payload that is decoded.
const MaxPayload = 16 << 20

// maxComponents bounds how many components one payload may hold.
const maxComponents = 100000

// ended holds the texts Decode gives a final line break.
var ended = sync.Pool{New: func() any { return new([]byte) }}

// Decode parses every VCALENDAR in data. It accepts a leading UTF-8 BOM,
// bare LF line endings and several concatenated VCALENDARs, and reads
// them exactly as go-ical's decoder does (see decodeFast), but for one
// thing: a property without parameters has nil Params, not an empty map;
// give it a map before adding a parameter (ical.NewProp makes new ones
// with one). It never panics.
func Decode(data []byte) (cals []*ical.Calendar, err error) {
	if len(data) > MaxPayload {
		return nil, ErrTooLarge
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrNoCalendar
	}
	// go-ical reads blanks after the last line break as a continuation of
	// END:VCALENDAR and drops the calendar, and decodeFast reads as go-ical
	// does: the text is made to end with one line break after its last
	// non-blank character. A calendar MIME part seldom has one (the line
	// break before the next boundary belongs to the boundary), so it is
	// copied into pooled space: what decodeFast returns shares no memory
	// with its input.
	if t := bytes.TrimRight(data, " \t\r\n"); !bytes.Equal(data[len(t):], crlf) && !bytes.Equal(data[len(t):], lf) {
		b := ended.Get().(*[]byte)
		defer func() {
			if cap(*b) <= 1<<20 { // a rare large one is left to the collector
				ended.Put(b)
			}
		}()
		*b = append(append((*b)[:0], t...), crlf...)
		data = *b
	}
	// decodeFast (lex.go) reads exactly what go-ical's decoder reads,
	// into the same values, 1.3 times as fast with 41 % of the
	// allocations (BenchmarkParse), and what it returns holds less
	// memory; lex_test.go holds the comparison with go-ical.
	cals, err = decodeFast(data)
	if err != nil {
		// Only the category: go-ical's messages quoted the input, which
		// must never reach a log.
		return nil, err
	}
	if len(cals) == 0 {
		// Text that is not blank but holds no whole VCALENDAR: go-ical
		// answers a truncated calendar with a plain io.EOF.
		return nil, ErrMalformed
	}
	return cals, nil
}
