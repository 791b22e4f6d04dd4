// Package privacy makes the views of calendar events that requesters other
// than their owner get: what an event's class (CLASS) and the requester's
// access level let them see.
//
// It is pure: events in, copies out, no I/O. Nothing here modifies its
// input (the feed cache shares parsed events between views), and every
// function is safe for concurrent use; a Series is safe for concurrent
// reads once built.
//
// A reduced event is built from an allow-list, never by removing what is
// known to be sensitive: it keeps the properties that say when an event
// happens and whether it makes its owner busy, each only with a value of
// the syntax its meaning needs and with only the parameters TZID, VALUE and
// RANGE. Everything else — any other property, any other parameter, a value
// that does not parse, an X- or unknown property or rule part — is left
// out. A time zone is reduced the same way, to its transition rules (Zone),
// and a TZID that is not a time zone database name is replaced by a neutral
// one (TZID), the same in events and zones.
package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/tz"
)

// Class is how much of an event its CLASS lets non-owners see, from least
// to most restrictive.
type Class int

const (
	// Public events are shown to readers as stored.
	Public Class = iota
	// Confidential events show readers their times, titled "Busy".
	Confidential
	// Private events show readers their times only. A CLASS fbpub does
	// not know counts as private (RFC 5545 §3.8.1.3).
	Private
)

func (c Class) String() string {
	switch c {
	case Public:
		return "PUBLIC"
	case Confidential:
		return "CONFIDENTIAL"
	}
	return "PRIVATE"
}

// ClassOf returns the class ev states for itself: Public when it has no
// CLASS, and the most restrictive when it has several (RFC 5545 allows
// one: whichever a client reads, it is never shown more than any of them
// allows).
func ClassOf(ev *ical.Component) Class {
	c := Public
	for _, p := range ev.Props.Values(ical.PropClass) {
		switch strings.ToUpper(strings.TrimSpace(p.Value)) {
		case "", "PUBLIC":
		case "CONFIDENTIAL":
			c = max(c, Confidential)
		default:
			c = Private
		}
	}
	return c
}

// Event returns what a requester with access a sees of ev. c is the class
// that applies to ev and hideUID whether its UID is hidden, as a Series
// says (Series.Class, Series.HideUID): the class of one message's event is
// not its own alone.
//
//   - OwnerAccess: ev as stored, without alarms;
//   - ReadAccess: the same for a Public event (with its UID replaced by a
//     keyed hash when hideUID: a public override of a hidden series); a
//     Confidential one reduced and titled "Busy"; a Private one reduced,
//     with no title;
//   - FreeBusyAccess: reduced and titled "Busy", whatever its class, with
//     its UID replaced;
//   - NoAccess: nil.
//
// The result shares properties with ev; neither may be modified.
func Event(ev *ical.Component, a acl.Access, c Class, hideUID bool) *ical.Component {
	return std.event(ev, a, c, hideUID)
}

// Zone returns the reduced copy of the VTIMEZONE z, under the TZID name
// (for a zone of reduced events, TZID of the zone's own TZID): its
// STANDARD and DAYLIGHT observances with their onset (DTSTART, RRULE,
// RDATE) and offsets (TZOFFSETFROM, TZOFFSETTO), nothing else — no
// TZNAME, TZURL, COMMENT, X-LIC-LOCATION or X- property. It returns nil
// when no usable observance is left.
func Zone(z *ical.Component, name string) *ical.Component { return std.zone(z, name) }

// TZID returns the name a reduced view gives the time zone that its input
// calls id: the time zone database's name for an IANA name (also behind a
// vendor prefix such as Mozilla's) or a Windows name, and otherwise a
// neutral name derived from id with a key made at start-up, so that equal
// ids stay equal within one process and a zone's own name (which is text
// its owner wrote, "Home (Secret Street)") never shows.
func TZID(id string) string { return std.tzid(id) }

// HashUID returns the keyed hash that stands for uid where a UID is
// hidden: clients can follow an event from one fetch to the next without
// learning its UID. The key is made at start-up.
func HashUID(uid string) string { return "busy-" + keyed(uid, 16) }

// key keys HashUID and the neutral TZIDs; it is made once per process, so
// hidden UIDs cannot be guessed from a feed.
var key = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// macs recycles the keyed hashes: one is made for every hidden UID of
// every message rendered.
var macs = sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}

// keyed returns the first n bytes of the keyed hash of s, in hex.
func keyed(s string, n int) string {
	m := macs.Get().(hash.Hash)
	defer macs.Put(m)
	m.Reset()
	m.Write([]byte(s))
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:n])
}

// rules is the reduction as data: the allow-lists and the switches of the
// rules that are not lists. std is the only one fbpub uses; tests knock
// rules out one at a time to prove that the tests notice (mutation_test.go).
type rules struct {
	// props is the allow-list of a reduced event's properties, by name.
	props map[string]keep
	// observance is the allow-list of a reduced zone's STANDARD and
	// DAYLIGHT properties.
	observance map[string]keep
	// hashUID replaces a hidden UID by HashUID.
	hashUID bool
	// busyTitle titles reduced events "Busy" (not private ones seen by a
	// reader, which get no title).
	busyTitle bool
	// classMark writes CLASS:PRIVATE or CLASS:CONFIDENTIAL on the events a
	// reader sees reduced, so that their clients show a lock.
	classMark bool
	// neutralTZID replaces TZIDs that are not database names.
	neutralTZID bool
	// stripAlarms removes VALARMs from the views that show events whole.
	stripAlarms bool
	// seriesClass makes an override at least as strict as its series.
	seriesClass bool
	// orphanPrivate makes an override whose series is not in the set
	// Private.
	orphanPrivate bool
	// futureSeries makes a THISANDFUTURE override's class its series'.
	futureSeries bool
	// strictest makes a UID with several masters take the strictest.
	strictest bool
}

// keep is one allow-listed property: how its value is checked (and
// written back in canonical form), and the parameters it keeps, each with
// the check of its value. A value or parameter that fails its check is
// dropped: the value with the whole property.
type keep struct {
	value  func(string) (string, bool)
	params map[string]func(string) (string, bool)
}

// std is the reduction fbpub applies.
var std = &rules{
	props: map[string]keep{
		ical.PropDateTimeStart:       {value: oneDateTime, params: timeParams},
		ical.PropDateTimeEnd:         {value: oneDateTime, params: timeParams},
		ical.PropRecurrenceID:        {value: oneDateTime, params: ridParams},
		ical.PropExceptionDates:      {value: dateTimes, params: timeParams},
		ical.PropRecurrenceDates:     {value: dateTimesOrPeriods, params: timeParams},
		ical.PropRecurrenceRule:      {value: recur},
		ical.PropDuration:            {value: duration},
		ical.PropDateTimeStamp:       {value: utcDateTime},
		ical.PropSequence:            {value: integer},
		ical.PropTransparency:        {value: oneOf("OPAQUE", "TRANSPARENT")},
		ical.PropStatus:              {value: oneOf("TENTATIVE", "CONFIRMED", "CANCELLED")},
		"X-MICROSOFT-CDO-BUSYSTATUS": {value: oneOf("FREE", "TENTATIVE", "BUSY", "OOF", "WORKINGELSEWHERE")},
	},
	observance: map[string]keep{
		ical.PropDateTimeStart:      {value: oneDateTime, params: map[string]func(string) (string, bool){ical.ParamValue: valueType}},
		ical.PropTimezoneOffsetFrom: {value: utcOffset},
		ical.PropTimezoneOffsetTo:   {value: utcOffset},
		ical.PropRecurrenceRule:     {value: recur},
		ical.PropRecurrenceDates:    {value: dateTimesOrPeriods, params: map[string]func(string) (string, bool){ical.ParamValue: valueType}},
	},
	hashUID: true, busyTitle: true, classMark: true, neutralTZID: true, stripAlarms: true,
	seriesClass: true, orphanPrivate: true, futureSeries: true, strictest: true,
}

var (
	timeParams = map[string]func(string) (string, bool){ical.ParamTimezoneID: nil, ical.ParamValue: valueType}
	ridParams  = map[string]func(string) (string, bool){ical.ParamTimezoneID: nil, ical.ParamValue: valueType, ical.ParamRange: oneOf("THISANDFUTURE")}
)

func (r *rules) event(ev *ical.Component, a acl.Access, c Class, hideUID bool) *ical.Component {
	switch {
	case a <= acl.NoAccess:
		return nil
	case a >= acl.OwnerAccess:
		return r.whole(ev, false)
	case a == acl.ReadAccess && c == Public:
		return r.whole(ev, hideUID)
	case a == acl.ReadAccess:
		return r.reduce(ev, c, hideUID)
	}
	return r.reduce(ev, Public, true)
}

// whole returns ev without alarms, its UID hashed when hideUID.
func (r *rules) whole(ev *ical.Component, hideUID bool) *ical.Component {
	out := &ical.Component{Name: ev.Name, Props: ev.Props}
	for _, ch := range ev.Children {
		if !r.stripAlarms || ch.Name != ical.CompAlarm {
			out.Children = append(out.Children, ch)
		}
	}
	if hideUID && r.hashUID {
		out.Props = make(ical.Props, len(ev.Props))
		for name, props := range ev.Props {
			out.Props[name] = props
		}
		out.Props[ical.PropUID] = plain(ical.PropUID, HashUID(uidOf(ev)))
	}
	return out
}

// reduce returns the allow-listed part of ev. A reader sees c's mark and
// title (c is Public for the busy view, where every event is "Busy").
func (r *rules) reduce(ev *ical.Component, c Class, hideUID bool) *ical.Component {
	out := &ical.Component{Name: ev.Name, Props: r.allowed(ev.Props, r.props)}
	if hideUID && r.hashUID {
		out.Props[ical.PropUID] = plain(ical.PropUID, HashUID(uidOf(ev)))
	} else if uid := ev.Props[ical.PropUID]; len(uid) > 0 {
		// A UID kept as written: its parameters are not.
		out.Props[ical.PropUID] = plain(ical.PropUID, uid[0].Value)
	}
	if r.busyTitle && c != Private {
		out.Props[ical.PropSummary] = plain(ical.PropSummary, "Busy")
	}
	if r.classMark && c != Public {
		out.Props[ical.PropClass] = plain(ical.PropClass, c.String())
	}
	return out
}

// allowed returns the properties of props that allow lets through.
func (r *rules) allowed(props ical.Props, allow map[string]keep) ical.Props {
	out := make(ical.Props, 8)
	for name, ps := range props {
		k, ok := allow[strings.ToUpper(name)]
		if !ok {
			continue
		}
		name = strings.ToUpper(name)
		for _, p := range ps {
			v, ok := k.value(p.Value)
			if !ok {
				continue
			}
			np := ical.Prop{Name: name, Value: v}
			for pn, pvs := range p.Params {
				pn = strings.ToUpper(pn)
				check, ok := k.params[pn]
				if !ok || len(pvs) != 1 {
					continue
				}
				pv, ok := pvs[0], true
				if pn == ical.ParamTimezoneID {
					pv = r.tzid(pv)
				} else if check != nil {
					pv, ok = check(pv)
				}
				if ok {
					if np.Params == nil {
						np.Params = ical.Params{}
					}
					np.Params[pn] = []string{pv}
				}
			}
			out[name] = append(out[name], np)
		}
	}
	return out
}

func (r *rules) zone(z *ical.Component, name string) *ical.Component {
	out := &ical.Component{Name: ical.CompTimezone, Props: make(ical.Props, 1)}
	id := ical.NewProp(ical.PropTimezoneID)
	id.SetText(name)
	out.Props.Set(id)
	for _, ch := range z.Children {
		n := strings.ToUpper(ch.Name)
		if n != ical.CompTimezoneStandard && n != ical.CompTimezoneDaylight {
			continue
		}
		o := &ical.Component{Name: n, Props: r.allowed(ch.Props, r.observance)}
		if len(o.Props[ical.PropDateTimeStart]) != 1 || len(o.Props[ical.PropTimezoneOffsetTo]) != 1 || len(o.Props[ical.PropTimezoneOffsetFrom]) != 1 {
			continue // not an observance anyone could use
		}
		out.Children = append(out.Children, o)
	}
	if len(out.Children) == 0 {
		return nil
	}
	return out
}

func (r *rules) tzid(id string) string {
	if !r.neutralTZID {
		return id
	}
	if loc, _, ok := tz.Lookup(id); ok {
		return loc.String()
	}
	return "fbpub-tz-" + keyed(id, 8)
}

// uidOf is ev's UID as the calendar package groups it.
func uidOf(ev *ical.Component) string {
	if p := ev.Props.Get(ical.PropUID); p != nil {
		return p.Value
	}
	return ""
}

// plain is a property holding value, which needs no escaping.
func plain(name, value string) []ical.Prop {
	return []ical.Prop{{Name: name, Value: value}}
}

// Series holds the class of the series of each UID in a set of calendar
// objects — the objects of one answer, however many messages and folders
// they come from: a UID's class is a property of the UID, not of the
// message that happens to hold an override. A series' class is the
// strictest of its masters' (a folder may hold two copies of one UID for a
// while) and of its THISANDFUTURE overrides' (clients apply those to the
// master's later instances themselves, so the master cannot be shown as
// less strict than they are).
//
// A Series is not safe for concurrent use while objects are added, and
// safe for concurrent reads after.
type Series struct {
	r *rules
	// class holds the class of each UID that has a master in the set,
	// future the strictest class of each UID's THISANDFUTURE overrides.
	class, future map[string]Class
}

// NewSeries returns the series of the given objects.
func NewSeries(objs ...[]*calendar.Object) *Series { return std.newSeries(objs...) }

func (r *rules) newSeries(objs ...[]*calendar.Object) *Series {
	s := &Series{r: r, class: map[string]Class{}, future: map[string]Class{}}
	for _, os := range objs {
		s.Add(os)
	}
	return s
}

// Add adds objs to the set.
func (s *Series) Add(objs []*calendar.Object) {
	for _, o := range objs {
		if s.r.futureSeries {
			// A THISANDFUTURE override may be stored apart from its
			// master too.
			for _, ov := range o.Overrides {
				if isFuture(ov) {
					s.future[o.UID] = max(s.future[o.UID], ClassOf(ov))
				}
			}
		}
		c, ok := s.r.objectSeries(o)
		if !ok {
			continue
		}
		if old, seen := s.class[o.UID]; seen {
			if s.r.strictest {
				c = max(c, old)
			} else {
				c = old
			}
		}
		s.class[o.UID] = c
	}
}

// Of returns the class of uid's series, and false when the set holds no
// master for uid (an orphan override).
func (s *Series) Of(uid string) (Class, bool) {
	c, ok := s.class[uid]
	if ok {
		c = max(c, s.future[uid])
	}
	return c, ok
}

// Class returns the class that applies to ev, an event with UID uid: the
// stricter of its own and its series'. An override whose series the set
// does not hold is Private: its series may be private where the requester
// cannot see it (another folder, another message not yet read), and
// nothing shows otherwise.
func (s *Series) Class(uid string, ev *ical.Component) Class {
	series, ok := s.Of(uid)
	return s.r.eventClass(ev, series, ok)
}

// HideUID reports whether uid is hidden from readers: its series is not
// public, or the set holds none.
func (s *Series) HideUID(uid string) bool {
	series, ok := s.Of(uid)
	return s.r.hideUID(series, ok)
}

// ObjectClass and ObjectHideUID are Series.Class and Series.HideUID for a
// set that holds o alone, without building one.
func ObjectClass(o *calendar.Object, ev *ical.Component) Class {
	series, ok := std.objectSeries(o)
	return std.eventClass(ev, series, ok)
}

// ObjectHideUID is Series.HideUID for a set that holds o alone.
func ObjectHideUID(o *calendar.Object) bool {
	series, ok := std.objectSeries(o)
	return std.hideUID(series, ok)
}

// ObjectSeries is Series.Of for a set that holds o alone.
func ObjectSeries(o *calendar.Object) (Class, bool) { return std.objectSeries(o) }

func (r *rules) objectSeries(o *calendar.Object) (Class, bool) {
	if o.Master == nil {
		return Public, false
	}
	c := ClassOf(o.Master)
	if r.futureSeries {
		for _, ov := range o.Overrides {
			if isFuture(ov) {
				c = max(c, ClassOf(ov))
			}
		}
	}
	return c, true
}

func (r *rules) eventClass(ev *ical.Component, series Class, ok bool) Class {
	c := ClassOf(ev)
	if ev.Props.Get(ical.PropRecurrenceID) == nil {
		// A master: its series is the UID's, which duplicates and
		// THISANDFUTURE overrides may have made stricter.
		if ok && r.seriesClass {
			c = max(c, series)
		}
		return c
	}
	switch {
	case !ok && r.orphanPrivate:
		return Private
	case ok && r.seriesClass:
		return max(c, series)
	}
	return c
}

func (r *rules) hideUID(series Class, ok bool) bool {
	if !ok {
		return r.orphanPrivate
	}
	return series != Public
}

// isFuture reports whether ov is a THISANDFUTURE override.
func isFuture(ov *ical.Component) bool {
	rid := ov.Props.Get(ical.PropRecurrenceID)
	return rid != nil && strings.EqualFold(rid.Params.Get(ical.ParamRange), "THISANDFUTURE")
}
