package calendar

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/tz"
)

// The years fbpub accepts in dates: the calendar's range, not the
// proleptic extremes that make recurrence libraries fail.
const minYear, maxYear = 1583, 9000

// stamp is a parsed DATE or DATE-TIME value.
type stamp struct {
	t      time.Time
	allDay bool
}

// timeParser reads date and time values of one object. TZIDs resolve as
// package tz says: an IANA name, a Windows name (Outlook), the VTIMEZONE of
// the object's calendar, else the owner's zone.
type timeParser struct {
	def    *time.Location
	zones  *tz.Resolver
	budget *Budget
	// noSkip makes rrule expand every rule from DTSTART: what tests
	// compare skipAhead with.
	noSkip bool
}

// value parses one DATE, DATE-TIME or (for the start of) PERIOD value.
// tzid is the property's TZID parameter; valueType its VALUE parameter.
func (p *timeParser) value(v, tzid, valueType string) (stamp, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '/'); i >= 0 { // PERIOD: start/end or start/duration
		v = v[:i]
	}
	if strings.EqualFold(valueType, "DATE") || (len(v) == 8 && !strings.EqualFold(valueType, "DATE-TIME")) {
		t, err := time.ParseInLocation("20060102", v, time.UTC)
		if err != nil || t.Year() < minYear || t.Year() > maxYear {
			return stamp{}, fmt.Errorf("calendar: bad DATE %q", clip(v))
		}
		return stamp{t: localDate(t.Year(), t.Month(), t.Day(), p.def), allDay: true}, nil
	}
	utc := strings.HasSuffix(v, "Z") || strings.HasSuffix(v, "z")
	v = strings.TrimRight(v, "Zz")
	t, err := time.ParseInLocation("20060102T150405", v, time.UTC)
	if err != nil || t.Year() < minYear || t.Year() > maxYear {
		return stamp{}, fmt.Errorf("calendar: bad DATE-TIME %q", clip(v))
	}
	if utc {
		return stamp{t: t}, nil
	}
	loc := p.def
	if tzid != "" {
		loc, _ = p.zones.Resolve(tzid)
	}
	return stamp{t: localTime(t, loc)}, nil
}

func (p *timeParser) prop(pr *ical.Prop) (stamp, error) {
	return p.value(pr.Value, pr.Params.Get(ical.PropTimezoneID), pr.Params.Get(ical.ParamValue))
}

// localDate is midnight at the start of the given day in loc.
func localDate(y int, m time.Month, d int, loc *time.Location) time.Time {
	return localTime(time.Date(y, m, d, 0, 0, 0, 0, time.UTC), loc)
}

// localTime reinterprets the wall clock of wall (read in UTC) in loc,
// following RFC 5545 §3.3.5 (tz.LocalTime): a time that does not exist
// takes the offset before the gap, a repeated one is its first occurrence.
func localTime(wall time.Time, loc *time.Location) time.Time {
	y, mo, d := wall.Date()
	h, mi, s := wall.Clock()
	return tz.LocalTime(y, int(mo), d, h, mi, s, loc).In(loc)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Duration is an RFC 5545 DURATION: Days (and weeks, as 7 days) are
// nominal calendar days; Exact is the hours, minutes and seconds part.
type Duration struct {
	Days  int
	Exact time.Duration
}

// maxDurationDays bounds a DURATION to about 100 years.
const maxDurationDays = 36600

// ParseDuration parses an RFC 5545 §3.3.6 duration such as "P1D",
// "-PT15M", "P1W" or "P1DT2H".
func ParseDuration(s string) (Duration, error) {
	orig := s
	// Made only when needed: every event with a DURATION passes here at
	// every expansion.
	bad := func() error { return fmt.Errorf("calendar: bad DURATION %q", clip(orig)) }
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) < 2 || (s[0] != 'P' && s[0] != 'p') {
		return Duration{}, bad()
	}
	s = strings.ToUpper(s[1:])
	var d Duration
	inTime, any := false, false
	for s != "" {
		if s[0] == 'T' {
			if inTime {
				return Duration{}, bad()
			}
			inTime = true
			s = s[1:]
			continue
		}
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i == len(s) || i > 9 {
			return Duration{}, bad()
		}
		n, _ := strconv.Atoi(s[:i])
		unit := s[i]
		s = s[i+1:]
		any = true
		switch {
		case unit == 'W' && !inTime:
			d.Days += 7 * n
		case unit == 'D' && !inTime:
			d.Days += n
		case unit == 'H' && inTime:
			d.Exact += time.Duration(n) * time.Hour
		case unit == 'M' && inTime:
			d.Exact += time.Duration(n) * time.Minute
		case unit == 'S' && inTime:
			d.Exact += time.Duration(n) * time.Second
		default:
			return Duration{}, bad()
		}
		if d.Days > maxDurationDays || d.Exact > maxDurationDays*24*time.Hour {
			return Duration{}, bad()
		}
	}
	if !any {
		return Duration{}, bad()
	}
	if neg {
		d.Days, d.Exact = -d.Days, -d.Exact
	}
	return d, nil
}

// AddTo adds d to t: days on the wall clock of t's location, then the exact
// part.
func (d Duration) AddTo(t time.Time) time.Time {
	if d.Days != 0 {
		y, m, day := t.Date()
		h, mi, s := t.Clock()
		t = localTime(time.Date(y, m, day+d.Days, h, mi, s, t.Nanosecond(), time.UTC), t.Location())
	}
	return t.Add(d.Exact)
}

// length says how long each occurrence of an event lasts.
type length struct {
	nominal Duration // applied to each start
}

func (l length) end(start time.Time) time.Time { return l.nominal.AddTo(start) }

// eventLength works out an event's length from DTEND or DURATION, with the
// RFC 5545 §3.6.1 defaults when both are absent: one day for a DATE start,
// zero for a DATE-TIME start.
func (p *timeParser) eventLength(c *ical.Component, start stamp) (length, error) {
	if pr := c.Props.Get(ical.PropDateTimeEnd); pr != nil {
		end, err := p.prop(pr)
		if err != nil {
			return length{}, err
		}
		if start.allDay && end.allDay {
			// Whole days on the calendar, so every occurrence covers whole
			// local days even across a DST change.
			days := int(dayNumber(end.t) - dayNumber(start.t))
			if days < 0 {
				days = 0
			}
			return length{Duration{Days: days}}, nil
		}
		// DTEND may be in another zone than DTSTART: the exact span.
		d := end.t.Sub(start.t)
		if d < 0 {
			d = 0
		}
		return length{Duration{Exact: d}}, nil
	}
	if pr := c.Props.Get(ical.PropDuration); pr != nil {
		d, err := ParseDuration(pr.Value)
		if err != nil {
			return length{}, err
		}
		if d.Days < 0 || d.Exact < 0 {
			d = Duration{}
		}
		return length{d}, nil
	}
	if start.allDay {
		return length{Duration{Days: 1}}, nil
	}
	return length{}, nil
}

// dayNumber counts days since the epoch for t's calendar date.
func dayNumber(t time.Time) int64 {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}
