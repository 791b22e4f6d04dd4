package calendar

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/emersion/go-ical"
)

// Object is one calendar object resource: the components of one message
// that share a UID (a master VEVENT and its RECURRENCE-ID overrides, or a
// VFREEBUSY), with the VTIMEZONEs of the calendar they came from.
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
