package privacy

import (
	"strconv"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
)

// The checks of allow-listed values. Each accepts a value only in the
// syntax RFC 5545 gives it, and returns it as it is written out (upper
// case where the syntax is case-insensitive): a value that does not parse
// is text of unknown meaning, and text is what a reduced view must not
// carry. They never look further than the value's own syntax, so a value
// kept is one that only a time or a rule can be read from.

// oneOf accepts one of words, in any case.
func oneOf(words ...string) func(string) (string, bool) {
	return func(v string) (string, bool) {
		v = strings.ToUpper(strings.TrimSpace(v))
		for _, w := range words {
			if v == w {
				return w, true
			}
		}
		return "", false
	}
}

// valueType accepts the VALUE types a time property may have.
var valueType = oneOf("DATE", "DATE-TIME", "PERIOD")

func digits(s string) bool { return calendar.AllDigits(s) }

// isDateTime reports whether s is a DATE (20250102) or a DATE-TIME
// (20250102T100000, 20250102T100000Z); s is upper case.
// A date must be a day of the calendar and a time one of the clock
// (seconds up to 60, a leap second): ical.js moves 20261311 to a month
// later, and Python's icalendar refuses it.
func isDateTime(s string) bool {
	switch len(s) {
	case 8:
		return isDate(s)
	case 15:
		return isDate(s[:8]) && s[8] == 'T' && isClock(s[9:])
	case 16:
		return isDate(s[:8]) && s[8] == 'T' && isClock(s[9:15]) && s[15] == 'Z'
	}
	return false
}

func isDate(s string) bool {
	if !digits(s) {
		return false
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[4:6])
	d, _ := strconv.Atoi(s[6:8])
	return m >= 1 && m <= 12 && d >= 1 && d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func isClock(s string) bool {
	return digits(s) && s[:2] <= "23" && s[2:4] <= "59" && s[4:6] <= "60"
}

// oneDateTime accepts one DATE or DATE-TIME.
func oneDateTime(v string) (string, bool) {
	v = strings.ToUpper(strings.TrimSpace(v))
	return v, isDateTime(v)
}

// utcDateTime accepts a DATE-TIME in UTC (DTSTAMP).
func utcDateTime(v string) (string, bool) {
	v = strings.ToUpper(strings.TrimSpace(v))
	return v, len(v) == 16 && isDateTime(v)
}

// dateTimes accepts a list of DATEs or DATE-TIMEs (EXDATE).
func dateTimes(v string) (string, bool) {
	return list(v, isDateTime)
}

// dateTimesOrPeriods accepts a list of DATEs, DATE-TIMEs or PERIODs
// (RDATE).
func dateTimesOrPeriods(v string) (string, bool) {
	return list(v, func(s string) bool {
		start, end, period := strings.Cut(s, "/")
		if !period {
			return isDateTime(s)
		}
		return isDateTime(start) && (isDateTime(end) || isDuration(end))
	})
}

func list(v string, ok func(string) bool) (string, bool) {
	v = strings.ToUpper(strings.TrimSpace(v))
	for _, s := range strings.Split(v, ",") {
		if !ok(s) {
			return "", false
		}
	}
	return v, true
}

// duration accepts a DURATION.
func duration(v string) (string, bool) {
	v = strings.ToUpper(strings.TrimSpace(v))
	return v, isDuration(v)
}

// isDuration reports whether s (upper case) is an RFC 5545 dur-value:
// [+-]P then weeks, or days and/or a time of hours, minutes, seconds.
func isDuration(s string) bool {
	s = strings.TrimLeft(s, "+-")
	s, ok := strings.CutPrefix(s, "P")
	if !ok || s == "" {
		return false
	}
	date, clock, hasT := strings.Cut(s, "T")
	if hasT && clock == "" {
		return false
	}
	return units(date, "WD") && units(clock, "HMS")
}

// units reports whether s is a run of number-unit pairs whose units come
// from allowed, in order, each at most once.
func units(s, allowed string) bool {
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) {
			return false
		}
		j := strings.IndexByte(allowed, s[i])
		if j < 0 {
			return false
		}
		allowed, s = allowed[j+1:], s[i+1:]
	}
	return true
}

// integer accepts a non-negative integer (SEQUENCE).
func integer(v string) (string, bool) {
	v = strings.TrimSpace(v)
	return v, len(v) <= 10 && digits(v)
}

// utcOffset accepts a UTC-OFFSET: +HHMM or -HHMMSS.
func utcOffset(v string) (string, bool) {
	v = strings.TrimSpace(v)
	return v, calendar.CheckUTCOffset(v)
}

// recur accepts an RRULE as calendar.CheckRecur does: a known part that
// does not parse, or is out of its range, rejects the rule; a part of
// another name (X-…) is left out, as a client would ignore it.
func recur(v string) (string, bool) { return calendar.CheckRecur(v) }
