// Package tz resolves iCalendar TZID parameters to *time.Location.
//
// A TZID is looked up, in this order:
//
//  1. as an IANA zone name ("Europe/Berlin"), also when it carries a
//     vendor prefix such as Mozilla's "/mozilla.org/20050126_1/Europe/Berlin";
//  2. as a Windows zone name ("W. Europe Standard Time", what Outlook and
//     Exchange write), through the CLDR windowsZones mapping;
//  3. through the VTIMEZONE with that TZID carried in the same calendar,
//     whose STANDARD and DAYLIGHT observances are compiled into a Location;
//  4. as the configured default zone.
//
// The IANA database is embedded (time/tzdata), so resolution does not
// depend on the zoneinfo files of the host.
package tz

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	_ "time/tzdata" // IANA zones on hosts without zoneinfo files.

	"github.com/emersion/go-ical"
)

// Source says which step of the resolution order found a Location.
type Source int

const (
	// Default means nothing matched and the resolver's default zone was used.
	Default Source = iota
	// IANA means the TZID is an IANA zone name, possibly with a vendor prefix.
	IANA
	// Windows means the TZID is a Windows zone name mapped through CLDR.
	Windows
	// VTimezone means the Location was compiled from the calendar's VTIMEZONE.
	VTimezone
)

// String returns the name of the source, such as "IANA".
func (s Source) String() string {
	switch s {
	case Default:
		return "Default"
	case IANA:
		return "IANA"
	case Windows:
		return "Windows"
	case VTimezone:
		return "VTimezone"
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// maxTZIDLen bounds the TZIDs looked at; longer ones resolve to the default.
const maxTZIDLen = 256

// Resolver resolves TZIDs for one calendar. It is safe for concurrent use
// after construction.
type Resolver struct {
	def *time.Location
	// vtz maps a normalized TZID to its VTIMEZONE. It is written only by
	// NewResolver; each entry compiles its component at most once.
	vtz map[string]*vtzEntry
}

// vtzEntry is one VTIMEZONE of a calendar, compiled on first use.
type vtzEntry struct {
	tzid string
	comp *ical.Component
	once sync.Once
	loc  *time.Location // set inside once; nil if the component is unusable
}

// NewResolver makes a resolver for a calendar whose VTIMEZONE components are
// given (go-ical *ical.Component with Name "VTIMEZONE"); def is used when
// nothing else matches (nil means UTC).
//
// Components that are nil, not VTIMEZONE, or without a TZID are ignored; of
// several with the same TZID the first counts. The components must not be
// modified while the Resolver is in use. They are compiled lazily, only when
// a TZID is not an IANA or Windows name, and the result is shared through a
// bounded process-wide cache keyed by the component's content.
func NewResolver(vtimezones []*ical.Component, def *time.Location) *Resolver {
	if def == nil {
		def = time.UTC
	}
	r := &Resolver{def: def}
	for _, c := range vtimezones {
		if c == nil || !strings.EqualFold(c.Name, ical.CompTimezone) {
			continue
		}
		p := c.Props.Get(ical.PropTimezoneID)
		if p == nil {
			continue
		}
		// The TZID property is TEXT, so "Amsterdam\, Berlin" there is
		// "Amsterdam, Berlin" in the parameters that refer to it; some
		// clients do not escape at all. Both spellings find the zone.
		var entry *vtzEntry
		for _, value := range []string{unescapeText(p.Value), p.Value} {
			id := normalizeTZID(value)
			if id == "" || len(id) > maxTZIDLen {
				continue
			}
			if r.vtz == nil {
				r.vtz = make(map[string]*vtzEntry)
			}
			if _, dup := r.vtz[id]; dup {
				continue
			}
			if entry == nil {
				entry = &vtzEntry{tzid: id, comp: c}
			}
			r.vtz[id] = entry
		}
	}
	return r
}

// Default returns the location Resolve falls back to.
func (r *Resolver) Default() *time.Location { return r.def }

// Resolve returns the location for tzid and how it was found (Source: IANA,
// Windows, VTimezone, Default). Never fails: unknown → default, with Source
// Default.
//
// Surrounding white space and quotes are ignored. An IANA or Windows name is
// preferred over a VTIMEZONE of the same TZID, since the database knows the
// zone's history and the VTIMEZONE often only its current rules.
func (r *Resolver) Resolve(tzid string) (*time.Location, Source) {
	id := normalizeTZID(tzid)
	if id == "" || len(id) > maxTZIDLen {
		return r.def, Default
	}
	if loc, src, ok := lookupName(id); ok {
		return loc, src
	}
	if e := r.vtz[id]; e != nil {
		e.once.Do(func() { e.loc = compileCached(e.tzid, e.comp) })
		if e.loc != nil {
			return e.loc, VTimezone
		}
	}
	return r.def, Default
}

// Lookup resolves a TZID by name alone, without any VTIMEZONE or default:
// steps 1 and 2 of Resolve. It is safe for concurrent use.
func Lookup(tzid string) (*time.Location, Source, bool) {
	id := normalizeTZID(tzid)
	if id == "" || len(id) > maxTZIDLen {
		return nil, Default, false
	}
	return lookupName(id)
}

// lookupName tries an IANA name, an IANA name behind a vendor prefix, and a
// Windows name, in that order.
func lookupName(id string) (*time.Location, Source, bool) {
	if loc, ok := LoadIANA(id); ok {
		return loc, IANA, true
	}
	if loc, ok := loadIANASuffix(id); ok {
		return loc, IANA, true
	}
	if iana, ok := WindowsToIANA(id); ok {
		if loc, ok := LoadIANA(iana); ok {
			return loc, Windows, true
		}
	}
	return nil, Default, false
}

// maxSuffixTries bounds the vendor-prefix suffixes tried for one TZID.
const maxSuffixTries = 8

// loadIANASuffix finds an IANA name at the end of a TZID with a vendor
// prefix, longest suffix first: "/mozilla.org/20050126_1/Europe/Berlin",
// "/citadel.org/20190914_1/Europe/Berlin",
// "/softwarestudio.org/Olson_20011030_5/America/New_York".
// A one-segment suffix ("UTC") counts only after a prefix that starts with
// "/", the libical convention for globally unique TZIDs, so that "Foo/EST"
// does not become EST.
func loadIANASuffix(id string) (*time.Location, bool) {
	rest := id
	for tries := 0; tries < maxSuffixTries; tries++ {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return nil, false
		}
		rest = rest[i+1:]
		if rest == "" {
			return nil, false
		}
		if !strings.Contains(rest, "/") && !strings.HasPrefix(id, "/") {
			return nil, false
		}
		if loc, ok := LoadIANA(rest); ok {
			return loc, true
		}
	}
	return nil, false
}

// normalizeTZID removes what clients put around a TZID: white space and
// (possibly repeated) surrounding double or single quotes.
// unescapeText undoes RFC 5545 TEXT escaping (\\, \; \, \n).
func unescapeText(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return textUnescaper.Replace(s)
}

func normalizeTZID(s string) string {
	s = strings.TrimSpace(s)
	for len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// ianaCache holds the results of time.LoadLocation by name: a *time.Location,
// or nil for a name that did not load. Successes are bounded by the size of
// the zone database; failures are cached only while ianaMisses is below
// maxIANAMisses, so hostile TZIDs cannot grow it without bound.
var (
	ianaCache  sync.Map // string → *time.Location (nil: not a zone)
	ianaMisses atomic.Int64
)

const maxIANAMisses = 4096

// LoadIANA returns the IANA zone name, loading it at most once per process
// (time.LoadLocation reads and parses the zone each time). It reports false
// for names that are not zones, and for "" and "Local", whose meaning
// depends on the host. It is safe for concurrent use.
func LoadIANA(name string) (*time.Location, bool) {
	if v, ok := ianaCache.Load(name); ok {
		loc := v.(*time.Location)
		return loc, loc != nil
	}
	if !plausibleIANA(name) {
		return nil, false
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
		if ianaMisses.Load() >= maxIANAMisses {
			return nil, false
		}
		if _, loaded := ianaCache.LoadOrStore(name, loc); !loaded {
			ianaMisses.Add(1)
		}
		return nil, false
	}
	v, _ := ianaCache.LoadOrStore(name, loc)
	loc = v.(*time.Location)
	return loc, loc != nil
}

// plausibleIANA reports whether name has the shape of an IANA zone name:
// parts separated by '/', each an upper-case ASCII letter followed by
// letters, digits, '_', '-' or '+'. All names in the tz database have this
// shape; it keeps paths, junk, and the other files of a zoneinfo directory
// ("localtime", "posixrules", "right/...") away from time.LoadLocation.
func plausibleIANA(name string) bool {
	if name == "" || len(name) > 64 || name == "Local" {
		return false
	}
	prev := byte('/')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'A' <= c && c <= 'Z':
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-', c == '+':
			if prev == '/' {
				return false
			}
		case c == '/':
			if prev == '/' {
				return false
			}
		default:
			return false
		}
		prev = c
	}
	return prev != '/'
}

var textUnescaper = strings.NewReplacer(`\\`, `\`, `\;`, ";", `\,`, ",", `\n`, "\n", `\N`, "\n")
