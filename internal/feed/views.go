package feed

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
	"github.com/fbpub/fbpub/internal/freebusy"
)

// A feed has three views, one per acl.Access level that sees anything:
//
//   - the owner gets every event as stored (alarms removed);
//   - a reader (the "r" right on the folder) gets the same, except for
//     events whose class keeps them from anyone but the owner: a
//     CLASS:CONFIDENTIAL event shows its times titled "Busy", a
//     CLASS:PRIVATE one (or one of a class fbpub does not know, as RFC
//     5545 §3.8.1.3 asks) its times only;
//   - everyone else gets the busy view: each event reduced to its times
//     and to what makes it busy or free, titled "Busy".
//
// A reduced event keeps nothing that could say what it is or who is in
// it — no summary, location, description, organizer, attendee,
// categories, URL or attachment — and its UID is replaced by a keyed hash
// so that clients can still follow an event without learning its
// identity. An override takes the stricter of its own class and its
// master's, so a moved instance of a private series leaks nothing either
// (a known leak elsewhere: the override often does not repeat CLASS).

// busyKeep are the properties a reduced event keeps: when it happens and
// whether it makes its owner busy.
var busyKeep = map[string]bool{
	ical.PropDateTimeStart: true, ical.PropDateTimeEnd: true, ical.PropDuration: true,
	ical.PropRecurrenceRule: true, ical.PropRecurrenceDates: true, ical.PropExceptionDates: true,
	ical.PropRecurrenceID: true, ical.PropDateTimeStamp: true, ical.PropSequence: true,
	ical.PropTransparency: true, ical.PropStatus: true, "X-MICROSOFT-CDO-BUSYSTATUS": true,
}

// uidKey keys the hash that replaces UIDs in reduced events; it is made
// once per process, so hidden UIDs cannot be guessed from a feed.
var uidKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// class is how much of an event its CLASS lets non-owners see.
type class int

const (
	public class = iota
	confidential
	private
)

func classOf(ev *ical.Component) class {
	p := ev.Props.Get(ical.PropClass)
	if p == nil {
		return public
	}
	switch strings.ToUpper(strings.TrimSpace(p.Value)) {
	case "", "PUBLIC":
		return public
	case "CONFIDENTIAL":
		return confidential
	}
	return private
}

// eventClass is the class that applies to ev, an event of o: the stricter
// of its own and its master's.
func eventClass(o *calendar.Object, ev *ical.Component) class {
	c := classOf(ev)
	if o.Master != nil && o.Master != ev {
		c = max(c, classOf(o.Master))
	}
	return c
}

// restricted reports whether a reader sees less of o than its owner, and
// whether its UID is hidden too (its master, or its only component, is
// not public).
func restricted(o *calendar.Object) (any, hideUID bool) {
	for _, ev := range o.Events() {
		if eventClass(o, ev) != public {
			any = true
		}
	}
	if o.Master != nil {
		hideUID = classOf(o.Master) != public
	} else {
		hideUID = any
	}
	return any, hideUID
}

func hashedUID(uid string) string {
	m := uidMACs.Get().(hash.Hash)
	defer uidMACs.Put(m)
	m.Reset()
	m.Write([]byte(uid))
	var sum [sha256.Size]byte
	return "busy-" + hex.EncodeToString(m.Sum(sum[:0])[:16])
}

// uidMACs recycles the keyed hashes of hashedUID: one is made for every
// event of every message parsed.
var uidMACs = sync.Pool{New: func() any { return hmac.New(sha256.New, uidKey) }}

// reduce returns ev with only its times and busy state; c says what title
// it gets. ev is not modified.
func reduce(ev *ical.Component, c class, hideUID bool) *ical.Component {
	out := &ical.Component{Name: ev.Name, Props: make(ical.Props, 8)}
	for name, props := range ev.Props {
		if busyKeep[name] {
			out.Props[name] = props
		}
	}
	uid := ev.Props[ical.PropUID]
	switch {
	case hideUID:
		raw := ""
		if len(uid) > 0 {
			raw = uid[0].Value
		}
		out.Props[ical.PropUID] = plain(ical.PropUID, hashedUID(raw))
	case len(uid) > 0:
		out.Props[ical.PropUID] = uid[:1]
	}
	switch c {
	case private:
		out.Props[ical.PropClass] = plain(ical.PropClass, "PRIVATE")
	case confidential:
		out.Props[ical.PropSummary] = plain(ical.PropSummary, "Busy")
		out.Props[ical.PropClass] = plain(ical.PropClass, "CONFIDENTIAL")
	default:
		out.Props[ical.PropSummary] = plain(ical.PropSummary, "Busy")
	}
	return out
}

// plain is a property holding value, which needs no escaping.
func plain(name, value string) []ical.Prop {
	return []ical.Prop{{Name: name, Value: value}}
}

// busyOnly returns the busy view of one event.
func busyOnly(ev *ical.Component) *ical.Component {
	c := public
	if classOf(ev) == confidential {
		c = confidential
	}
	return reduce(ev, c, true)
}

// readerEvents returns the reader view of o's events (alarms removed).
func readerEvents(o *calendar.Object) []*ical.Component {
	_, hideUID := restricted(o)
	var out []*ical.Component
	for _, ev := range o.Events() {
		if c := eventClass(o, ev); c != public {
			out = append(out, reduce(ev, c, hideUID))
		} else if hideUID {
			// A public override of a hidden series: its details show, its
			// series' identity does not.
			cp := withoutAlarms(ev)
			cp.Props = ical.Props{}
			for name, props := range ev.Props {
				cp.Props[name] = props
			}
			cp.Props.SetText(ical.PropUID, hashedUID(o.UID))
			out = append(out, cp)
		} else {
			out = append(out, withoutAlarms(ev))
		}
	}
	return out
}

// detail is what the extended free/busy view says about one occurrence to
// a requester with access a.
func detail(oc freebusy.Occurrence, a acl.Access) []freebusy.Detail {
	if oc.Event == nil || a < acl.ReadAccess {
		return nil
	}
	if a < acl.OwnerAccess && eventClass(oc.Object, oc.Event) != public {
		return nil
	}
	text := func(name string) string { return calendar.Text(oc.Event.Props.Get(name)) }
	return []freebusy.Detail{{UID: oc.Object.UID, Summary: text(ical.PropSummary), Location: text(ical.PropLocation)}}
}
