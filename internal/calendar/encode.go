package calendar

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// maxLine is the longest content line RFC 5545 §3.1 allows, in octets,
// not counting the CRLF.
const maxLine = 75

// Encoder writes iCalendar objects as RFC 5545 text: CRLF line endings and
// lines folded at 75 octets on UTF-8 character boundaries.
//
// Unlike go-ical's encoder it keeps a stable, readable property order
// (identity and time properties first), does not insist on UID or DTSTAMP,
// and accepts an empty VCALENDAR. An Encoder is not safe for concurrent use.
type Encoder struct {
	w   io.StringWriter
	buf *bufio.Writer // nil when w buffers itself
	err error
}

// NewEncoder returns an encoder that writes to w. An in-memory w
// (*bytes.Buffer, *strings.Builder) is written directly; anything else
// through a buffer.
func NewEncoder(w io.Writer) *Encoder {
	switch w := w.(type) {
	case *bytes.Buffer:
		return &Encoder{w: w}
	case *strings.Builder:
		return &Encoder{w: w}
	}
	b := bufio.NewWriter(w)
	return &Encoder{w: b, buf: b}
}

// Encode writes comp and its children, then flushes.
func (e *Encoder) Encode(comp *ical.Component) error {
	e.component(comp)
	if e.err == nil && e.buf != nil {
		e.err = e.buf.Flush()
	}
	return e.err
}

func (e *Encoder) component(c *ical.Component) {
	e.line("BEGIN:" + c.Name)
	for _, name := range propOrder(c.Props) {
		for _, p := range c.Props[name] {
			e.prop(&p)
		}
	}
	for _, child := range c.Children {
		e.component(child)
	}
	e.line("END:" + c.Name)
}

// leading lists the properties written first, in this order; the rest
// follow sorted by name.
var leading = []string{
	"VERSION", "PRODID", "CALSCALE", "METHOD", "X-WR-CALNAME", "X-PUBLISHED-TTL", "REFRESH-INTERVAL",
	"TZID", "UID", "RECURRENCE-ID", "SEQUENCE", "DTSTAMP", "DTSTART", "DTEND", "DURATION", "DUE",
	"RRULE", "RDATE", "EXDATE", "SUMMARY", "LOCATION", "DESCRIPTION", "CLASS", "STATUS", "TRANSP",
	"ORGANIZER", "ATTENDEE", "FREEBUSY", "TZOFFSETFROM", "TZOFFSETTO", "TZNAME",
}

// leadingRank is each leading property's place, from 1.
var leadingRank = func() map[string]int {
	m := make(map[string]int, len(leading))
	for i, n := range leading {
		m[n] = i + 1
	}
	return m
}()

// propOrder returns the names of props in writing order: the leading
// ones in their order, then the rest by name. One pass over props, so
// that a component of a few properties costs a few look-ups.
func propOrder(props ical.Props) []string {
	names := make([]string, 0, len(props))
	for n, ps := range props {
		if len(ps) > 0 {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		ra, rb := leadingRank[a], leadingRank[b]
		switch {
		case ra != 0 && rb != 0:
			return ra - rb
		case ra != 0:
			return -1
		case rb != 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

func (e *Encoder) prop(p *ical.Prop) {
	var b strings.Builder
	b.WriteString(p.Name)
	params := make([]string, 0, len(p.Params))
	for k := range p.Params {
		params = append(params, k)
	}
	slices.Sort(params)
	for _, k := range params {
		b.WriteString(";")
		b.WriteString(k)
		b.WriteString("=")
		for i, v := range p.Params[k] {
			if i > 0 {
				b.WriteString(",")
			}
			writeParamValue(&b, v)
		}
	}
	b.WriteString(":")
	// A value never holds a raw line break: go-ical keeps values escaped,
	// but decoded input may still carry a stray CR; drop it rather than
	// write a broken line.
	b.WriteString(lineBreaks.Replace(p.Value))
	e.line(b.String())
}

// writeParamValue quotes a parameter value when RFC 5545 requires it and
// drops the characters a parameter value may not hold at all (DQUOTE and
// controls), so that no input can break the line structure.
func writeParamValue(b *strings.Builder, v string) {
	clean := strings.Map(func(r rune) rune {
		if r == '"' || (r < 0x20 && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if strings.ContainsAny(clean, ";:,") {
		b.WriteString(`"` + clean + `"`)
		return
	}
	b.WriteString(clean)
}

// line writes one content line folded at maxLine octets. Folding never
// splits a UTF-8 sequence; continuation lines start with one space, which
// counts toward their length.
func (e *Encoder) line(s string) {
	if e.err != nil {
		return
	}
	limit := maxLine
	for len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 { // not valid UTF-8 at all: cut at the octet limit
			cut = limit
		}
		e.write(s[:cut])
		e.write("\r\n ")
		s = s[cut:]
		limit = maxLine - 1
	}
	e.write(s)
	e.write("\r\n")
}

func (e *Encoder) write(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// Marshal returns the encoding of comp.
func Marshal(comp *ical.Component) ([]byte, error) {
	var b strings.Builder
	if err := NewEncoder(&b).Encode(comp); err != nil {
		return nil, fmt.Errorf("calendar: encode: %w", err)
	}
	return []byte(b.String()), nil
}

// lineBreaks escapes the line breaks a property value may hold; built once,
// as a Replacer is costly to build.
var lineBreaks = strings.NewReplacer("\r", "", "\n", `\n`)
