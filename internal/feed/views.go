package feed

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/emersion/go-ical"
)

// A feed has two views. The owner gets every event as stored (alarms
// removed). Everyone else gets the busy view: each event reduced to its
// times and to what makes it busy or free, titled "Busy", with nothing
// that could say what it is or who is in it — no summary, location,
// description, organizer, attendee, categories, URL or attachment, and a
// UID replaced by a keyed hash so that clients can still follow an event
// without learning its identity. Overrides are reduced the same way, so a
// moved instance of a recurring event leaks nothing either.

// busyKeep are the properties the busy view keeps: when an event happens
// and whether it makes its owner busy.
var busyKeep = map[string]bool{
	ical.PropDateTimeStart: true, ical.PropDateTimeEnd: true, ical.PropDuration: true,
	ical.PropRecurrenceRule: true, ical.PropRecurrenceDates: true, ical.PropExceptionDates: true,
	ical.PropRecurrenceID: true, ical.PropDateTimeStamp: true, ical.PropSequence: true,
	ical.PropTransparency: true, ical.PropStatus: true, "X-MICROSOFT-CDO-BUSYSTATUS": true,
}

// uidKey keys the hash that replaces UIDs in the busy view; it is made
// once per process, so hidden UIDs cannot be guessed from a feed.
var uidKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// busyOnly returns the busy view of one event. ev is not modified.
func busyOnly(ev *ical.Component) *ical.Component {
	out := &ical.Component{Name: ev.Name, Props: ical.Props{}}
	for name, props := range ev.Props {
		if busyKeep[name] {
			out.Props[name] = props
		}
	}
	uid := ""
	if p := ev.Props.Get(ical.PropUID); p != nil {
		uid = p.Value
	}
	m := hmac.New(sha256.New, uidKey)
	m.Write([]byte(uid))
	out.Props.SetText(ical.PropUID, "busy-"+hex.EncodeToString(m.Sum(nil)[:16]))
	out.Props.SetText(ical.PropSummary, "Busy")
	if c := ev.Props.Get(ical.PropClass); c != nil && strings.EqualFold(c.Value, "CONFIDENTIAL") {
		out.Props.SetText(ical.PropClass, "CONFIDENTIAL")
	}
	return out
}
