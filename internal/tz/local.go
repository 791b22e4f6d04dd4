package tz

import (
	"slices"
	"time"
)

// LocalTime returns the instant at which the wall clock in loc shows the given
// date and time, following RFC 5545 section 3.3.5 where time.Date does not:
//
//   - A local time that does not exist (it falls in the gap when the clocks
//     go forward) is read with the UTC offset in effect before the gap, so
//     02:30 on a spring-forward day in Europe/Berlin is 01:30 UTC (shown as
//     03:30 CEST), and in America/New_York is 07:30 UTC (03:30 EDT).
//   - A local time that occurs twice (the clocks go back) is the first
//     occurrence, the one in the earlier offset: 02:30 on the autumn day in
//     Europe/Berlin is 00:30 UTC (CEST), 01:30 in America/New_York is
//     05:30 UTC (EDT).
//
// time.Date documents only that it picks one of the candidates. As
// implemented (Go 1.26) it reads the local time with the offset in effect at
// the instant with the same wall-clock reading in UTC, which agrees with
// RFC 5545 for some zones and transitions but not others: in Europe/Berlin
// it returns the second occurrence of a repeated time, in America/New_York
// it reads a time in the gap with the offset after it (02:30 becomes
// 01:30 EST). Use LocalTime for DTSTART, DTEND, RDATE and friends.
//
// Values out of range are normalized as by time.Date. A nil loc means UTC.
func LocalTime(y, mo, d, h, mi, s int, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	// wall is the requested reading, as seconds since the epoch of a UTC clock.
	wall := time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).Unix()
	off := func(u int64) int64 {
		_, o := time.Unix(u, 0).In(loc).Zone()
		return int64(o)
	}

	// The offsets in use within 30 hours of the reading (no zone is more than
	// 26 hours off UTC). Time.ZoneBounds is not used: it can report an end
	// before the instant in leap years served by a zone's TZ footer rule
	// (golang/go#81583).
	var offs []int64
	for k := int64(-30); k <= 30; k++ {
		o := off(wall + k*3600)
		if !slices.Contains(offs, o) {
			offs = append(offs, o)
		}
	}

	// A reading u is valid if the wall clock at u shows wall; of several
	// (the clocks went back) take the first.
	best, found := int64(0), false
	for _, o := range offs {
		if u := wall - o; off(u) == o && (!found || u < best) {
			best, found = u, true
		}
	}
	if !found {
		// In a gap: the clocks went forward from some offset b to a larger
		// offset a, and wall-a falls before the change, where b holds.
		// Read wall with b.
		b := off(wall - slices.Max(offs))
		best = wall - b
	}
	return time.Unix(best, 0).In(loc)
}
