package tz

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// The STANDARD and DAYLIGHT sub-components of a VTIMEZONE: reading one
// (parseObservance, with its date and offset values) and the moments it
// takes effect (observance.onsets). vtimezone.go compiles them into a
// Location.

// observance is one STANDARD or DAYLIGHT sub-component.
type observance struct {
	daylight bool
	name     string // sanitized TZNAME, or "" to derive one from the offset
	from, to int    // TZOFFSETFROM and TZOFFSETTO in seconds east of UTC
	start    int64  // DTSTART as wall-clock seconds (civil time read as UTC)
	startUTC bool   // DTSTART carried a "Z" (not allowed by RFC 5545; tolerated)
	rule     *yearlyRule
	rdates   []dateValue
	exdates  map[int64]bool // wall-clock seconds in the TZOFFSETFROM offset
}

// dateValue is one DTSTART, RDATE, EXDATE or UNTIL value.
type dateValue struct {
	wall   int64 // civil seconds read as UTC; for a UTC value, the instant
	utc    bool  // the value ended in "Z"
	isDate bool  // VALUE=DATE: no time of day
}

// parseObservance reads one STANDARD or DAYLIGHT sub-component.
func parseObservance(c *ical.Component, daylight bool) (*observance, error) {
	o := &observance{daylight: daylight}
	p := c.Props.Get(ical.PropDateTimeStart)
	if p == nil {
		return nil, errors.New("tz: observance without DTSTART")
	}
	start, err := parseDateValue(p.Value, p.Params.Get(ical.ParamValue))
	if err != nil {
		return nil, err
	}
	o.start, o.startUTC = start.wall, start.utc
	p = c.Props.Get(ical.PropTimezoneOffsetTo)
	if p == nil {
		return nil, errors.New("tz: observance without TZOFFSETTO")
	}
	if o.to, err = parseOffset(p.Value); err != nil {
		return nil, err
	}
	o.from = o.to
	if p = c.Props.Get(ical.PropTimezoneOffsetFrom); p != nil {
		if o.from, err = parseOffset(p.Value); err != nil {
			return nil, err
		}
	}
	if p = c.Props.Get(ical.PropTimezoneName); p != nil {
		o.name = sanitizeAbbrev(p.Value)
	}
	if o.startUTC {
		// Keep everything in wall-clock terms: the UTC DTSTART as the wall
		// clock of the zone in effect before.
		o.start += int64(o.from)
		o.startUTC = false
	}
	rules := c.Props.Values(ical.PropRecurrenceRule)
	if len(rules) > 1 {
		return nil, errors.New("tz: observance with several RRULEs")
	}
	if len(rules) == 1 {
		if o.rule, err = parseYearlyRule(rules[0].Value); err != nil {
			return nil, err
		}
	}
	for _, p := range c.Props.Values(ical.PropRecurrenceDates) {
		vt := strings.ToUpper(p.Params.Get(ical.ParamValue))
		for _, s := range strings.Split(p.Value, ",") {
			if len(o.rdates) >= maxDates {
				return nil, errors.New("tz: too many RDATEs")
			}
			if vt == "PERIOD" || strings.Contains(s, "/") {
				s, _, _ = strings.Cut(s, "/")
			}
			d, err := parseDateValue(s, vt)
			if err != nil {
				return nil, err
			}
			o.rdates = append(o.rdates, d)
		}
	}
	for _, p := range c.Props.Values(ical.PropExceptionDates) {
		vt := p.Params.Get(ical.ParamValue)
		for _, s := range strings.Split(p.Value, ",") {
			if len(o.exdates) >= maxDates {
				return nil, errors.New("tz: too many EXDATEs")
			}
			d, err := parseDateValue(s, vt)
			if err != nil {
				return nil, err
			}
			if o.exdates == nil {
				o.exdates = make(map[int64]bool)
			}
			o.exdates[o.wallOf(d)] = true
		}
	}
	return o, nil
}

// wallOf converts an RDATE or EXDATE value to wall-clock seconds in the
// observance's TZOFFSETFROM offset. A DATE value takes DTSTART's time of day.
func (o *observance) wallOf(d dateValue) int64 {
	switch {
	case d.utc:
		return d.wall + int64(o.from)
	case d.isDate:
		return d.wall + floorMod(o.start, 86400)
	}
	return d.wall
}

// onsets appends the onsets of o before the Unix time end to *out.
func (o *observance) onsets(end int64, out *[]onset, st *compileStats) error {
	typ := zoneType{off: o.to, dst: o.daylight, name: o.name}
	if typ.name == "" {
		typ.name = offsetAbbrev(o.to)
	}
	add := func(wall int64) error {
		if o.exdates[wall] {
			return nil
		}
		at := wall - int64(o.from)
		if at >= end {
			return nil
		}
		if len(*out) >= maxOnsets {
			return fmt.Errorf("tz: VTIMEZONE has more than %d onsets", maxOnsets)
		}
		*out = append(*out, onset{at: at, order: o.start, from: o.from, typ: typ})
		return nil
	}
	if err := add(o.start); err != nil {
		return err
	}
	for _, d := range o.rdates {
		if w := o.wallOf(d); w != o.start {
			if err := add(w); err != nil {
				return err
			}
		}
	}
	if o.rule != nil {
		return o.rule.expand(o, end, add, st)
	}
	return nil
}

// parseDateValue parses a DATE-TIME ("20070311T020000", optionally with "Z")
// or, with VALUE=DATE or in that form, a DATE ("20070311").
func parseDateValue(s, valueType string) (dateValue, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	var d dateValue
	if strings.HasSuffix(s, "Z") {
		d.utc = true
		s = s[:len(s)-1]
	}
	bad := func() (dateValue, error) { return dateValue{}, fmt.Errorf("tz: malformed date %q", s) }
	var y, mo, dd, h, mi, sec int
	switch {
	case len(s) == 8 && !d.utc:
		d.isDate = true
	case len(s) == 15 && s[8] == 'T' && !strings.EqualFold(valueType, "DATE"):
	default:
		return bad()
	}
	num := func(i, j int) int {
		n := 0
		for k := i; k < j; k++ {
			c := s[k]
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, dd = num(0, 4), num(4, 6), num(6, 8)
	if !d.isDate {
		h, mi, sec = num(9, 11), num(11, 13), num(13, 15)
	}
	if y < 1 || mo < 1 || mo > 12 || dd < 1 || dd > daysIn(y, time.Month(mo)) ||
		h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60 {
		return bad()
	}
	if sec == 60 {
		sec = 59
	}
	d.wall = time.Date(y, time.Month(mo), dd, h, mi, sec, 0, time.UTC).Unix()
	return d, nil
}

// parseOffset parses a UTC-OFFSET ("+0100", "-0500", "+053000"); it also
// accepts a missing sign and "+01:00".
func parseOffset(s string) (int, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	sign := 1
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	if len(s) != 4 && len(s) != 6 {
		return 0, fmt.Errorf("tz: malformed UTC offset %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("tz: malformed UTC offset %q", s)
		}
	}
	h, _ := strconv.Atoi(s[0:2])
	m, _ := strconv.Atoi(s[2:4])
	sec := 0
	if len(s) == 6 {
		sec, _ = strconv.Atoi(s[4:6])
	}
	if h > 25 || m > 59 || sec > 59 {
		return 0, fmt.Errorf("tz: UTC offset %q out of range", s)
	}
	return sign * (h*3600 + m*60 + sec), nil
}
