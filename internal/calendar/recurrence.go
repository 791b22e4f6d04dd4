package calendar

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

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
	err := p.dateList(c, ical.PropExceptionDates, func(s stamp, _ string, _ ical.Prop) error {
		if s.allDay {
			ex.days[dayNumber(s.t)] = true
		} else {
			ex.instants[s.t.Unix()] = true
		}
		return nil
	})
	return ex, err
}

// dateList calls fn for each value of every property named name (EXDATE,
// RDATE: repeated properties and comma lists), parsed, with its raw text
// and its property. Values that do not parse are skipped and reported.
func (p *timeParser) dateList(c *ical.Component, name string, fn func(s stamp, raw string, pr ical.Prop) error) error {
	var errs []error
	for _, pr := range c.Props.Values(name) {
		for _, v := range strings.Split(pr.Value, ",") {
			if strings.TrimSpace(v) == "" {
				continue
			}
			s, err := p.value(v, pr.Params.Get(ical.PropTimezoneID), pr.Params.Get(ical.ParamValue))
			if err == nil {
				err = fn(s, v, pr)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// occurrences calls fn for every occurrence of the master's recurrence set
// (DTSTART, RRULE and RDATE) that starts in [from, to), in no particular
// order. RDATE PERIOD values pass their own length; others pass nil. Each
// RRULE steps over at most limit occurrences; when one stops there, or
// when p.budget runs out, occurrences returns an error wrapping
// ErrTruncated and the instant up to which the set is complete: every
// occurrence starting at or before it was passed to fn (if in [from,
// to)), later ones may be missing.
func (p *timeParser) occurrences(c *ical.Component, first stamp, from, to time.Time, limit int, fn func(stamp, *length)) (time.Time, error) {
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
	errs = append(errs, p.dateList(c, ical.PropRecurrenceDates, func(s stamp, v string, pr ical.Prop) error {
		if first.allDay != s.allDay && !s.allDay {
			// A DATE-TIME RDATE on an all-day event: keep its day.
			s = stamp{t: localDate(s.t.Year(), s.t.Month(), s.t.Day(), p.def), allDay: true}
		}
		if i := strings.IndexByte(v, '/'); i >= 0 {
			l, err := p.periodLength(s, v[i+1:], pr)
			if err != nil {
				return err
			}
			emit(s, &l)
			return nil
		}
		emit(s, nil)
		return nil
	}))
	var complete time.Time
	for _, pr := range c.Props.Values(ical.PropRecurrenceRule) {
		reached, err := p.rrule(pr.Value, first, from, to, limit, func(s stamp) { emit(s, nil) })
		if err != nil {
			errs = append(errs, err)
		}
		if errors.Is(err, ErrTruncated) && (complete.IsZero() || reached.Before(complete)) {
			complete = reached
		}
	}
	return complete, errors.Join(errs...)
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

// rrule iterates one RRULE from the series' first occurrence (see
// ruleOptions), or from a later start skipAhead finds, calling fn with
// each occurrence in [from, to). It steps over at most limit
// occurrences, and takes each step from p.budget; when either runs out
// it returns ErrTruncated and the start of the last occurrence it
// reached (first's, if none), after which occurrences may be missing.
func (p *timeParser) rrule(value string, first stamp, from, to time.Time, limit int, fn func(stamp)) (reached time.Time, err error) {
	reached = first.t
	// rrule-go panics on some input (a DTSTART in year 0, for one); one bad
	// rule must not take the folder down.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("calendar: RRULE evaluation failed: %w", errBadRule)
		}
	}()
	opt, err := p.ruleOptions(value, first)
	if err != nil {
		return reached, err
	}
	if !opt.Until.IsZero() && opt.Until.Before(from) || !first.t.Before(to) {
		return reached, nil // nothing in [from, to): no steps
	}
	slow, looked := skipsDaysSlowly(opt, first.t)
	p.budget.spend(int64(looked / 512))
	if slow {
		return reached, ErrTruncated // counts busy: see skipsDaysSlowly
	}
	if !p.noSkip {
		if t, ok := skipAhead(opt, from); ok {
			opt.Dtstart = t
		}
	}
	// rrule-go compares UNTIL only with the occurrences it finds: a rule
	// whose days never come (BYMONTH=2;BYMONTHDAY=30) steps through every
	// period up to the year 9999 before it ends, whatever its UNTIL. UNTIL
	// is applied here instead, so that the one call that ends on it is
	// known to have stopped at the first candidate past it; rrule-go's own
	// end without UNTIL (292 years after the start) is later, unless UNTIL
	// is later still.
	until := opt.Until
	if !until.IsZero() && until.Before(opt.Dtstart.AddDate(292, 0, 0)) {
		opt.Until = time.Time{}
	}
	r, err := rrule.NewRRule(*opt)
	if err != nil {
		return reached, fmt.Errorf("calendar: bad RRULE: %w", errBadRule)
	}
	loc := first.t.Location()
	next := r.Iterator()
	prev, found := opt.Dtstart, 0
	for n := 0; ; n++ {
		if n >= limit || !p.budget.take() {
			return reached, ErrTruncated
		}
		t, ok := next()
		if !ok {
			// Unless COUNT ended it, rrule-go found nothing more up to the
			// year 9999 and stepped through every period to get there.
			if opt.Count == 0 || found < opt.Count {
				p.budget.spend(scanSteps(opt, prev, time.Date(rrule.MAXYEAR+1, 1, 1, 0, 0, 0, 0, time.UTC)))
			}
			return reached, nil
		}
		found++
		p.budget.spend(scanSteps(opt, prev, t))
		prev = t
		if !until.IsZero() && t.After(until) || !t.Before(to) {
			return reached, nil
		}
		reached = t
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

// ruleOptions reads one RRULE value for a series starting at first.
// UNTIL is read in the start's zone: a DATE UNTIL on an all-day series
// includes that day, a floating DATE-TIME UNTIL is local time there. A
// rule CheckRecur or rrule-go cannot read, or one that can never produce
// a time of day (see reachable), wraps errBadRule.
func (p *timeParser) ruleOptions(value string, first stamp) (*rrule.ROption, error) {
	// A rule a client refuses (CheckRecur) is not expanded here either:
	// rrule-go reads BYDAY=+0MO as every Monday.
	value, ok := CheckRecur(value)
	if !ok {
		return nil, fmt.Errorf("calendar: bad RRULE: %w", errBadRule)
	}
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
		return nil, fmt.Errorf("calendar: bad RRULE: %w", errBadRule)
	}
	opt.Dtstart = first.t
	if until != "" {
		u, err := p.value(until, "", "")
		if err != nil {
			return nil, fmt.Errorf("calendar: bad RRULE UNTIL: %w", errBadRule)
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
		return nil, fmt.Errorf("calendar: RRULE selects no time of day its interval reaches: %w", errBadRule)
	}
	if !setPosReachable(opt) {
		return nil, fmt.Errorf("calendar: RRULE BYSETPOS beyond any period's set: %w", errBadRule)
	}
	return opt, nil
}

// setPosReachable reports whether some BYSETPOS value of the rule can
// fall within one period's set of candidates. rrule-go steps through
// periods until one yields, up to the year 9999: FREQ=MINUTELY;BYSETPOS=2
// (a minute's set has one candidate) would step through every minute
// until then, for hours, and no step limit can stop it. A period's set is
// at most its days (one for DAILY and finer, 7, 31, 366) times the times
// of day it takes (the BYHOUR, BYMINUTE and BYSECOND values finer than
// FREQ, one each when absent).
func setPosReachable(opt *rrule.ROption) bool {
	if len(opt.Bysetpos) == 0 {
		return true
	}
	n := func(l []int) int { return max(len(l), 1) }
	var size int
	switch opt.Freq {
	case rrule.SECONDLY:
		size = 1
	case rrule.MINUTELY:
		size = n(opt.Bysecond)
	case rrule.HOURLY:
		size = n(opt.Byminute) * n(opt.Bysecond)
	default:
		days := map[rrule.Frequency]int{rrule.YEARLY: 366, rrule.MONTHLY: 31, rrule.WEEKLY: 7}[opt.Freq]
		size = max(days, 1) * n(opt.Byhour) * n(opt.Byminute) * n(opt.Bysecond)
	}
	for _, pos := range opt.Bysetpos {
		if pos != 0 && pos <= size && pos >= -size {
			return true
		}
	}
	return false
}

var errBadRule = errors.New("unusable recurrence rule")

// scanSteps estimates, in budget steps, the work one call of rrule-go's
// iterator did beyond finding its occurrence, when it moved from prev to
// next (both on the rule's wall clock). A call costs little when
// occurrences are near each other; when the rule's days are rare or never
// come, it steps through every period in between, or every day for rules
// finer than DAILY (which skip a day that fails BYMONTH, BYDAY, … at
// once), and no occurrence counts that work. A step is about what an
// occurrence costs in an answer (1 to 3 µs, BenchmarkHostile);
// BenchmarkScan measures the work per charged step for the costliest
// shapes of each frequency, beside an occurrence of Instances alone
// (0.46 µs): 0.03 to 1.3 µs (2026-12-08). A YEARLY period with BYMONTH
// and ordinal BYDAY takes up to 6 µs, a MONTHLY one with ordinal BYDAY
// 3.3 µs, a WEEKLY one 60–170 ns, a DAILY one 30–45 ns, a day skipped by
// a finer rule 110 ns, and a step of its time-of-day loop 3 ns.
func scanSteps(opt *rrule.ROption, prev, next time.Time) int64 {
	a, b := civil(prev), civil(next)
	secs := b.Unix() - a.Unix() // not a Duration: that ends at 292 years
	if secs <= 0 {
		return 0
	}
	n := int64(max(opt.Interval, 1))
	switch opt.Freq {
	case rrule.YEARLY:
		return 3 * int64(b.Year()-a.Year()) / n
	case rrule.MONTHLY:
		return 2 * (int64(b.Year()-a.Year())*12 + int64(b.Month()) - int64(a.Month())) / n
	case rrule.WEEKLY:
		return secs / (7 * 86400 * n) / 16
	case rrule.DAILY:
		return secs / (86400 * n) / 32
	}
	unit, _ := subDaily(opt.Freq)
	return secs/86400/16 + secs/(int64(max(unit, 1))*n)/512
}

// maxTimeLoop bounds the steps rrule-go's time-of-day loop may take for
// each day a MINUTELY or SECONDLY rule skips: as many as an HOURLY rule
// may take.
const maxTimeLoop = 24

// skipsDaysSlowly reports whether a MINUTELY or SECONDLY rule that
// filters both days (BYMONTH, BYWEEKNO, BYYEARDAY, BYMONTHDAY, BYDAY) and
// the times of day it steps through (BYHOUR, BYMINUTE; BYSECOND too when
// SECONDLY) may cost more than maxTimeLoop steps for every day it skips,
// and the points of the day's lattice it looked at. rrule-go leaves a day
// that fails the day filters for the next one and there steps by the
// interval until the time of day matches, before it checks that day: for
// FREQ=SECONDLY;BYHOUR=23;BYMONTH=2;BYMONTHDAY=30, 82,800 steps for every
// day up to the year 9999, minutes of CPU in one call, before any budget
// could count it. A rule whose first matching time of day lies at most
// maxTimeLoop steps into the day (INTERVAL=30;BYHOUR=9,10,14 …: from
// 00:00 to 09:00 in 18 steps) is expanded. One whose interval does
// not divide the day, whose lattice therefore moves from day to day, is
// not. No calendar client writes such rules; fbpub does not expand them,
// and the series counts busy from its start (a *TruncatedError), as
// what a limit leaves unexpanded does. HOURLY rules step at most 24 times
// a day and are always expanded.
func skipsDaysSlowly(opt *rrule.ROption, start time.Time) (slow bool, looked int) {
	unit, perDay := subDaily(opt.Freq)
	if opt.Freq != rrule.MINUTELY && opt.Freq != rrule.SECONDLY {
		return false, 0
	}
	days := len(opt.Bymonth) + len(opt.Byweekno) + len(opt.Byyearday) + len(opt.Bymonthday) + len(opt.Byweekday) + len(opt.Byeaster)
	times := len(opt.Byhour) + len(opt.Byminute)
	if opt.Freq == rrule.SECONDLY {
		times += len(opt.Bysecond)
	}
	if days == 0 || times == 0 {
		return false, 0
	}
	n := max(opt.Interval, 1)
	if perDay%n != 0 {
		return true, 0
	}
	h, m, sec := start.Clock()
	phase := ((h*3600 + m*60 + sec) / unit) % n
	in := func(set []int, v int) bool { return len(set) == 0 || slices.Contains(set, v) }
	allowed := func(k int) bool {
		secs := (phase + k*n) * unit
		hh, mm, ss := secs/3600, secs/60%60, secs%60
		return in(opt.Byhour, hh) && in(opt.Byminute, mm) && (opt.Freq != rrule.SECONDLY || in(opt.Bysecond, ss))
	}
	// After a day it skips, the loop starts at the day's first point of
	// the lattice and steps to the first that matches. (Between two
	// matching days it may step further, but it finds an occurrence, and
	// scanSteps counts those steps.)
	for k := 0; k < perDay/n; k++ {
		if allowed(k) {
			return false, k + 1
		}
		if k >= maxTimeLoop {
			return true, k + 1
		}
	}
	return true, perDay / n
}

// reachable reports whether a sub-daily rule can ever produce a time of
// day. rrule-go steps HOURLY, MINUTELY and SECONDLY rules by their
// interval inside the day until BYHOUR, BYMINUTE and BYSECOND all match,
// and never returns when no step can match (FREQ=HOURLY;INTERVAL=24;
// BYHOUR=5 from 10:00): a hostile calendar must not get that far. The
// times of day a rule can reach are those congruent to DTSTART's modulo
// gcd(interval, length of a day in the rule's unit).
func reachable(opt *rrule.ROption, start time.Time) bool {
	unit, perDay := subDaily(opt.Freq)
	if unit == 0 {
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

// subDaily returns the step of an HOURLY, MINUTELY or SECONDLY rule in
// seconds and the steps in a day; zeros for the other frequencies.
func subDaily(f rrule.Frequency) (unit, perDay int) {
	switch f {
	case rrule.HOURLY:
		return 3600, 24
	case rrule.MINUTELY:
		return 60, 1440
	case rrule.SECONDLY:
		return 1, 86400
	}
	return 0, 0
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
