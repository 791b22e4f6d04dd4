// Package availability works out when people can meet: the time outside
// their working hours, from RFC 7953 VAVAILABILITY components or a weekly
// pattern of hours, and the free slots a group has in common.
//
// It is arithmetic on times only: no I/O, no shared state; every function
// is safe for concurrent use.
package availability

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// Hours is a weekly pattern of working hours on the wall clock of an
// owner's zone, such as "MO-FR 09:00-17:00". A nil *Hours means the whole
// day, every day.
type Hours struct {
	// days holds, per time.Weekday, the day's working ranges in minutes
	// after midnight, sorted and disjoint.
	days [7][][2]int
	text string
}

var dayNames = map[string]time.Weekday{
	"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday,
	"TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday,
}

// ParseHours reads a pattern of working hours: clauses separated by ";",
// each a list of days or day ranges (MO, TU, WE, TH, FR, SA, SU; "MO-FR";
// "MO,WE,FR"; "FR-MO" wraps over the weekend) and a list of times
// ("09:00-12:00,13:00-17:00", 24-hour clock, "24:00" ends a day). A day
// named in several clauses gets the union of their times. Examples:
//
//	MO-FR 09:00-17:00
//	MO-TH 08:00-12:00,13:00-17:00; FR 08:00-13:00
func ParseHours(s string) (*Hours, error) {
	h := &Hours{text: strings.TrimSpace(s)}
	if h.text == "" {
		return nil, fmt.Errorf("availability: empty working hours")
	}
	for _, clause := range strings.Split(h.text, ";") {
		fields := strings.Fields(clause)
		if len(fields) != 2 {
			return nil, fmt.Errorf("availability: %q is not days and times like \"MO-FR 09:00-17:00\"", strings.TrimSpace(clause))
		}
		days, err := parseDays(fields[0])
		if err != nil {
			return nil, err
		}
		var ranges [][2]int
		for _, r := range strings.Split(fields[1], ",") {
			from, to, ok := strings.Cut(r, "-")
			a, errA := parseClock(from)
			b, errB := parseClock(to)
			if !ok || errA != nil || errB != nil {
				return nil, fmt.Errorf("availability: %q is not a time range like 09:00-17:00", r)
			}
			if b <= a {
				return nil, fmt.Errorf("availability: %q ends before it starts", r)
			}
			ranges = append(ranges, [2]int{a, b})
		}
		for _, d := range days {
			h.days[d] = append(h.days[d], ranges...)
		}
	}
	for d := range h.days {
		h.days[d] = mergeMinutes(h.days[d])
	}
	return h, nil
}

// MustParseHours is ParseHours for patterns known to be valid; it panics
// on an error.
func MustParseHours(s string) *Hours {
	h, err := ParseHours(s)
	if err != nil {
		panic(err)
	}
	return h
}

func parseDays(s string) ([]time.Weekday, error) {
	var out []time.Weekday
	for _, part := range strings.Split(strings.ToUpper(s), ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, okA := dayNames[from]
		if !okA {
			return nil, fmt.Errorf("availability: %q is not a day (MO, TU, WE, TH, FR, SA, SU)", from)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b, okB := dayNames[to]
		if !okB {
			return nil, fmt.Errorf("availability: %q is not a day (MO, TU, WE, TH, FR, SA, SU)", to)
		}
		for d := a; ; d = (d + 1) % 7 {
			out = append(out, d)
			if d == b {
				break
			}
		}
	}
	return out, nil
}

// parseClock reads HH:MM (00:00 to 24:00) as minutes after midnight.
func parseClock(s string) (int, error) {
	var hh, mm int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("bad time")
	}
	if _, err := fmt.Sscanf(s, "%2d:%2d", &hh, &mm); err != nil {
		return 0, err
	}
	if hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad time")
	}
	return hh*60 + mm, nil
}

func mergeMinutes(rs [][2]int) [][2]int {
	slices.SortFunc(rs, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	var out [][2]int
	for _, r := range rs {
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// String returns the pattern as it was written.
func (h *Hours) String() string {
	if h == nil {
		return ""
	}
	return h.text
}

// Working returns the working time of h within w, in UTC, sorted and
// disjoint. Times are on the wall clock of loc, day by day, so that
// 09:00 stays 09:00 across a change of daylight saving time. A nil h
// works all of w.
func (h *Hours) Working(w freebusy.Window, loc *time.Location) []freebusy.Window {
	if !w.End.After(w.Start) {
		return nil
	}
	if h == nil {
		return []freebusy.Window{w}
	}
	if loc == nil {
		loc = time.UTC
	}
	var out []freebusy.Window
	// From the local day before the window to the one after it: a
	// window's UTC edges may fall on other local days.
	first := w.Start.In(loc).AddDate(0, 0, -1)
	last := w.End.In(loc).AddDate(0, 0, 1)
	for day := time.Date(first.Year(), first.Month(), first.Day(), 12, 0, 0, 0, loc); !day.After(last); day = day.AddDate(0, 0, 1) {
		y, m, d := day.Date()
		for _, r := range h.days[day.Weekday()] {
			start := time.Date(y, m, d, r[0]/60, r[0]%60, 0, 0, loc)
			end := time.Date(y, m, d, r[1]/60, r[1]%60, 0, 0, loc)
			out = append(out, freebusy.Window{Start: start.UTC(), End: end.UTC()})
		}
	}
	return clipMerge(out, w)
}

// clipMerge clips spans to w, sorts them and joins those that overlap or
// touch.
func clipMerge(spans []freebusy.Window, w freebusy.Window) []freebusy.Window {
	slices.SortFunc(spans, func(a, b freebusy.Window) int { return a.Start.Compare(b.Start) })
	var out []freebusy.Window
	for _, s := range spans {
		if s.Start.Before(w.Start) {
			s.Start = w.Start
		}
		if s.End.After(w.End) {
			s.End = w.End
		}
		if !s.End.After(s.Start) {
			continue
		}
		if n := len(out); n > 0 && !s.Start.After(out[n-1].End) {
			if s.End.After(out[n-1].End) {
				out[n-1].End = s.End
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// OffHours returns the time of w outside an owner's working hours, as
// busy periods in UTC (sorted, one FBTYPE per period, adjacent periods of
// one type joined). The owner's VAVAILABILITY components decide when
// there are any (RFC 7953, see Unavailable); else hours, on the wall clock
// of loc, with the time outside them BUSY-UNAVAILABLE; with neither, the
// whole day is working time and nothing is returned.
func OffHours(avs []calendar.Availability, hours *Hours, loc *time.Location, w freebusy.Window) []freebusy.Period {
	if len(avs) > 0 {
		return Unavailable(avs, w)
	}
	if hours == nil {
		return nil
	}
	var out []freebusy.Period
	at := w.Start
	for _, s := range hours.Working(w, loc) {
		if s.Start.After(at) {
			out = append(out, freebusy.Period{Start: at, End: s.Start, Type: freebusy.BusyUnavailable})
		}
		at = s.End
	}
	if w.End.After(at) {
		out = append(out, freebusy.Period{Start: at, End: w.End, Type: freebusy.BusyUnavailable})
	}
	return out
}

// Unavailable applies VAVAILABILITY components to w as RFC 7953 §4 says:
// within a component's span, time is busy as its BUSYTYPE says except
// during its AVAILABLE periods; a component of higher priority (1 highest,
// 9 lowest, 0 below 9) overrides those of lower priority where their spans
// overlap; among overlapping components of one priority, time is
// available when any of them makes it so (and busy as the first one in
// input order says otherwise). Time outside every span is available.
func Unavailable(avs []calendar.Availability, w freebusy.Window) []freebusy.Period {
	if !w.End.After(w.Start) {
		return nil
	}
	comps, cuts := components(avs, w)
	var out []freebusy.Period
	for i := 0; i+1 < len(cuts); i++ {
		from, to := cuts[i], cuts[i+1]
		if from.Before(w.Start) || to.After(w.End) {
			continue
		}
		// Every cut is a boundary, so what holds at from holds until to.
		busy := busyAt(comps, from)
		if busy == "" {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Type == busy && out[n-1].End.Equal(from) {
			out[n-1].End = to
			continue
		}
		out = append(out, freebusy.Period{Start: from, End: to, Type: busy})
	}
	return out
}

// component is one VAVAILABILITY as Unavailable applies it.
type component struct {
	span   freebusy.Window
	rank   int // lower ranks first
	busy   freebusy.Type
	freeAt []freebusy.Window // its AVAILABLE periods, clipped to its span
}

// components returns the components of avs whose spans overlap w,
// clipped to it and sorted by rank (stably: input order within a rank),
// and the times at which what is busy may change (w's bounds, the spans'
// and the AVAILABLE periods'), sorted, each once.
func components(avs []calendar.Availability, w freebusy.Window) ([]component, []time.Time) {
	comps := make([]component, 0, len(avs))
	cuts := []time.Time{w.Start, w.End}
	for _, a := range avs {
		span := w
		if !a.Start.IsZero() && a.Start.After(span.Start) {
			span.Start = a.Start
		}
		if !a.End.IsZero() && a.End.Before(span.End) {
			span.End = a.End
		}
		if !span.End.After(span.Start) {
			continue
		}
		c := component{span: span, rank: a.Priority, busy: freebusy.Type(a.BusyType)}
		if c.rank == 0 {
			c.rank = 10
		}
		if c.busy == "" {
			c.busy = freebusy.BusyUnavailable
		}
		spans := make([]freebusy.Window, len(a.Available))
		for j, s := range a.Available {
			spans[j] = freebusy.Window{Start: s.Start, End: s.End}
		}
		c.freeAt = clipMerge(spans, span)
		cuts = append(cuts, span.Start, span.End)
		for _, f := range c.freeAt {
			cuts = append(cuts, f.Start, f.End)
		}
		comps = append(comps, c)
	}
	slices.SortStableFunc(comps, func(a, b component) int { return cmp.Compare(a.rank, b.rank) })
	slices.SortFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
	cuts = slices.CompactFunc(cuts, func(a, b time.Time) bool { return a.Equal(b) })
	return comps, cuts
}

// busyAt returns how busy time t is under comps (sorted by rank): the
// components of the best rank whose spans cover t decide; it is free
// ("") when one of them has t available, or when none covers t, else
// busy as the first of them in input order says.
func busyAt(comps []component, t time.Time) freebusy.Type {
	for j := 0; j < len(comps); {
		rank := comps[j].rank
		first := freebusy.Type("")
		free, covered := false, false
		for ; j < len(comps) && comps[j].rank == rank; j++ {
			c := &comps[j]
			if t.Before(c.span.Start) || !c.span.End.After(t) {
				continue
			}
			if !covered {
				first = c.busy // the first in input order: the sort is stable
			}
			covered = true
			if covers(c.freeAt, t) {
				free = true
			}
		}
		if covered {
			if free {
				return ""
			}
			return first
		}
	}
	return ""
}

// covers reports whether one of ws (sorted, not overlapping) holds t.
func covers(ws []freebusy.Window, t time.Time) bool {
	i, _ := slices.BinarySearchFunc(ws, t, func(s freebusy.Window, t time.Time) int {
		if !s.End.After(t) {
			return -1
		}
		if s.Start.After(t) {
			return 1
		}
		return 0
	})
	return i < len(ws) && !ws[i].Start.After(t) && ws[i].End.After(t)
}

// Slots returns the maximal spans of w, at least min long, in which no
// member is busy: each member's periods (their free/busy with the time
// outside their working hours marked, see OffHours) count when they are
// BUSY, BUSY-UNAVAILABLE or of a type fbpub does not know, and when they
// are BUSY-TENTATIVE unless tentativeFree; FREE periods never count. With
// no members there is no one to meet, and no slot.
func Slots(members [][]freebusy.Period, w freebusy.Window, min time.Duration, tentativeFree bool) []freebusy.Window {
	if len(members) == 0 || !w.End.After(w.Start) {
		return nil
	}
	var busy []freebusy.Window
	for _, ps := range members {
		for _, p := range ps {
			switch {
			case p.Type == freebusy.Free:
				continue
			case p.Type == freebusy.BusyTentative && tentativeFree:
				continue
			}
			busy = append(busy, freebusy.Window{Start: p.Start, End: p.End})
		}
	}
	var out []freebusy.Window
	at := w.Start
	add := func(end time.Time) {
		if end.Sub(at) >= min && end.After(at) {
			out = append(out, freebusy.Window{Start: at, End: end})
		}
	}
	for _, b := range clipMerge(busy, w) {
		add(b.Start)
		at = b.End
	}
	add(w.End)
	return out
}
