package calendar

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// Object is one calendar object resource: the components of one message
// that share a UID (a master VEVENT and its RECURRENCE-ID overrides, or a
// VFREEBUSY), with the VTIMEZONEs of the calendar they came from; or,
// made by Unite, those of one UID across several messages.
//
// Objects are immutable once built: views that hide details make reduced
// copies and never edit an Object that a cache may share.
type Object struct {
	UID string
	// Master is the VEVENT without RECURRENCE-ID; nil when a message holds
	// only overrides (an invitation to one instance).
	Master *ical.Component
	// Overrides are the VEVENTs with a RECURRENCE-ID, in input order.
	Overrides []*ical.Component
	// FreeBusy holds VFREEBUSY components, whose periods count as published.
	FreeBusy []*ical.Component
	// Availability holds VAVAILABILITY components (RFC 7953): the owner's
	// working hours (see Availabilities).
	Availability []*ical.Component
	// Timezones are the VTIMEZONEs of the VCALENDAR the object came from.
	Timezones []*ical.Component
}

// Events returns the master (when present) followed by the overrides.
func (o *Object) Events() []*ical.Component {
	var out []*ical.Component
	if o.Master != nil {
		out = append(out, o.Master)
	}
	return append(out, o.Overrides...)
}

// Objects groups the components of the given calendars (those of one
// message) by UID: an override in one VCALENDAR belongs to the master in
// another. Components other than VEVENT, VFREEBUSY, VAVAILABILITY and VTIMEZONE (VTODO,
// VJOURNAL, …) are ignored: they take no time in a schedule. A component
// with no UID gets a stable one derived from its content, so that feeds
// stay valid. Every object gets the VTIMEZONEs of all the calendars.
func Objects(cals []*ical.Calendar) []*Object {
	var tzs []*ical.Component
	for _, cal := range cals {
		for _, c := range cal.Children {
			if c.Name == ical.CompTimezone {
				tzs = append(tzs, c)
			}
		}
	}
	var out []*Object
	byUID := map[string]*Object{}
	get := func(uid string) *Object {
		o := byUID[uid]
		if o == nil {
			o = &Object{UID: uid, Timezones: tzs}
			byUID[uid] = o
			out = append(out, o)
		}
		return o
	}
	for _, cal := range cals {
		for _, c := range cal.Children {
			switch c.Name {
			case ical.CompEvent:
				o := get(uidOf(c))
				if c.Props.Get(ical.PropRecurrenceID) != nil {
					o.Overrides = append(o.Overrides, c)
				} else if o.Master == nil {
					o.Master = c
				} else {
					// Two masters with one UID: keep both rather than
					// lose one; the second is its own object.
					out = append(out, &Object{UID: o.UID, Master: c, Timezones: tzs})
				}
			case ical.CompFreeBusy:
				o := get(uidOf(c))
				o.FreeBusy = append(o.FreeBusy, c)
			case CompAvailability:
				o := get(uidOf(c))
				o.Availability = append(o.Availability, c)
			}
		}
	}
	return out
}

// Unite joins the objects of objs that share a UID into one object, as
// RFC 5545 identifies an event by its UID wherever its components are
// stored: a series and its RECURRENCE-ID overrides may sit in different
// messages (an invitation to one instance, Kolab clients, an upload), and
// a folder may hold two copies of one series for a while (clients replace
// a message by appending first and deleting after).
//
// For each UID whose components span several objects:
//
//   - the master is that of the newest copy (Version over the copy's
//     events; on a tie the later in objs, as the copy appended last): an
//     object that holds a master is one copy of the event, and the
//     overrides stored with a master that lost are dropped with it, as
//     the rest of an outdated copy;
//   - the overrides are the winning copy's and those of every object that
//     holds overrides only (stored apart from any master). Two overrides
//     of one instance are left to Instances, which counts the newest;
//   - VFREEBUSY and VAVAILABILITY components are all kept;
//   - the VTIMEZONEs are the winning copy's, then those of the other
//     objects that contribute: a TZID the winning copy defines resolves
//     to its definition.
//
// The united objects keep the place of the UID's first object in objs;
// objects whose UID no other shares are returned as they are, and objs
// itself when no UID spans several objects. Nothing in objs is modified.
//
// stored maps each component of a united object to the object it came
// from (to tell which message, and so which folder, holds it); it is nil
// when no object was united. Callers must unite only the objects one
// requester may see (see freebusy.Compute): an override stored where the
// requester may not look must not change what they see elsewhere.
func Unite(objs []*Object) (united []*Object, stored map[*ical.Component]*Object) {
	// One pass finds the UIDs that several objects share (most folders
	// have none), a second gathers their objects.
	seen := make(map[string]struct{}, len(objs))
	var parts map[string][]*Object
	for _, o := range objs {
		if _, dup := seen[o.UID]; !dup {
			seen[o.UID] = struct{}{}
		} else if parts == nil {
			parts = map[string][]*Object{o.UID: nil}
		} else {
			parts[o.UID] = nil
		}
	}
	if parts == nil {
		return objs, nil
	}
	for _, o := range objs {
		if ps, ok := parts[o.UID]; ok {
			parts[o.UID] = append(ps, o)
		}
	}
	united = make([]*Object, 0, len(seen))
	stored = map[*ical.Component]*Object{}
	for _, o := range objs {
		ps, ok := parts[o.UID]
		switch {
		case !ok:
			united = append(united, o)
		case ps != nil:
			united = append(united, unite(ps, stored))
			parts[o.UID] = nil // done: the UID's other objects are in it
		}
	}
	return united, stored
}

// unite joins the objects ps of one UID (see Unite), recording in stored
// where each component of the result came from.
func unite(ps []*Object, stored map[*ical.Component]*Object) *Object {
	var win *Object
	var winV Version
	for _, p := range ps {
		if p.Master == nil {
			continue
		}
		if v := VersionOf(p.Events()...); win == nil || v.Compare(winV) >= 0 {
			win, winV = p, v
		}
	}
	u := &Object{UID: ps[0].UID}
	var zones []*ical.Component // the first VTIMEZONE of each slice taken
	addZones := func(tzs []*ical.Component) {
		if len(tzs) == 0 || slices.Contains(zones, tzs[0]) {
			return // none, or the same message's, already taken
		}
		zones = append(zones, tzs[0])
		// Clipped, so that appending never writes into a message's slice.
		u.Timezones = append(slices.Clip(u.Timezones), tzs...)
	}
	if win != nil {
		u.Master = win.Master
		stored[win.Master] = win
		addZones(win.Timezones)
	}
	for _, p := range ps {
		if p.Master == nil || p == win {
			for _, ov := range p.Overrides {
				u.Overrides = append(u.Overrides, ov)
				stored[ov] = p
			}
			if len(p.Overrides) > 0 {
				addZones(p.Timezones)
			}
		}
		for _, c := range p.FreeBusy {
			u.FreeBusy = append(u.FreeBusy, c)
			stored[c] = p
		}
		for _, c := range p.Availability {
			u.Availability = append(u.Availability, c)
			stored[c] = p
		}
		if len(p.FreeBusy) > 0 || len(p.Availability) > 0 {
			addZones(p.Timezones)
		}
	}
	return u
}

// Version orders copies of one event: SEQUENCE first (RFC 5545
// §3.8.7.4), then the time of the last revision, LAST-MODIFIED or else
// DTSTAMP. Absent or unreadable values count as 0 and the zero time.
type Version struct {
	Sequence int
	Stamp    time.Time
}

// Compare returns -1, 0 or +1 as v is older than, as new as, or newer
// than w.
func (v Version) Compare(w Version) int {
	if v.Sequence != w.Sequence {
		if v.Sequence < w.Sequence {
			return -1
		}
		return 1
	}
	return v.Stamp.Compare(w.Stamp)
}

// VersionOf returns the version of a copy of an event made of the given
// components: the highest SEQUENCE and the latest revision among them (a
// copy is as new as its newest part: editing one instance may raise that
// override's SEQUENCE only).
func VersionOf(cs ...*ical.Component) Version {
	var v Version
	for _, c := range cs {
		if p := c.Props.Get(ical.PropSequence); p != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(p.Value)); err == nil && n > v.Sequence {
				v.Sequence = n
			}
		}
		for _, name := range []string{ical.PropLastModified, ical.PropDateTimeStamp} {
			if p := c.Props.Get(name); p != nil {
				if t, err := time.Parse("20060102T150405Z", strings.TrimSpace(p.Value)); err == nil {
					if t.After(v.Stamp) {
						v.Stamp = t
					}
					break
				}
			}
		}
	}
	return v
}

func uidOf(c *ical.Component) string {
	if p := c.Props.Get(ical.PropUID); p != nil && strings.TrimSpace(p.Value) != "" {
		return p.Value
	}
	// Hash the component's text: the same input always gets the same UID.
	b, err := Marshal(c)
	if err != nil {
		b = []byte(c.Name)
	}
	sum := sha256.Sum256(b)
	return "fbpub-" + hex.EncodeToString(sum[:12])
}

// UsedTimezones returns the VTIMEZONEs of objs that some event actually
// refers to through a TZID parameter, once each by TZID, sorted by TZID.
func UsedTimezones(objs []*Object) []*ical.Component {
	used := map[string]bool{}
	for _, o := range objs {
		for _, c := range o.Events() {
			for _, props := range c.Props {
				for _, p := range props {
					if tzid := p.Params.Get(ical.PropTimezoneID); tzid != "" {
						used[tzid] = true
					}
				}
			}
		}
	}
	seen := map[string]*ical.Component{}
	for _, o := range objs {
		for _, tz := range o.Timezones {
			// The TZID property is TEXT (commas escaped); parameters
			// that refer to it hold the plain text. Some clients do not
			// escape at all.
			p := tz.Props.Get(ical.PropTimezoneID)
			if p == nil {
				continue
			}
			id := p.Value
			if text, err := p.Text(); err == nil && used[text] {
				id = text
			}
			if !used[id] || seen[id] != nil {
				continue
			}
			seen[id] = tz
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*ical.Component, 0, len(ids))
	for _, id := range ids {
		out = append(out, seen[id])
	}
	return out
}
