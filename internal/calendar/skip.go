package calendar

import (
	"time"

	"github.com/teambition/rrule-go"
)

// Skipping ahead: rrule-go has no way to start a rule's iteration
// anywhere but at DTSTART, so a series begun long before the window
// would cost one step per occurrence since then (an HOURLY series begun
// in 2010 reaches its 100,000th occurrence in May 2021). skipAhead moves
// DTSTART instead, where that leaves the occurrences near the window
// exactly as they were.
//
// rrule-go's iterator walks the rule's periods (years, months, weeks,
// days, hours, minutes, seconds: FREQ) on the wall clock of DTSTART's
// location, INTERVAL periods at a time from DTSTART's own, and draws each
// period's occurrences from that period's position in the calendar and
// the rule's BY… lists alone; DTSTART only supplies the BY… values the
// rule leaves out (its month, day, weekday and time of day, as RFC 5545
// says) and drops what comes before it. A start moved by a whole number
// of intervals on the wall clock, with those fields unchanged, therefore
// walks the same periods from there on and finds the same occurrences in
// each (BYSETPOS included, which picks within one period), dropping only
// those before the new start. Three things need care:
//
//   - COUNT counts from DTSTART, so a rule with COUNT is never moved.
//   - A wall-clock field may not survive the move: 31 January plus one
//     month, 29 February plus one year, a time of day in a DST gap. Such
//     a candidate is passed over for an earlier interval.
//   - rrule-go's first WEEKLY period runs only from DTSTART to the end of
//     its week, and BYSETPOS picks within that part. The new start is
//     kept a whole period, and a few hours for UTC offsets, before from,
//     so that its first period lies before anything asked for.
//
// (rrule-go also ends a rule without UNTIL or COUNT about 292 years after
// DTSTART, a limit of time.Duration; moving DTSTART moves that end too,
// which RFC 5545, where such a rule never ends, agrees with.)

// skipTries bounds the earlier intervals tried when a moved start loses a
// wall-clock field. A day of the month that a month lacks comes back
// within two months, 29 February within four years (eight with a
// century), a DST gap within a day.
const skipTries = 8

// offsetSlack covers UTC offset changes between the moved start and
// from, which are compared on the wall clock first.
const offsetSlack = 3 * time.Hour

// skipAhead returns a start for the rule opt, later than opt.Dtstart and
// not after from, from which rrule-go yields exactly the occurrences at
// or after from that it yields from opt.Dtstart; false when there is no
// such start or it would gain nothing.
func skipAhead(opt *rrule.ROption, from time.Time) (time.Time, bool) {
	ds := opt.Dtstart
	if opt.Count > 0 || !ds.Before(from) {
		return time.Time{}, false
	}
	loc := ds.Location()
	c0 := civil(ds)
	// The wall-clock instant the new start must not pass: one period,
	// and offsetSlack, before from.
	lim := civil(from.In(loc)).Add(-offsetSlack)
	n := int64(opt.Interval)
	if n < 1 {
		n = 1
	}
	secs := lim.Unix() - c0.Unix() // not a Duration: that ends at 292 years
	var k int64                    // intervals to move by
	switch opt.Freq {
	case rrule.YEARLY:
		k = int64(lim.Year()-c0.Year()-1) / n
	case rrule.MONTHLY:
		k = (int64(lim.Year()-c0.Year())*12 + int64(lim.Month()-c0.Month()) - 1) / n
	case rrule.WEEKLY:
		k = (secs/86400 - 7) / (7 * n)
	case rrule.DAILY:
		k = (secs/86400 - 1) / n
	case rrule.HOURLY:
		k = (secs/3600 - 1) / n
	case rrule.MINUTELY:
		k = (secs/60 - 1) / n
	case rrule.SECONDLY:
		k = (secs - 1) / n
	default:
		return time.Time{}, false
	}
	for try := 0; try < skipTries && k > 0; try, k = try+1, k-1 {
		c, ok := move(c0, opt.Freq, k*n)
		if !ok {
			continue
		}
		t := time.Date(c.Year(), c.Month(), c.Day(), c.Hour(), c.Minute(), c.Second(), 0, loc)
		if !civil(t).Equal(c) || t.After(from) {
			continue // in a DST gap, or too close to from
		}
		return t, true
	}
	return time.Time{}, false
}

// move adds m periods of freq to the wall-clock time c (read in UTC),
// and reports whether c's day of the month survived (it does not when
// the target month is too short).
func move(c time.Time, freq rrule.Frequency, m int64) (time.Time, bool) {
	y, mo, d := c.Date()
	h, mi, s := c.Clock()
	switch freq {
	case rrule.YEARLY:
		if m > 10000 {
			return c, false
		}
		t := time.Date(y+int(m), mo, d, h, mi, s, 0, time.UTC)
		return t, t.Day() == d
	case rrule.MONTHLY:
		if m > 120000 {
			return c, false
		}
		t := time.Date(y, mo+time.Month(m), d, h, mi, s, 0, time.UTC)
		return t, t.Day() == d
	case rrule.WEEKLY:
		return time.Unix(c.Unix()+m*7*86400, 0).UTC(), true
	case rrule.DAILY:
		return time.Unix(c.Unix()+m*86400, 0).UTC(), true
	case rrule.HOURLY:
		return time.Unix(c.Unix()+m*3600, 0).UTC(), true
	case rrule.MINUTELY:
		return time.Unix(c.Unix()+m*60, 0).UTC(), true
	default:
		return time.Unix(c.Unix()+m, 0).UTC(), true
	}
}

// civil is t's wall clock read as UTC: wall-clock arithmetic without
// offsets.
func civil(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}
