package calendar

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"

	"github.com/fbpub/fbpub/internal/tz"
)

// Instance is one occurrence of an event: when it starts and ends, and the
// component whose properties apply to it (the master, or the override that
// replaced this occurrence).
type Instance struct {
	Start, End time.Time
	// Event is the VEVENT whose properties (STATUS, TRANSP, SUMMARY, …)
	// apply to this occurrence. Shared with the Object: do not modify.
	Event *ical.Component
	// RecurrenceID identifies the occurrence in its series; zero for an
	// event that does not recur.
	RecurrenceID time.Time
	// AllDay is set for occurrences whose DTSTART is a DATE.
	AllDay bool
}

// Limits bound the work of an expansion. The zero value means defaults.
type Limits struct {
	// PerEvent bounds the occurrences generated for one event, counting
	// those before the window that had to be stepped over (default 100,000).
	PerEvent int
}

const defaultPerEvent = 100000

// Options configure an expansion. A nil *Options means defaults.
type Options struct {
	// Zone places floating times and DATE values: the owner's time zone.
	// Nil means UTC.
	Zone *time.Location
	// Zones resolves TZID parameters. Nil means IANA names through
	// time.LoadLocation, else Zone.
	Zones  ZoneResolver
	Limits Limits
}

// ZoneResolver maps a TZID parameter to a location, given the VTIMEZONEs of
// the calendar the event came from. It never fails: what it cannot resolve
// it places in def.
type ZoneResolver func(tzid string, vtimezones []*ical.Component, def *time.Location) *time.Location

// ErrTruncated reports that an expansion stopped at a limit; the instances
// returned up to that point are still valid.
var ErrTruncated = errors.New("recurrence expansion truncated")

func (o *Options) zone() *time.Location {
	if o == nil || o.Zone == nil {
		return time.UTC
	}
	return o.Zone
}

func (o *Options) perEvent() int {
	if o == nil || o.Limits.PerEvent <= 0 {
		return defaultPerEvent
	}
	return o.Limits.PerEvent
}

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
	def   *time.Location
	zones *tz.Resolver
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
	bad := fmt.Errorf("calendar: bad DURATION %q", clip(orig))
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) < 2 || (s[0] != 'P' && s[0] != 'p') {
		return Duration{}, bad
	}
	s = strings.ToUpper(s[1:])
	var d Duration
	inTime, any := false, false
	for s != "" {
		if s[0] == 'T' {
			if inTime {
				return Duration{}, bad
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
			return Duration{}, bad
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
			return Duration{}, bad
		}
		if d.Days > maxDurationDays || d.Exact > maxDurationDays*24*time.Hour {
			return Duration{}, bad
		}
	}
	if !any {
		return Duration{}, bad
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

// Instances returns the occurrences of o that overlap [start, end), sorted
// by start. An occurrence overlaps when it starts before end and ends after
// start; a zero-length occurrence overlaps when it starts inside the window.
// When a limit cut the expansion short, the occurrences found so far are
// returned together with an error wrapping ErrTruncated.
func (o *Object) Instances(start, end time.Time, opts *Options) ([]Instance, error) {
	p := &timeParser{def: opts.zone(), zones: tz.NewResolver(o.Timezones, opts.zone())}
	var out []Instance
	var errs []error
	overridden := map[int64]bool{}
	type future struct {
		rid    time.Time
		shift  time.Duration
		length length
		event  *ical.Component
	}
	var futures []future
	var maxShift time.Duration
	for _, ov := range o.Overrides {
		rid, err := p.prop(ov.Props.Get(ical.PropRecurrenceID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inst, l, err := p.single(ov, rid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		overridden[rid.t.Unix()] = true
		if strings.EqualFold(ov.Props.Get(ical.PropRecurrenceID).Params.Get("RANGE"), "THISANDFUTURE") {
			shift := inst.Start.Sub(rid.t)
			futures = append(futures, future{rid: rid.t, shift: shift, length: l, event: ov})
			maxShift = max(maxShift, shift, -shift)
		}
		if overlaps(inst.Start, inst.End, start, end) {
			out = append(out, inst)
		}
	}
	slices.SortFunc(futures, func(a, b future) int { return a.rid.Compare(b.rid) })
	if o.Master != nil {
		ds := o.Master.Props.Get(ical.PropDateTimeStart)
		if ds == nil {
			errs = append(errs, errors.New("calendar: VEVENT without DTSTART"))
		} else if first, err := p.prop(ds); err != nil {
			errs = append(errs, err)
		} else if l, err := p.eventLength(o.Master, first); err != nil {
			errs = append(errs, err)
		} else {
			exdates, err := p.exdates(o.Master)
			if err != nil {
				errs = append(errs, err)
			}
			// A series occurrence starting at t occupies [t, t+len); with
			// THISANDFUTURE shifts it may move by up to maxShift. Look that
			// much further either side of the window.
			span := l.end(start.AddDate(0, 0, 1)).Sub(start.AddDate(0, 0, 1))
			for _, f := range futures {
				span = max(span, f.length.end(start).Sub(start))
			}
			from := start.Add(-span - maxShift - 24*time.Hour)
			to := end.Add(maxShift + 24*time.Hour)
			err = p.occurrences(o.Master, first, from, to, opts.perEvent(), func(occ stamp, occLen *length) {
				key := occ.t.Unix()
				if overridden[key] || exdates.excludes(occ) {
					return
				}
				inst := Instance{Start: occ.t, RecurrenceID: occ.t, Event: o.Master, AllDay: occ.allDay}
				ol := l
				if occLen != nil {
					ol = *occLen
				}
				// The latest THISANDFUTURE override at or before this
				// occurrence moves it and lends it its properties.
				for i := len(futures) - 1; i >= 0; i-- {
					if !futures[i].rid.After(occ.t) {
						inst.Start = occ.t.Add(futures[i].shift)
						inst.Event = futures[i].event
						ol = futures[i].length
						break
					}
				}
				inst.End = ol.end(inst.Start)
				if overlaps(inst.Start, inst.End, start, end) {
					out = append(out, inst)
				}
			})
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !isRecurring(o.Master) {
		for i := range out {
			if out[i].Event == o.Master {
				out[i].RecurrenceID = time.Time{}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Instance) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return a.End.Compare(b.End)
	})
	return out, errors.Join(errs...)
}

func isRecurring(c *ical.Component) bool {
	return c != nil && (c.Props.Get(ical.PropRecurrenceRule) != nil || c.Props.Get(ical.PropRecurrenceDates) != nil)
}

func overlaps(s, e, ws, we time.Time) bool {
	if s.Equal(e) {
		return !s.Before(ws) && s.Before(we)
	}
	return s.Before(we) && e.After(ws)
}

// single is the one occurrence an override stands for: its own DTSTART
// (else the recurrence id) and its own length.
func (p *timeParser) single(c *ical.Component, rid stamp) (Instance, length, error) {
	st := rid
	if ds := c.Props.Get(ical.PropDateTimeStart); ds != nil {
		var err error
		if st, err = p.prop(ds); err != nil {
			return Instance{}, length{}, err
		}
	}
	l, err := p.eventLength(c, st)
	if err != nil {
		return Instance{}, length{}, err
	}
	return Instance{Start: st.t, End: l.end(st.t), Event: c, RecurrenceID: rid.t, AllDay: st.allDay}, l, nil
}

// exclusions are an event's EXDATEs: DATE-TIME values match an occurrence
// at the same instant, DATE values any occurrence on that local day.
type exclusions struct {
	instants map[int64]bool
	days     map[int64]bool
}

func (e exclusions) excludes(s stamp) bool {
	return e.instants[s.t.Unix()] || e.days[dayNumber(s.t)]
}

func (p *timeParser) exdates(c *ical.Component) (exclusions, error) {
	ex := exclusions{instants: map[int64]bool{}, days: map[int64]bool{}}
	var errs []error
	for _, pr := range c.Props.Values(ical.PropExceptionDates) {
		for _, v := range strings.Split(pr.Value, ",") {
			if strings.TrimSpace(v) == "" {
				continue
			}
			s, err := p.value(v, pr.Params.Get(ical.PropTimezoneID), pr.Params.Get(ical.ParamValue))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if s.allDay {
				ex.days[dayNumber(s.t)] = true
			} else {
				ex.instants[s.t.Unix()] = true
			}
		}
	}
	return ex, errors.Join(errs...)
}

// occurrences calls fn for every occurrence of the master's recurrence set
// (DTSTART, RRULE and RDATE) that starts in [from, to), in no particular
// order. RDATE PERIOD values pass their own length; others pass nil. It
// steps over at most limit occurrences and then returns ErrTruncated.
func (p *timeParser) occurrences(c *ical.Component, first stamp, from, to time.Time, limit int, fn func(stamp, *length)) error {
	seen := map[int64]bool{}
	emit := func(s stamp, l *length) {
		if seen[s.t.Unix()] || s.t.Before(from) || !s.t.Before(to) {
			return
		}
		seen[s.t.Unix()] = true
		fn(s, l)
	}
	// RFC 5545 §3.8.5.3: DTSTART is always the first instance.
	emit(first, nil)
	var errs []error
	for _, pr := range c.Props.Values(ical.PropRecurrenceDates) {
		for _, v := range strings.Split(pr.Value, ",") {
			if strings.TrimSpace(v) == "" {
				continue
			}
			s, err := p.value(v, pr.Params.Get(ical.PropTimezoneID), pr.Params.Get(ical.ParamValue))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if first.allDay != s.allDay && !s.allDay {
				// A DATE-TIME RDATE on an all-day event: keep its day.
				s = stamp{t: localDate(s.t.Year(), s.t.Month(), s.t.Day(), p.def), allDay: true}
			}
			if i := strings.IndexByte(v, '/'); i >= 0 {
				l, err := p.periodLength(s, v[i+1:], pr)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				emit(s, &l)
				continue
			}
			emit(s, nil)
		}
	}
	for _, pr := range c.Props.Values(ical.PropRecurrenceRule) {
		if err := p.rrule(pr.Value, first, from, to, limit, func(s stamp) { emit(s, nil) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// periodLength reads the end of an RDATE PERIOD: an explicit end, or a
// duration.
func (p *timeParser) periodLength(start stamp, rest string, pr ical.Prop) (length, error) {
	if strings.HasPrefix(rest, "P") || strings.HasPrefix(rest, "+P") || strings.HasPrefix(rest, "-P") {
		d, err := ParseDuration(rest)
		if err != nil || d.Days < 0 || d.Exact < 0 {
			return length{}, fmt.Errorf("calendar: bad PERIOD %q", clip(rest))
		}
		return length{d}, nil
	}
	e, err := p.value(rest, pr.Params.Get(ical.PropTimezoneID), "DATE-TIME")
	if err != nil {
		return length{}, err
	}
	d := e.t.Sub(start.t)
	if d < 0 {
		d = 0
	}
	return length{Duration{Exact: d}}, nil
}

// rrule iterates one RRULE from the series' first occurrence. UNTIL is read
// in the start's zone: a DATE UNTIL on an all-day series includes that
// day, a floating DATE-TIME UNTIL is local time there.
func (p *timeParser) rrule(value string, first stamp, from, to time.Time, limit int, fn func(stamp)) (err error) {
	// rrule-go panics on some input (a DTSTART in year 0, for one); one bad
	// rule must not take the folder down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("calendar: RRULE evaluation failed: %w", errBadRule)
		}
	}()
	var until string
	var parts []string
	for _, kv := range strings.Split(value, ";") {
		k, v, _ := strings.Cut(kv, "=")
		if strings.EqualFold(strings.TrimSpace(k), "UNTIL") {
			until = strings.TrimSpace(v)
			continue
		}
		if strings.TrimSpace(kv) != "" {
			parts = append(parts, kv)
		}
	}
	loc := first.t.Location()
	opt, err := rrule.StrToROptionInLocation(strings.Join(parts, ";"), loc)
	if err != nil {
		return fmt.Errorf("calendar: bad RRULE: %w", errBadRule)
	}
	opt.Dtstart = first.t
	if until != "" {
		u, err := p.value(until, "", "")
		if err != nil {
			return fmt.Errorf("calendar: bad RRULE UNTIL: %w", errBadRule)
		}
		ut := u.t
		switch {
		case u.allDay && first.allDay:
			// Inclusive: the series may end on that day.
			ut = localDate(ut.Year(), ut.Month(), ut.Day(), loc).AddDate(0, 0, 1).Add(-time.Second)
		case u.allDay:
			// A DATE UNTIL on a DATE-TIME series breaks RFC 5545 §3.3.10
			// (UNTIL takes DTSTART's type). Read it as ical.js, and so
			// Thunderbird, does: the series ends when that day begins.
			ut = localDate(ut.Year(), ut.Month(), ut.Day(), loc).Add(-time.Second)
		case !strings.HasSuffix(strings.ToUpper(until), "Z"):
			ut = localTime(time.Date(ut.Year(), ut.Month(), ut.Day(), ut.Hour(), ut.Minute(), ut.Second(), 0, time.UTC), loc)
		}
		opt.Until = ut
	}
	if opt.Interval <= 0 {
		opt.Interval = 1
	}
	if !reachable(opt, first.t) {
		return fmt.Errorf("calendar: RRULE selects no time of day its interval reaches: %w", errBadRule)
	}
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return fmt.Errorf("calendar: bad RRULE: %w", errBadRule)
	}
	next := r.Iterator()
	for n := 0; ; n++ {
		if n >= limit {
			return ErrTruncated
		}
		t, ok := next()
		if !ok || !t.Before(to) {
			return nil
		}
		if t.Before(from) {
			continue
		}
		if first.allDay {
			t = localDate(t.Year(), t.Month(), t.Day(), p.def)
		} else {
			t = localTime(time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC), loc)
		}
		fn(stamp{t: t, allDay: first.allDay})
	}
}

var errBadRule = errors.New("unusable recurrence rule")

// reachable reports whether a sub-daily rule can ever produce a time of
// day. rrule-go steps HOURLY, MINUTELY and SECONDLY rules by their
// interval inside the day until BYHOUR, BYMINUTE and BYSECOND all match,
// and never returns when no step can match (FREQ=HOURLY;INTERVAL=24;
// BYHOUR=5 from 10:00): a hostile calendar must not get that far. The
// times of day a rule can reach are those congruent to DTSTART's modulo
// gcd(interval, length of a day in the rule's unit).
func reachable(opt *rrule.ROption, start time.Time) bool {
	var unit, perDay int
	switch opt.Freq {
	case rrule.HOURLY:
		unit, perDay = 3600, 24
	case rrule.MINUTELY:
		unit, perDay = 60, 1440
	case rrule.SECONDLY:
		unit, perDay = 1, 86400
	default:
		return true
	}
	if len(opt.Byhour) == 0 && len(opt.Byminute) == 0 && len(opt.Bysecond) == 0 {
		return true
	}
	g := gcd(opt.Interval, perDay)
	h, m, sec := start.Clock()
	phase := ((h*3600 + m*60 + sec) / unit) % g
	in := func(set []int, v int) bool { return len(set) == 0 || slices.Contains(set, v) }
	for t := phase; t < perDay; t += g {
		secs := t * unit
		hh, mm, ss := secs/3600, secs/60%60, secs%60
		// rrule-go compares only the fields finer than the frequency's
		// unit it steps through: HOURLY checks BYHOUR alone, MINUTELY
		// BYHOUR and BYMINUTE, SECONDLY all three.
		ok := in(opt.Byhour, hh)
		if opt.Freq != rrule.HOURLY {
			ok = ok && in(opt.Byminute, mm)
		}
		if opt.Freq == rrule.SECONDLY {
			ok = ok && in(opt.Bysecond, ss)
		}
		if ok {
			return true
		}
	}
	return false
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
