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
	"fmt"
	"io"
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

// Decode parses every VCALENDAR in data. It accepts a leading UTF-8 BOM,
// bare LF line endings and several concatenated VCALENDARs. It never panics:
// a panic inside the third-party decoder is turned into ErrMalformed.
func Decode(data []byte) (cals []*ical.Calendar, err error) {
	if len(data) > MaxPayload {
		return nil, ErrTooLarge
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, ErrNoCalendar
	}
	// go-ical reads blanks after the last line break as a continuation of
	// END:VCALENDAR and drops the calendar: the text is made to end with
	// one line break after its last non-blank character (copied only
	// when it does not already).
	if t := bytes.TrimRight(data, " \t\r\n"); !bytes.Equal(data[len(t):], crlf) && !bytes.Equal(data[len(t):], lf) {
		data = append(t[:len(t):len(t)], crlf...)
	}
	defer func() {
		if r := recover(); r != nil {
			cals, err = nil, fmt.Errorf("%w (decoder panic)", ErrMalformed)
		}
	}()
	br := getReader(bytes.NewReader(data))
	defer putReader(br)
	dec := ical.NewDecoder(br)
	n := 0
	for {
		cal, err := dec.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			// The decoder's message may quote the input, which must never
			// reach a log: keep only the category.
			return nil, ErrMalformed
		}
		n += countComponents(cal.Component)
		if n > maxComponents {
			return nil, ErrTooLarge
		}
		cals = append(cals, cal)
	}
	if len(cals) == 0 {
		// Text that is not blank but holds no whole VCALENDAR: go-ical
		// answers a truncated calendar with a plain io.EOF.
		return nil, ErrMalformed
	}
	return cals, nil
}

func countComponents(c *ical.Component) int {
	n := 1
	for _, ch := range c.Children {
		n += countComponents(ch)
	}
	return n
}

// readers recycles the 4 KiB buffered readers that go-ical's decoder and
// mime/multipart would otherwise allocate for every message: both use a
// *bufio.Reader they are given as it is, when it is at least that large.
// Parsing a folder is thousands of small messages, so this matters.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}
