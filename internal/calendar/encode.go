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
	w   writer
	buf *bufio.Writer // nil when w buffers itself
	err error
	// scratch holds the content line being built, reused for every
	// property.
	scratch []byte
}

type writer interface {
	io.Writer
	io.StringWriter
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
	e.scratch = append(append(e.scratch[:0], "BEGIN:"...), c.Name...)
	e.line(e.scratch)
	for _, name := range propOrder(c.Props) {
		for _, p := range c.Props[name] {
			e.prop(&p)
		}
	}
	for _, child := range c.Children {
		e.component(child)
	}
	e.scratch = append(append(e.scratch[:0], "END:"...), c.Name...)
	e.line(e.scratch)
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
// ones in their order, then the rest by name. Each name's rank is looked
// up once, not in every comparison: sorting is most of encoding a
// component of a dozen properties.
func propOrder(props ical.Props) []string {
	var buf [32]rankedName
	ranked := buf[:0]
	for n, ps := range props {
		if len(ps) > 0 {
			ranked = append(ranked, rankedName{leadingRank[n], n})
		}
	}
	slices.SortFunc(ranked, func(a, b rankedName) int {
		switch {
		case a.rank != 0 && b.rank != 0:
			return a.rank - b.rank
		case a.rank != 0:
			return -1
		case b.rank != 0:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, len(ranked))
	for i, r := range ranked {
		names[i] = r.name
	}
	return names
}

// rankedName is a property name and its place among the leading ones
// (0 for the others).
type rankedName struct {
	rank int
	name string
}

func (e *Encoder) prop(p *ical.Prop) {
	b := append(e.scratch[:0], p.Name...)
	switch len(p.Params) {
	case 0:
	case 1:
		for k, vs := range p.Params {
			b = appendParam(b, k, vs)
		}
	default:
		params := make([]string, 0, len(p.Params))
		for k := range p.Params {
			params = append(params, k)
		}
		slices.Sort(params)
		for _, k := range params {
			b = appendParam(b, k, p.Params[k])
		}
	}
	b = append(b, ':')
	// A value never holds a raw line break: go-ical keeps values escaped,
	// but decoded input may still carry a stray CR; drop it rather than
	// write a broken line.
	v := p.Value
	for {
		i := strings.IndexAny(v, "\r\n")
		if i < 0 {
			b = append(b, v...)
			break
		}
		b = append(b, v[:i]...)
		if v[i] == '\n' {
			b = append(b, `\n`...)
		}
		v = v[i+1:]
	}
	e.scratch = b
	e.line(b)
}

func appendParam(b []byte, k string, vs []string) []byte {
	b = append(append(append(b, ';'), k...), '=')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendParamValue(b, v)
	}
	return b
}

// appendParamValue quotes a parameter value when RFC 5545 requires it
// and drops the characters a parameter value may not hold at all (DQUOTE
// and controls), so that no input can break the line structure.
func appendParamValue(b []byte, v string) []byte {
	clean := strings.Map(func(r rune) rune {
		if r == '"' || (r < 0x20 && r != '\t') || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if strings.ContainsAny(clean, ";:,") {
		return append(append(append(b, '"'), clean...), '"')
	}
	return append(b, clean...)
}

// line writes one content line folded at maxLine octets. Folding never
// splits a UTF-8 sequence; continuation lines start with one space, which
// counts toward their length.
func (e *Encoder) line(s []byte) {
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
		e.writeString("\r\n ")
		s = s[cut:]
		limit = maxLine - 1
	}
	e.write(s)
	e.writeString("\r\n")
}

func (e *Encoder) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *Encoder) writeString(s string) {
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
