package calendar

import (
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-ical"
)

// CheckRecur reads a RECUR value (an RRULE; RFC 5545 §3.3.10, with RFC
// 7529's RSCALE=GREGORIAN and SKIP) strictly, and returns it as strict
// parsers read it: names and words upper case, numbers without leading
// zeros or plus signs, in the order given, and rule parts of other names
// (X-…) left out, as a client ignores them. It reports false for a rule
// without FREQ, with a part given twice, or with a value outside the
// RFC's syntax or range (BYMONTH=13, BYDAY=+0MO, BYHOUR=99, ++1MO): ical.js,
// which Thunderbird reads feeds with, refuses the whole calendar for one
// such value, and no client expands it. fbpub neither expands such a rule
// nor writes it in a feed.
func CheckRecur(v string) (string, bool) {
	v = strings.ToUpper(strings.TrimSpace(v))
	var b strings.Builder
	b.Grow(len(v))
	seen := make(map[string]bool, 8)
	for _, part := range strings.Split(v, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		check, known := recurParts[name]
		switch {
		case !ok || !known:
			continue
		case seen[name]:
			return "", false
		}
		value, ok = check(value)
		if !ok {
			return "", false
		}
		seen[name] = true
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name + "=" + value)
	}
	if !seen["FREQ"] {
		return "", false
	}
	return b.String(), true
}

// recurParts check and rewrite the value of each rule part.
var recurParts = map[string]func(string) (string, bool){
	"FREQ":       word("SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"),
	"UNTIL":      recurUntil,
	"COUNT":      func(s string) (string, bool) { return s, len(s) <= 10 && allDigits(s) },
	"INTERVAL":   func(s string) (string, bool) { return s, len(s) <= 10 && allDigits(s) },
	"BYSECOND":   numbers(2, false, 0, 60),
	"BYMINUTE":   numbers(2, false, 0, 59),
	"BYHOUR":     numbers(2, false, 0, 23),
	"BYMONTHDAY": numbers(2, true, 1, 31),
	"BYYEARDAY":  numbers(3, true, 1, 366),
	"BYWEEKNO":   numbers(2, true, 1, 53),
	"BYMONTH":    numbers(2, false, 1, 12),
	"BYSETPOS":   numbers(3, true, 1, 366),
	"BYDAY":      byDay,
	"WKST":       word("MO", "TU", "WE", "TH", "FR", "SA", "SU"),
	"RSCALE":     word("GREGORIAN"),
	"SKIP":       word("OMIT", "BACKWARD", "FORWARD"),
}

func word(words ...string) func(string) (string, bool) {
	return func(s string) (string, bool) {
		for _, w := range words {
			if s == w {
				return s, true
			}
		}
		return "", false
	}
}

// AllDigits reports whether s is one or more ASCII digits.
func AllDigits(s string) bool { return allDigits(s) }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// recurUntil accepts a DATE or a DATE-TIME, local or UTC.
func recurUntil(s string) (string, bool) {
	switch len(s) {
	case 8:
		return s, allDigits(s)
	case 15, 16:
		return s, allDigits(s[:8]) && s[8] == 'T' && allDigits(s[9:15]) && (len(s) == 15 || s[15] == 'Z')
	}
	return "", false
}

// number reads one number of at most n digits, signed when signed allows
// it (one sign), whose size is within [lo, hi] (a signed number is
// non-zero), and writes it plainly.
func number(s string, n int, signed bool, lo, hi int) (string, bool) {
	neg := false
	if signed && s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if len(s) > n || !allDigits(s) {
		return "", false
	}
	v, _ := strconv.Atoi(s)
	if v < lo || v > hi {
		return "", false
	}
	if neg {
		v = -v
	}
	return strconv.Itoa(v), true
}

func numbers(n int, signed bool, lo, hi int) func(string) (string, bool) {
	return func(s string) (string, bool) {
		out := strings.Split(s, ",")
		for i, x := range out {
			var ok bool
			if out[i], ok = number(x, n, signed, lo, hi); !ok {
				return "", false
			}
		}
		return strings.Join(out, ","), true
	}
}

// byDay accepts weekdays, each with an optional ordinal of -53 to 53,
// not zero.
func byDay(s string) (string, bool) {
	out := strings.Split(s, ",")
	day := word("MO", "TU", "WE", "TH", "FR", "SA", "SU")
	for i, d := range out {
		if len(d) < 2 {
			return "", false
		}
		wd, ok := day(d[len(d)-2:])
		if !ok {
			return "", false
		}
		if ord := d[:len(d)-2]; ord != "" {
			if ord, ok = number(ord, 2, true, 1, 53); !ok {
				return "", false
			}
			wd = ord + wd
		}
		out[i] = wd
	}
	return strings.Join(out, ","), true
}

// Sound returns c, or when some property of c or of its components needs
// it, a copy without the properties whose values strict parsers refuse
// for the whole calendar: a RECUR value (RRULE, EXRULE, or VALUE=RECUR)
// that CheckRecur does not accept, and a PERIOD (FREEBUSY, or
// VALUE=PERIOD) that is not a start and an end or a duration. ical.js
// (Thunderbird) throws on either while parsing, so that one bad property
// of one event stored by anyone with the right to add to a folder would
// hide every event of the feed. A RECUR value kept is written as
// CheckRecur returns it. Other values pass as they are: clients read
// them one at a time. c is not modified.
func Sound(c *ical.Component) *ical.Component {
	return Rewrite(c, func(name string, p ical.Prop) (ical.Prop, bool) {
		v, ok := soundValue(name, p)
		p.Value = v
		return p, ok
	}, soundOffsets)
}

// Rewrite returns c, or when prop or keep change something in c or in its
// components, a copy of what changed: prop returns each property as it is
// to be, or false to leave it out; keep says whether a component is kept
// (c itself always is). c is not modified; what did not change is shared.
func Rewrite(c *ical.Component, prop func(name string, p ical.Prop) (ical.Prop, bool), keep func(*ical.Component) bool) *ical.Component {
	var props ical.Props // a copy, made at the first change
	for name, ps := range c.Props {
		var kept []ical.Prop
		changed := false
		for i, p := range ps {
			q, ok := prop(name, p)
			if ok && q.Value == p.Value && samePointer(q.Params, p.Params) {
				if changed {
					kept = append(kept, p)
				}
				continue
			}
			if !changed {
				changed, kept = true, slices.Clone(ps[:i])
			}
			if ok {
				kept = append(kept, q)
			}
		}
		if !changed {
			continue
		}
		if props == nil {
			props = maps.Clone(c.Props)
		}
		if len(kept) == 0 {
			delete(props, name)
		} else {
			props[name] = kept
		}
	}
	var children []*ical.Component
	for i, ch := range c.Children {
		var r *ical.Component
		if keep(ch) {
			r = Rewrite(ch, prop, keep)
		}
		if r == ch && children == nil {
			continue
		}
		if children == nil {
			children = slices.Clone(c.Children[:i])
		}
		if r != nil {
			children = append(children, r)
		}
	}
	if props == nil && children == nil {
		return c
	}
	out := &ical.Component{Name: c.Name, Props: c.Props, Children: c.Children}
	if props != nil {
		out.Props = props
	}
	if children != nil {
		out.Children = children
	}
	return out
}

// samePointer reports whether a and b are the same map (or both nil).
func samePointer(a, b ical.Params) bool {
	return len(a) == 0 && len(b) == 0 || reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// soundValue returns p's value as Sound writes it, and false when Sound
// leaves p out.
func soundValue(name string, p ical.Prop) (string, bool) {
	typ := strings.ToUpper(p.Params.Get(ical.ParamValue))
	if typ == "" {
		switch strings.ToUpper(name) {
		case ical.PropRecurrenceRule, "EXRULE":
			typ = "RECUR"
		case ical.PropFreeBusy:
			typ = "PERIOD"
		case ical.PropTimezoneOffsetFrom, ical.PropTimezoneOffsetTo:
			typ = "UTC-OFFSET"
		}
	}
	switch typ {
	case "RECUR":
		return CheckRecur(p.Value)
	case "UTC-OFFSET":
		return p.Value, CheckUTCOffset(p.Value)
	case "PERIOD":
		for _, v := range strings.Split(p.Value, ",") {
			start, end, ok := strings.Cut(strings.ToUpper(strings.TrimSpace(v)), "/")
			if !ok || !isDateTime(start) || !isDateTime(end) && !isDuration(end) {
				return "", false
			}
		}
	}
	return p.Value, true
}

// soundOffsets reports whether c, when it is a time zone observance
// (STANDARD, DAYLIGHT), has offsets CheckUTCOffset accepts.
func soundOffsets(c *ical.Component) bool {
	if c.Name != ical.CompTimezoneStandard && c.Name != ical.CompTimezoneDaylight {
		return true
	}
	for _, name := range []string{ical.PropTimezoneOffsetFrom, ical.PropTimezoneOffsetTo} {
		for _, p := range c.Props.Values(name) {
			if !CheckUTCOffset(p.Value) {
				return false
			}
		}
	}
	return true
}

// CheckUTCOffset reports whether v is a UTC-OFFSET (RFC 5545 §3.3.14):
// a sign, hours 00-23, minutes 00-59, seconds 00-59 if given. Python's
// icalendar refuses the whole calendar for one of 24 hours or more
// (TZOFFSETTO:+2500).
func CheckUTCOffset(v string) bool {
	v = strings.TrimSpace(v)
	if len(v) != 5 && len(v) != 7 || v[0] != '+' && v[0] != '-' || !allDigits(v[1:]) {
		return false
	}
	return v[1:3] <= "23" && v[3:5] <= "59" && (len(v) == 5 || v[5:7] <= "59")
}

// isDateTime reports whether s is a DATE-TIME, local or UTC.
func isDateTime(s string) bool {
	_, ok := recurUntil(s)
	return ok && len(s) > 8
}

// isDuration reports whether s is a DURATION.
func isDuration(s string) bool {
	_, err := ParseDuration(s)
	return err == nil
}
