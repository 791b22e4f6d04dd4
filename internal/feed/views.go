package feed

import (
	"bytes"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/privacy"
)

// A feed has three views, one per acl.Access level that sees anything;
// package privacy makes them, event by event:
//
//   - the owner gets every event as stored (alarms removed);
//   - a reader (the "r" right on the folder) gets the same, except for
//     events whose class keeps them from anyone but the owner: a
//     CLASS:CONFIDENTIAL event shows its times titled "Busy", a
//     CLASS:PRIVATE one (or one of a class fbpub does not know) its times
//     only;
//   - everyone else gets the busy view: each event reduced to its times
//     and to what makes it busy or free, titled "Busy".
//
// An event's class is not its message's alone: an override takes the
// stricter of its own class and its series', and the series is the UID's
// across every folder the answer is made from (privacy.Series), wherever
// its master is stored. Each message's views are encoded once with the
// series its own message holds (an override without its master there is
// private); an answer re-encodes only the messages whose UIDs' series the
// other messages change. Time zones are reduced for every view but the
// owner's.

// restricted reports whether a reader sees less of o than its owner, and
// whether its UID is hidden too, judged by o alone.
func restricted(o *calendar.Object) (any, hideUID bool) {
	hideUID = privacy.ObjectHideUID(o)
	any = hideUID
	for _, ev := range o.Events() {
		if privacy.ObjectClass(o, ev) != privacy.Public {
			any = true
		}
	}
	return any, hideUID
}

// busyOnly returns the busy view of one event.
func busyOnly(ev *ical.Component) *ical.Component {
	return privacy.Event(ev, acl.FreeBusyAccess, privacy.Public, true)
}

// readerEvents returns the reader view of o's events, judged by o alone.
func readerEvents(o *calendar.Object) []*ical.Component {
	return readerEventsIn(o, nil)
}

// readerEventsIn returns the reader view of o's events under the series
// of s, or of o alone when s is nil.
func readerEventsIn(o *calendar.Object, s *privacy.Series) []*ical.Component {
	var out []*ical.Component
	for _, ev := range o.Events() {
		c, hide := classIn(s, o, ev)
		out = append(out, privacy.Event(ev, acl.ReadAccess, c, hide))
	}
	return out
}

// classIn returns the class of ev, an event of o, and whether its UID is
// hidden, under the series of s (of o alone when s is nil).
func classIn(s *privacy.Series, o *calendar.Object, ev *ical.Component) (privacy.Class, bool) {
	if s == nil {
		return privacy.ObjectClass(o, ev), privacy.ObjectHideUID(o)
	}
	return s.Class(o.UID, ev), s.HideUID(o.UID)
}

// seriesOf returns the series of the objects of snaps when some folder is
// seen at ReadAccess, the only view that depends on it; nil otherwise.
func seriesOf(snaps []*Snapshot, levels []acl.Access) *privacy.Series {
	need := false
	for _, a := range levels {
		need = need || a == acl.ReadAccess
	}
	if !need {
		return nil
	}
	s := privacy.NewSeries()
	for _, sn := range snaps {
		s.Add(sn.Objects())
	}
	return s
}

// seriesDiffers reports whether s gives some UID of objs, a message's
// objects, another series than the message's own objects do: then its
// encoded reader view does not hold.
func seriesDiffers(objs []*calendar.Object, s *privacy.Series) bool {
	for _, o := range objs {
		local, lok := privacy.ObjectSeries(o)
		global, gok := s.Of(o.UID)
		if lok != gok || local != global {
			return true
		}
	}
	return false
}

// messageObjects returns a function giving the objects of s's message at
// index j (not flagged \Deleted), decoding the snapshot's objects on its
// first call and holding them for the next.
func (s *Snapshot) messageObjects() func(j int) []*calendar.Object {
	var t *snapTrees
	return func(j int) []*calendar.Object {
		if t == nil {
			t = s.decoded()
		}
		return t.byMsg[j]
	}
}

// messageView returns m's events as a requester with access a sees them
// in an answer whose series s holds (nil when a is not ReadAccess), and
// adds to zones, by the TZID they are written with, the time zones those
// events refer to: as stored for the owner, reduced (privacy.Zone) for
// everyone else. A zone already in zones is kept. objs returns m's
// objects, decoded; it is called only when a view needs them.
func messageView(m *message, objs func() []*calendar.Object, a acl.Access, s *privacy.Series, zones map[string]*ical.Component) []byte {
	addReduced := func(z zone, name string) {
		if zones[name] != nil {
			return
		}
		t := zoneTree(z)
		if t == nil {
			return
		}
		if r := privacy.Zone(t, name); r != nil {
			zones[name] = r
		}
	}
	switch {
	case a >= acl.OwnerAccess:
		for _, z := range m.zones {
			if z.id != "" && zones[z.id] == nil {
				if t := zoneTree(z); t != nil {
					zones[z.id] = t
				}
			}
		}
		return m.view(a, objs)
	case a < acl.ReadAccess:
		for _, z := range m.zones {
			if z.id != "" {
				addReduced(z, privacy.TZID(z.id))
			}
		}
		return m.view(a, objs)
	}
	changed := m.lazy != nil && s != nil && seriesDiffers(objs(), s)
	if !m.restricted && !changed {
		// Every event shows as stored, with the TZIDs it has.
		for _, z := range m.zones {
			if z.id != "" {
				addReduced(z, z.id)
			}
		}
		return m.view(a, objs)
	}
	body, judged := m.view(a, objs), (*privacy.Series)(nil) // judged by m alone
	if changed {
		judged = s
		var b bytes.Buffer
		enc := calendar.NewEncoder(&b)
		for _, o := range objs() {
			for _, ev := range readerEventsIn(o, s) {
				enc.Encode(ev)
			}
		}
		body = b.Bytes()
	}
	if len(m.zones) == 0 {
		return body
	}
	// Events shown whole refer to their zones by the TZIDs they have,
	// reduced ones by the names privacy.TZID gives them.
	for _, o := range objs() {
		for _, ev := range o.Events() {
			c, _ := classIn(judged, o, ev)
			for _, props := range ev.Props {
				for _, p := range props {
					id := p.Params.Get(ical.ParamTimezoneID)
					z, ok := m.zone(id)
					if id == "" || !ok {
						continue
					}
					if c == privacy.Public {
						addReduced(z, id)
					} else {
						addReduced(z, privacy.TZID(id))
					}
				}
			}
		}
	}
	return body
}

// detail is what the extended free/busy view says about one occurrence to
// a requester with access a, in an answer whose series s holds (nil when
// a is not ReadAccess).
func detail(oc freebusy.Occurrence, a acl.Access, s *privacy.Series) []freebusy.Detail {
	if oc.Event == nil || a < acl.ReadAccess {
		return nil
	}
	if a < acl.OwnerAccess {
		if c, _ := classIn(s, oc.Object, oc.Event); c != privacy.Public {
			return nil
		}
	}
	text := func(name string) string { return calendar.Text(oc.Event.Props.Get(name)) }
	return []freebusy.Detail{{UID: oc.Object.UID, Summary: text(ical.PropSummary), Location: text(ical.PropLocation)}}
}

// zone returns the zone m's events refer to by TZID id.
func (m *message) zone(id string) (zone, bool) {
	for _, z := range m.zones {
		if z.id == id && id != "" {
			return z, true
		}
	}
	return zone{}, false
}
