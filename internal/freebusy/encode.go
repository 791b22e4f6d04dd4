package freebusy

import (
	"encoding/base64"
	"io"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/calendar"
)

// ProdID names fbpub in the iCalendar objects it writes.
const ProdID = "-//fbpub//fbpub//EN"

// Reply is a published VFREEBUSY.
type Reply struct {
	// Organizer is the calendar user whose time this is, as a URI
	// ("mailto:alice@example.org").
	Organizer string
	// UID identifies this free/busy object; stable for one owner so that
	// clients can recognise an update.
	UID string
	// Stamp is when the data was computed (DTSTAMP).
	Stamp   time.Time
	Window  Window
	Periods []Period
	// Details, when set, annotates each busy period of the extended view
	// (.xfb) with what the requester may see; see Detail.
	Details map[int][]Detail
}

// Detail is what the extended free/busy view may say about a period to a
// requester allowed to read it: Kolab 2's X-UID, X-SUMMARY and X-LOCATION
// parameters of the FREEBUSY line, each written as the base64 of its
// UTF-8 text as Kolab clients (Kontact) read them, so that no summary can
// break the parameter syntax. Empty fields are left out.
type Detail struct {
	UID, Summary, Location string
}

const utcFormat = "20060102T150405Z"

// Calendar builds the VCALENDAR holding r: METHOD:PUBLISH, one VFREEBUSY
// with ORGANIZER, DTSTAMP, the window, and one FREEBUSY line per period
// with FBTYPE written explicitly (Thunderbird shows "no information"
// without it).
func (r *Reply) Calendar() *ical.Component {
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, ProdID)
	cal.Props.SetText(ical.PropMethod, "PUBLISH")
	fb := ical.NewComponent(ical.CompFreeBusy)
	fb.Props.SetText(ical.PropUID, r.UID)
	set := func(name string, t time.Time) {
		p := ical.NewProp(name)
		p.Value = t.UTC().Format(utcFormat)
		fb.Props.Set(p)
	}
	set(ical.PropDateTimeStamp, r.Stamp)
	set(ical.PropDateTimeStart, r.Window.Start)
	set(ical.PropDateTimeEnd, r.Window.End)
	if r.Organizer != "" {
		p := ical.NewProp(ical.PropOrganizer)
		p.Value = r.Organizer
		fb.Props.Set(p)
	}
	for i, per := range r.Periods {
		p := ical.NewProp(ical.PropFreeBusy)
		p.Params.Set(ical.ParamFreeBusyType, string(per.Type))
		p.Value = per.Start.UTC().Format(utcFormat) + "/" + per.End.UTC().Format(utcFormat)
		for _, d := range r.Details[i] {
			for _, kv := range [...][2]string{{"X-UID", d.UID}, {"X-SUMMARY", d.Summary}, {"X-LOCATION", d.Location}} {
				if kv[1] != "" {
					p.Params.Add(kv[0], base64.StdEncoding.EncodeToString([]byte(kv[1])))
				}
			}
		}
		fb.Props.Add(p)
	}
	cal.Children = append(cal.Children, fb)
	return cal
}

// Encode writes r as an iCalendar object.
func (r *Reply) Encode(w io.Writer) error {
	return calendar.NewEncoder(w).Encode(r.Calendar())
}
