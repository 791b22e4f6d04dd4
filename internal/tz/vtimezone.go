package tz

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
)

// Limits on the work one VTIMEZONE may cause. A component that needs more is
// rejected as a whole and its TZID resolves to the default zone.
const (
	// ruleStartYear is the first year for which an open-ended RRULE (one
	// without COUNT) is expanded; earlier onsets of such a rule are skipped,
	// so a 1601 DTSTART (Outlook) does not cost four centuries of work.
	ruleStartYear = 1900
	// lastYear is the last year for which onsets are computed. After the
	// last transition the Location keeps its last offset.
	lastYear = 2100
	// maxObservances bounds the STANDARD and DAYLIGHT sub-components used.
	maxObservances = 256
	// maxOnsets bounds the onsets (transitions before merging) in total.
	maxOnsets = 16384
	// maxDates bounds the RDATE and EXDATE values per observance.
	maxDates = 4096
	// maxSteps bounds the days examined while expanding RRULEs, in total.
	maxSteps = 1 << 21
)

var errBudget = errors.New("tz: VTIMEZONE needs too much work")

// compileStats reports the work done by one compilation, for tests.
type compileStats struct {
	steps       int // days examined by RRULE expansion
	onsets      int // onsets collected
	transitions int // transitions in the resulting Location
	observances int // STANDARD and DAYLIGHT sub-components used
	skipped     int // STANDARD and DAYLIGHT sub-components ignored
}

// vtzCache shares compiled VTIMEZONEs between Resolvers: the same Outlook
// block arrives with every invitation. Keys are hashes of the component's
// content (TZID included); a nil value records a component that did not
// compile. The cache holds at most vtzCacheSize entries.
var vtzCache = struct {
	sync.Mutex
	m map[[sha256.Size]byte]*time.Location // guarded by the mutex
}{m: make(map[[sha256.Size]byte]*time.Location)}

const vtzCacheSize = 512

// compileCached returns the Location for the VTIMEZONE c with TZID tzid, or
// nil if it does not make sense. It never panics.
func compileCached(tzid string, c *ical.Component) (loc *time.Location) {
	key, ok := componentKey(tzid, c)
	if ok {
		vtzCache.Lock()
		loc, hit := vtzCache.m[key]
		vtzCache.Unlock()
		if hit {
			return loc
		}
	}
	loc, _, _ = compileVTimezone(tzid, c)
	if ok {
		vtzCache.Lock()
		if len(vtzCache.m) >= vtzCacheSize {
			for k := range vtzCache.m { // evict an arbitrary entry
				delete(vtzCache.m, k)
				break
			}
		}
		vtzCache.m[key] = loc
		vtzCache.Unlock()
	}
	return loc
}

// componentKey hashes the content of c in a canonical order. It reports false
// for components too deeply nested to be a VTIMEZONE worth caching.
func componentKey(tzid string, c *ical.Component) (key [sha256.Size]byte, ok bool) {
	h := sha256.New()
	var str func(string)
	str = func(s string) {
		var n [8]byte
		l := len(s)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var walk func(c *ical.Component, depth int) bool
	walk = func(c *ical.Component, depth int) bool {
		if depth > 4 {
			return false
		}
		str("BEGIN")
		str(c.Name)
		names := make([]string, 0, len(c.Props))
		for name := range c.Props {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			for _, p := range c.Props[name] {
				str("P")
				str(p.Name)
				pnames := make([]string, 0, len(p.Params))
				for pn := range p.Params {
					pnames = append(pnames, pn)
				}
				sort.Strings(pnames)
				for _, pn := range pnames {
					str(pn)
					for _, v := range p.Params[pn] {
						str(v)
					}
					str(";")
				}
				str(p.Value)
			}
		}
		for _, child := range c.Children {
			if child == nil || !walk(child, depth+1) {
				return false
			}
		}
		str("END")
		return true
	}
	str(tzid)
	if !walk(c, 0) {
		return key, false
	}
	h.Sum(key[:0])
	return key, true
}

// onset is the moment an observance takes effect.
type onset struct {
	at    int64 // Unix time
	order int64 // tie-breaker: the observance's DTSTART
	from  int   // the observance's TZOFFSETFROM
	typ   zoneType
}

// zoneType is a TZif local time type.
type zoneType struct {
	off  int
	dst  bool
	name string
}

// compileVTimezone evaluates the STANDARD and DAYLIGHT sub-components of c
// into a Location named tzid. Sub-components that make no sense (no usable
// DTSTART or TZOFFSETTO, an RRULE outside what VTIMEZONEs use) are skipped;
// without a usable one, or when a limit is hit, it fails. It recovers from
// panics and reports them as errors.
func compileVTimezone(tzid string, c *ical.Component) (loc *time.Location, st compileStats, err error) {
	defer func() {
		if p := recover(); p != nil {
			loc, err = nil, fmt.Errorf("tz: panic compiling VTIMEZONE %q: %v", tzid, p)
		}
	}()
	if c == nil {
		return nil, st, errors.New("tz: nil VTIMEZONE")
	}
	obs, err := observances(tzid, c, &st)
	if err != nil {
		return nil, st, err
	}
	onsets, err := sortedOnsets(tzid, obs, &st)
	if err != nil {
		return nil, st, err
	}
	initial := initialType(onsets, obs)
	times, idx, types, err := tzifTables(tzid, initial, transitions(onsets, initial))
	if err != nil {
		return nil, st, err
	}
	st.transitions = len(times)
	loc, err = time.LoadLocationFromTZData(tzid, encodeTZif(times, idx, types))
	if err != nil {
		return nil, st, fmt.Errorf("tz: VTIMEZONE %q: %v", tzid, err)
	}
	return loc, st, nil
}

// observances reads the STANDARD and DAYLIGHT sub-components of c,
// skipping (and counting in st) those that make no sense; it fails when
// there are too many, or no usable one.
func observances(tzid string, c *ical.Component, st *compileStats) ([]*observance, error) {
	var obs []*observance
	for _, child := range c.Children {
		if child == nil {
			continue
		}
		var daylight bool
		switch strings.ToUpper(child.Name) {
		case ical.CompTimezoneStandard:
		case ical.CompTimezoneDaylight:
			daylight = true
		default:
			continue
		}
		if len(obs) >= maxObservances {
			return nil, fmt.Errorf("tz: VTIMEZONE %q has more than %d observances", tzid, maxObservances)
		}
		o, err := parseObservance(child, daylight)
		if err != nil {
			st.skipped++
			continue
		}
		obs = append(obs, o)
	}
	st.observances = len(obs)
	if len(obs) == 0 {
		return nil, fmt.Errorf("tz: VTIMEZONE %q has no usable STANDARD or DAYLIGHT", tzid)
	}
	return obs, nil
}

// sortedOnsets returns the onsets of obs up to the end of lastYear, in
// time order (at one instant, in the observances' order).
func sortedOnsets(tzid string, obs []*observance, st *compileStats) ([]onset, error) {
	end := time.Date(lastYear+1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	var onsets []onset
	for _, o := range obs {
		if err := o.onsets(end, &onsets, st); err != nil {
			return nil, err
		}
	}
	st.onsets = len(onsets)
	if len(onsets) == 0 {
		return nil, fmt.Errorf("tz: VTIMEZONE %q has no onset before %d", tzid, lastYear+1)
	}
	sort.SliceStable(onsets, func(i, j int) bool {
		if onsets[i].at != onsets[j].at {
			return onsets[i].at < onsets[j].at
		}
		return onsets[i].order < onsets[j].order
	})
	return onsets, nil
}

// initialType is the zone's type before its first onset: the first
// observance's TZOFFSETFROM, taken as standard time, named after a
// STANDARD observance with that offset if there is one.
func initialType(onsets []onset, obs []*observance) zoneType {
	initial := zoneType{off: onsets[0].from}
	initial.name = offsetAbbrev(initial.off)
	for _, o := range obs {
		if !o.daylight && o.to == initial.off && o.name != "" {
			initial.name = o.name
			break
		}
	}
	return initial
}

// transition is the zone changing to typ at the Unix time at.
type transition struct {
	at  int64
	typ zoneType
}

// transitions merges onsets (sorted) into the zone's transitions from
// initial: of onsets at the same instant the last in order wins; an onset
// that changes nothing is dropped.
func transitions(onsets []onset, initial zoneType) []transition {
	var ts []transition
	for _, on := range onsets {
		if n := len(ts); n > 0 && ts[n-1].at == on.at {
			ts[n-1].typ = on.typ
			continue
		}
		ts = append(ts, transition{on.at, on.typ})
	}
	var merged []transition
	cur := initial
	for _, t := range ts {
		if t.typ == cur {
			continue
		}
		merged = append(merged, t)
		cur = t.typ
	}
	return merged
}

// tzifTables returns the TZif tables of the transitions ts: their times,
// the index of each one's type, and the types. Index 0 is the initial
// type, used by no transition, which is how Go (and RFC 8536) pick the
// type for times before the first one. Where the names do not fit a
// TZif abbreviation table, the types are named after their offsets.
func tzifTables(tzid string, initial zoneType, ts []transition) (times []int64, idx []uint8, types []zoneType, err error) {
	types = []zoneType{initial}
	index := map[zoneType]int{}
	times = make([]int64, 0, len(ts))
	idx = make([]uint8, 0, len(ts))
	for _, t := range ts {
		i, ok := index[t.typ]
		if !ok {
			if len(types) >= 256 {
				return nil, nil, nil, fmt.Errorf("tz: VTIMEZONE %q has too many distinct offsets", tzid)
			}
			i = len(types)
			types = append(types, t.typ)
			index[t.typ] = i
		}
		times = append(times, t.at)
		idx = append(idx, uint8(i))
	}
	if abbrevBytes(types) > 255 {
		for i := range types {
			types[i].name = offsetAbbrev(types[i].off)
		}
		if abbrevBytes(types) > 255 {
			return nil, nil, nil, fmt.Errorf("tz: VTIMEZONE %q has too many distinct zone names", tzid)
		}
	}
	return times, idx, types, nil
}

// abbrevBytes returns the size of the TZif abbreviation table for types,
// whose offsets into it must fit a byte.
func abbrevBytes(types []zoneType) int {
	seen := map[string]bool{}
	n := 0
	for _, t := range types {
		if !seen[t.name] {
			seen[t.name] = true
			n += len(t.name) + 1
		}
	}
	return n
}

// sanitizeAbbrev keeps a TZNAME usable as a TZif abbreviation: 1 to 16 ASCII
// letters, digits, '+' or '-'. Anything else yields "".
func sanitizeAbbrev(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 16 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-') {
			return ""
		}
	}
	return s
}

// offsetAbbrev names an offset the way tzdata names unnamed zones: "+01",
// "-0530", "+053015".
func offsetAbbrev(off int) string {
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	h, m, s := off/3600, off/60%60, off%60
	b := []byte{sign, byte('0' + h/10), byte('0' + h%10)}
	if m != 0 || s != 0 {
		b = append(b, byte('0'+m/10), byte('0'+m%10))
	}
	if s != 0 {
		b = append(b, byte('0'+s/10), byte('0'+s%10))
	}
	return string(b)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}
