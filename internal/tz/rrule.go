package tz

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// yearlyRule is the subset of RFC 5545 RRULE that VTIMEZONE observances
// use: FREQ=YEARLY with INTERVAL, COUNT or UNTIL, BYMONTH, BYDAY (with or
// without an ordinal such as -1SU or 2SU), BYMONTHDAY (such as 8,...,14
// with BYDAY=SU for "second Sunday"), BYSETPOS, and single-valued BYHOUR,
// BYMINUTE and BYSECOND. Other rules make the observance unusable.
type yearlyRule struct {
	interval   int
	count      int // 0: no COUNT
	until      *dateValue
	months     []int // sorted, distinct; empty: not given
	byDay      []weekdayNum
	byMonthDay []int
	bySetPos   []int
	hour       int // -1: DTSTART's
	minute     int // -1: DTSTART's
	second     int // -1: DTSTART's
}

// weekdayNum is one BYDAY value: n is the ordinal (0 for every such day).
type weekdayNum struct {
	n  int
	wd time.Weekday
}

var weekdays = map[string]time.Weekday{
	"SU": time.Sunday, "MO": time.Monday, "TU": time.Tuesday, "WE": time.Wednesday,
	"TH": time.Thursday, "FR": time.Friday, "SA": time.Saturday,
}

// parseYearlyRule parses an RRULE value such as
// "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU".
func parseYearlyRule(s string) (*yearlyRule, error) {
	r := &yearlyRule{interval: 1, hour: -1, minute: -1, second: -1}
	seen := map[string]bool{}
	for _, part := range strings.Split(strings.TrimSpace(s), ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("tz: malformed RRULE part %q", part)
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		v = strings.ToUpper(strings.TrimSpace(v))
		if seen[k] {
			return nil, fmt.Errorf("tz: RRULE repeats %s", k)
		}
		seen[k] = true
		if err := r.set(k, v); err != nil {
			return nil, err
		}
	}
	if !seen["FREQ"] {
		return nil, errors.New("tz: RRULE without FREQ")
	}
	if r.count > 0 && r.until != nil {
		return nil, errors.New("tz: RRULE with both COUNT and UNTIL")
	}
	return r, nil
}

// set reads the rule part k (upper case) with the value v into r. Parts
// named X-… are ignored; parts a VTIMEZONE does not use are errors.
func (r *yearlyRule) set(k, v string) error {
	var err error
	switch k {
	case "FREQ":
		if v != "YEARLY" {
			return fmt.Errorf("tz: RRULE FREQ=%s not supported in VTIMEZONE", v)
		}
	case "INTERVAL":
		r.interval, err = intIn(v, 1, 1000)
	case "COUNT":
		r.count, err = intIn(v, 1, 100000)
	case "UNTIL":
		var d dateValue
		d, err = parseDateValue(v, "")
		r.until = &d
	case "BYMONTH":
		r.months, err = intList(v, 1, 12, false)
		sort.Ints(r.months)
		r.months = dedupe(r.months)
	case "BYMONTHDAY":
		r.byMonthDay, err = intList(v, 1, 31, true)
	case "BYSETPOS":
		r.bySetPos, err = intList(v, 1, 366, true)
	case "BYDAY":
		r.byDay, err = parseByDay(v)
	case "BYHOUR":
		r.hour, err = intIn(v, 0, 23)
	case "BYMINUTE":
		r.minute, err = intIn(v, 0, 59)
	case "BYSECOND":
		r.second, err = intIn(v, 0, 60)
		if r.second == 60 {
			r.second = 59
		}
	case "WKST":
		if _, ok := weekdays[v]; !ok {
			return fmt.Errorf("tz: malformed WKST %q", v)
		}
	default:
		if !strings.HasPrefix(k, "X-") {
			return fmt.Errorf("tz: RRULE part %s not supported in VTIMEZONE", k)
		}
	}
	return err
}

// parseByDay reads a BYDAY value: at most 64 weekdays, each with an
// optional ordinal within ±53.
func parseByDay(v string) ([]weekdayNum, error) {
	var out []weekdayNum
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if len(f) < 2 || len(out) >= 64 {
			return nil, fmt.Errorf("tz: malformed BYDAY %q", v)
		}
		wd, ok := weekdays[f[len(f)-2:]]
		if !ok {
			return nil, fmt.Errorf("tz: malformed BYDAY %q", v)
		}
		n := 0
		if num := f[:len(f)-2]; num != "" {
			var err error
			if n, err = signedIntIn(num, 1, 53); err != nil {
				return nil, err
			}
		}
		out = append(out, weekdayNum{n, wd})
	}
	return out, nil
}

// expand calls add with the wall-clock times of the rule's instances after
// DTSTART (which the caller adds itself) whose onsets fall before the Unix
// time end, honouring COUNT and UNTIL. It stops with errBudget when the days
// examined in total (st.steps) would exceed maxSteps.
func (r *yearlyRule) expand(o *observance, end int64, add func(wall int64) error, st *compileStats) error {
	start := time.Unix(o.start, 0).UTC()
	tod := floorMod(o.start, 86400)
	h, mi, s := start.Hour(), start.Minute(), start.Second()
	if r.hour >= 0 {
		h = r.hour
	}
	if r.minute >= 0 {
		mi = r.minute
	}
	if r.second >= 0 {
		s = r.second
	}
	tod = int64(h*3600 + mi*60 + s)

	count := 1 // DTSTART is the first instance.
	if r.count > 0 && count >= r.count {
		return nil
	}
	y0 := start.Year()
	y := y0
	if r.count == 0 && y < ruleStartYear-1 {
		k := (ruleStartYear - 1 - y0 + r.interval - 1) / r.interval
		y = y0 + k*r.interval
	}
	var days []int64
	for ; y <= lastYear; y += r.interval {
		var err error
		days, err = r.yearDays(days[:0], y, start, st)
		if err != nil {
			return err
		}
		for _, d := range days {
			wall := d + tod
			if wall <= o.start {
				continue
			}
			if r.until != nil {
				switch u := r.until; {
				case u.utc && wall-int64(o.from) > u.wall,
					u.isDate && wall >= u.wall+86400,
					!u.utc && !u.isDate && wall > u.wall:
					return nil
				}
			}
			if wall-int64(o.from) >= end {
				return nil
			}
			if err := add(wall); err != nil {
				return err
			}
			count++
			if r.count > 0 && count >= r.count {
				return nil
			}
		}
	}
	return nil
}

// yearDays appends to dst the midnights (civil seconds) of the days of year
// y that the rule selects, in ascending order.
func (r *yearlyRule) yearDays(dst []int64, y int, start time.Time, st *compileStats) ([]int64, error) {
	months := r.months
	inMonth := len(months) > 0 // BYDAY ordinals count within the month
	if !inMonth {
		if len(r.byDay) > 0 || len(r.byMonthDay) > 0 {
			months = allMonths
		} else {
			months = []int{int(start.Month())}
		}
	}
	jan1 := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	yearLen := int(time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC).Sub(jan1) / (24 * time.Hour))
	for _, m := range months {
		first := time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
		dim := daysIn(y, time.Month(m))
		st.steps += dim
		if st.steps > maxSteps {
			return dst, errBudget
		}
		wd1 := first.Weekday()
		yd1 := first.YearDay() - 1
		for d := 1; d <= dim; d++ {
			wd := time.Weekday((int(wd1) + d - 1) % 7)
			match := true
			if len(r.byDay) > 0 {
				idx, n := d-1, dim
				if !inMonth {
					idx, n = yd1+d-1, yearLen
				}
				match = false
				for _, b := range r.byDay {
					if b.wd != wd {
						continue
					}
					if b.n == 0 || b.n > 0 && idx/7+1 == b.n || b.n < 0 && (n-1-idx)/7+1 == -b.n {
						match = true
						break
					}
				}
			}
			if match && len(r.byMonthDay) > 0 {
				match = false
				for _, md := range r.byMonthDay {
					if md > 0 && d == md || md < 0 && d == dim+md+1 {
						match = true
						break
					}
				}
			}
			if len(r.byDay) == 0 && len(r.byMonthDay) == 0 {
				match = d == start.Day()
			}
			if match {
				dst = append(dst, first.Unix()+int64(d-1)*86400)
			}
		}
	}
	if len(r.bySetPos) > 0 && len(dst) > 0 {
		set := append([]int64(nil), dst...)
		dst = dst[:0]
		for _, p := range r.bySetPos {
			i := p - 1
			if p < 0 {
				i = len(set) + p
			}
			if i >= 0 && i < len(set) {
				dst = append(dst, set[i])
			}
		}
		sort.Slice(dst, func(i, j int) bool { return dst[i] < dst[j] })
		dst = dedupe64(dst)
	}
	return dst, nil
}

var allMonths = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func intIn(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("tz: RRULE value %q not in %d..%d", s, lo, hi)
	}
	return n, nil
}

// signedIntIn parses ±n with lo <= |n| <= hi.
func signedIntIn(s string, lo, hi int) (int, error) {
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	n, err := intIn(s, lo, hi)
	if neg {
		n = -n
	}
	return n, err
}

// intList parses a comma-separated list of at most 366 numbers in lo..hi,
// or in -hi..-lo too when signed.
func intList(s string, lo, hi int, signed bool) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 366 {
		return nil, fmt.Errorf("tz: RRULE list %q too long", s)
	}
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		var n int
		var err error
		if signed {
			n, err = signedIntIn(strings.TrimSpace(p), lo, hi)
		} else {
			n, err = intIn(strings.TrimSpace(p), lo, hi)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func dedupe(s []int) []int {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func dedupe64(s []int64) []int64 {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
