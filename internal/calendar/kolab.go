package calendar

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// escapeText escapes an RFC 5545 TEXT value.
func escapeText(s string) string {
	return textEscaper.Replace(s)
}

func prop(name, value string) *ical.Prop {
	p := ical.NewProp(name)
	p.Value = value
	return p
}

// ---- Kolab format 3: xCal (RFC 6321) ----

// xcalCalendars converts an xCal document (Kolab format 3's
// application/calendar+xml payload) into calendars.
func xcalCalendars(data []byte) ([]*ical.Calendar, error) {
	root, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	var vcals []*node
	switch root.name {
	case "icalendar":
		vcals = root.all("vcalendar")
	case "vcalendar":
		vcals = []*node{root}
	}
	if len(vcals) == 0 {
		return nil, ErrNoCalendar
	}
	var out []*ical.Calendar
	for _, v := range vcals {
		out = append(out, &ical.Calendar{Component: xcalComponent(v)})
	}
	return out, nil
}

func xcalComponent(n *node) *ical.Component {
	c := ical.NewComponent(strings.ToUpper(n.name))
	for _, p := range n.child("properties").kids() {
		if pr := xcalProp(p); pr != nil {
			c.Props.Add(pr)
		}
	}
	for _, ch := range n.child("components").kids() {
		c.Children = append(c.Children, xcalComponent(ch))
	}
	return c
}

// xcalProp converts one xCal property element.
func xcalProp(n *node) *ical.Prop {
	p := ical.NewProp(strings.ToUpper(n.name))
	var values []string
	valueType := ""
	for _, v := range n.children {
		if v.name == "parameters" {
			for _, param := range v.children {
				var pv []string
				for _, x := range param.children {
					pv = append(pv, strings.TrimSpace(x.text))
				}
				if len(pv) == 0 {
					pv = []string{strings.TrimSpace(param.text)}
				}
				p.Params[strings.ToUpper(param.name)] = pv
			}
			continue
		}
		s, vt := xcalValue(v)
		values = append(values, s)
		if valueType == "" {
			valueType = vt
		}
	}
	if len(values) == 0 {
		return nil
	}
	sep := ","
	if p.Name == ical.PropGeo {
		sep = ";" // latitude;longitude
	}
	p.Value = strings.Join(values, sep)
	switch valueType {
	case "DATE", "PERIOD":
		p.Params.Set(ical.ParamValue, valueType)
	}
	return p
}

// xcalValue converts one value element to iCalendar text, and names its
// type where the property may need a VALUE parameter.
func xcalValue(v *node) (string, string) {
	t := strings.TrimSpace(v.text)
	switch v.name {
	case "text":
		return escapeText(v.text), ""
	case "date":
		return strings.ReplaceAll(t, "-", ""), "DATE"
	case "date-time":
		return compactDateTime(t), ""
	case "time":
		return strings.ReplaceAll(t, ":", ""), ""
	case "utc-offset":
		return strings.ReplaceAll(t, ":", ""), ""
	case "boolean":
		return strings.ToUpper(t), ""
	case "period":
		start := compactDateTime(v.val("start"))
		if e := v.val("end"); e != "" {
			return start + "/" + compactDateTime(e), "PERIOD"
		}
		return start + "/" + v.val("duration"), "PERIOD"
	case "recur":
		return xcalRecur(v), ""
	}
	return t, "" // duration, integer, float, uri, cal-address, unknown
}

func compactDateTime(s string) string {
	return dateCompactor.Replace(strings.TrimSpace(s))
}

// xcalRecur converts an xCal recur element into an RRULE value.
func xcalRecur(v *node) string {
	order := []string{"freq", "until", "count", "interval", "bysecond", "byminute", "byhour", "byday",
		"bymonthday", "byyearday", "byweekno", "bymonth", "bysetpos", "wkst"}
	var parts []string
	for _, k := range order {
		var vals []string
		for _, c := range v.all(k) {
			s := strings.TrimSpace(c.text)
			if k == "until" {
				if d := c.child("date"); d != nil {
					s = strings.TrimSpace(d.text)
				} else if d := c.child("date-time"); d != nil {
					s = strings.TrimSpace(d.text)
				}
				s = compactDateTime(s)
			}
			if s != "" {
				vals = append(vals, s)
			}
		}
		if len(vals) > 0 {
			parts = append(parts, strings.ToUpper(k)+"="+strings.ToUpper(strings.Join(vals, ",")))
		}
	}
	return strings.Join(parts, ";")
}

// ---- Kolab format 2 ----

// kolab2Calendar converts a Kolab format 2 event (application/
// x-vnd.kolab.event XML) into a calendar with one VEVENT. Kolab 2 stores
// times in UTC and all-day dates with an inclusive end date.
func kolab2Calendar(data []byte) (*ical.Calendar, error) {
	root, err := parseXML(data)
	if err != nil {
		return nil, err
	}
	if root.name != "event" {
		return nil, fmt.Errorf("%w: Kolab 2 %s objects are not events", ErrUnsupported, root.name)
	}
	ev := ical.NewComponent(ical.CompEvent)
	addProp(ev, ical.PropUID, root.val("uid"))
	start, allDay, err := kolab2Times(ev, root)
	if err != nil {
		return nil, err
	}
	addProp(ev, ical.PropSummary, escapeText(root.val("summary")))
	addProp(ev, ical.PropLocation, escapeText(root.val("location")))
	addProp(ev, ical.PropDescription, escapeText(root.val("body")))
	kolab2Show(ev, root)
	kolab2People(ev, root)
	if r := root.child("recurrence"); r != nil {
		if err := kolab2Recurrence(ev, r, start, allDay); err != nil {
			return nil, err
		}
	}
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//fbpub//Kolab 2 converted//EN")
	cal.Children = append(cal.Children, ev)
	return cal, nil
}

// addProp adds the property name with value to c, unless value is empty.
func addProp(c *ical.Component, name, value string) {
	if value != "" {
		c.Props.Add(prop(name, value))
	}
}

// addDate adds the property name with the DATE value of t to c.
func addDate(c *ical.Component, name string, t time.Time) {
	p := prop(name, t.Format("20060102"))
	p.Params.Set(ical.ParamValue, "DATE")
	c.Props.Add(p)
}

// kolab2Times adds DTSTART, DTEND and DTSTAMP of a Kolab 2 event to ev,
// and returns its start and whether it lasts whole days.
func kolab2Times(ev *ical.Component, root *node) (start time.Time, allDay bool, err error) {
	start, allDay, err = kolabTime(root.val("start-date"))
	if err != nil {
		return time.Time{}, false, err
	}
	end, endDate, err := kolabTime(root.val("end-date"))
	if err != nil && root.val("end-date") != "" {
		return time.Time{}, false, err
	}
	if stamp := root.val("last-modification-date"); stamp != "" {
		if t, _, err := kolabTime(stamp); err == nil {
			addProp(ev, ical.PropDateTimeStamp, t.UTC().Format("20060102T150405Z"))
		}
	}
	if allDay {
		addDate(ev, ical.PropDateTimeStart, start)
		if !end.IsZero() && endDate {
			// Kolab 2's end date is the last day of the event.
			addDate(ev, ical.PropDateTimeEnd, end.AddDate(0, 0, 1))
		}
		return start, allDay, nil
	}
	addProp(ev, ical.PropDateTimeStart, start.UTC().Format("20060102T150405Z"))
	if !end.IsZero() {
		addProp(ev, ical.PropDateTimeEnd, end.UTC().Format("20060102T150405Z"))
	}
	return start, allDay, nil
}

// kolab2Class is the CLASS of Kolab 2's sensitivity: public, confidential
// or private, and the most restrictive where an event has several. A value
// Kolab 2 does not define counts as private, as an unknown CLASS does
// (RFC 5545 §3.8.1.3); none, or an empty one, is "" (public).
func kolab2Class(root *node) string {
	rank := map[string]int{"": 0, "PUBLIC": 1, "CONFIDENTIAL": 2, "PRIVATE": 3}
	class := ""
	for _, n := range root.all("sensitivity") {
		c := "PRIVATE"
		switch strings.ToLower(strings.TrimSpace(n.text)) {
		case "":
			continue
		case "public":
			c = "PUBLIC"
		case "confidential":
			c = "CONFIDENTIAL"
		}
		if rank[c] > rank[class] {
			class = c
		}
	}
	return class
}

// kolab2Show adds the class (Kolab 2's sensitivity) and how the event
// shows in free/busy (show-time-as) to ev.
func kolab2Show(ev *ical.Component, root *node) {
	if c := kolab2Class(root); c != "" {
		addProp(ev, ical.PropClass, c)
	}
	switch strings.ToLower(root.val("show-time-as")) {
	case "free":
		addProp(ev, ical.PropTransparency, "TRANSPARENT")
	case "tentative":
		addProp(ev, "X-MICROSOFT-CDO-BUSYSTATUS", "TENTATIVE")
	case "outofoffice":
		addProp(ev, "X-MICROSOFT-CDO-BUSYSTATUS", "OOF")
	default:
		addProp(ev, ical.PropTransparency, "OPAQUE")
	}
}

// kolab2People adds the organizer and the attendees that have an address
// to ev.
func kolab2People(ev *ical.Component, root *node) {
	if o := root.child("organizer"); o != nil && o.val("smtp-address") != "" {
		ev.Props.Add(kolab2Person(ical.PropOrganizer, o))
	}
	for _, a := range root.all("attendee") {
		if a.val("smtp-address") == "" {
			continue
		}
		p := kolab2Person(ical.PropAttendee, a)
		partstat := kolabPartStats[strings.ToLower(a.val("status"))]
		if partstat == "" {
			partstat = "NEEDS-ACTION"
		}
		p.Params.Set(ical.ParamParticipationStatus, partstat)
		if role := kolabRoles[strings.ToLower(a.val("role"))]; role != "" {
			p.Params.Set(ical.ParamRole, role)
		}
		ev.Props.Add(p)
	}
}

// kolab2Person returns the property name for the person element n: its
// address, and its display name as CN.
func kolab2Person(name string, n *node) *ical.Prop {
	p := prop(name, "mailto:"+n.val("smtp-address"))
	if cn := n.val("display-name"); cn != "" {
		p.Params.Set(ical.ParamCommonName, cn)
	}
	return p
}

var (
	kolabPartStats = map[string]string{"none": "NEEDS-ACTION", "tentative": "TENTATIVE", "accepted": "ACCEPTED",
		"declined": "DECLINED", "delegated": "DELEGATED"}
	kolabRoles = map[string]string{"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT",
		"resource": "NON-PARTICIPANT"}
)

// kolab2Recurrence adds the RRULE and the EXDATEs of the recurrence
// element r to ev, an event that starts at start (all day or not).
func kolab2Recurrence(ev *ical.Component, r *node, start time.Time, allDay bool) error {
	rule, err := kolab2Rule(r, allDay)
	if err != nil {
		return err
	}
	addProp(ev, ical.PropRecurrenceRule, rule)
	for _, x := range r.all("exclusion") {
		d, err := time.Parse("2006-01-02", strings.TrimSpace(x.text))
		if err != nil {
			return fmt.Errorf("%w: Kolab 2 exclusion", ErrMalformed)
		}
		if allDay {
			addDate(ev, ical.PropExceptionDates, d)
			continue
		}
		at := time.Date(d.Year(), d.Month(), d.Day(), start.Hour(), start.Minute(), start.Second(), 0, time.UTC)
		addProp(ev, ical.PropExceptionDates, at.Format("20060102T150405Z"))
	}
	return nil
}

// kolabTime reads a Kolab 2 date ("2025-03-12") or UTC date-time.
func kolabTime(s string) (t time.Time, isDate bool, err error) {
	if len(s) == 10 {
		t, err = time.Parse("2006-01-02", s)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("%w: Kolab 2 date", ErrMalformed)
		}
		return t, true, nil
	}
	t, err = time.Parse(time.RFC3339, s)
	if err != nil {
		if t, err = time.Parse("2006-01-02T15:04:05", s); err != nil {
			return time.Time{}, false, fmt.Errorf("%w: Kolab 2 date-time", ErrMalformed)
		}
	}
	return t, false, nil
}

var kolabDays = map[string]string{"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH",
	"friday": "FR", "saturday": "SA", "sunday": "SU"}

var kolabMonths = map[string]int{"january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
	"july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12}

// errKolabRule is the error of a Kolab 2 recurrence fbpub cannot read.
var errKolabRule = fmt.Errorf("%w: Kolab 2 recurrence", ErrMalformed)

// kolab2Rule converts a Kolab 2 recurrence element into an RRULE value.
func kolab2Rule(r *node, allDay bool) (string, error) {
	parts, err := kolab2Freq(r)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(r.val("interval")); err == nil && n > 1 {
		parts = append(parts, "INTERVAL="+strconv.Itoa(n))
	}
	end, err := kolab2Range(r.child("range"), allDay)
	if err != nil {
		return "", err
	}
	if end != "" {
		parts = append(parts, end)
	}
	return strings.Join(parts, ";"), nil
}

// kolab2Freq returns the FREQ part of the rule of r, and the BY parts
// its cycle and type call for.
func kolab2Freq(r *node) ([]string, error) {
	var days []string
	for _, d := range r.all("day") {
		if c := kolabDays[strings.ToLower(strings.TrimSpace(d.text))]; c != "" {
			days = append(days, c)
		}
	}
	cycle, typ := strings.ToLower(r.attrs["cycle"]), strings.ToLower(r.attrs["type"])
	switch cycle {
	case "daily":
		return []string{"FREQ=DAILY"}, nil
	case "weekly":
		parts := []string{"FREQ=WEEKLY"}
		if len(days) > 0 {
			parts = append(parts, "BYDAY="+strings.Join(days, ","))
		}
		return parts, nil
	case "monthly", "yearly":
		parts := []string{"FREQ=" + strings.ToUpper(cycle)}
		if month := kolabMonths[strings.ToLower(r.val("month"))]; cycle == "yearly" && month > 0 && typ != "yearday" {
			parts = append(parts, "BYMONTH="+strconv.Itoa(month))
		}
		by, err := kolab2By(r, typ, days)
		if err != nil {
			return nil, err
		}
		return append(parts, by), nil
	}
	return nil, errKolabRule
}

// kolab2By returns the BY part of a monthly or yearly rule of type typ:
// a day of the month, a weekday of the month (days[0]) or a day of the
// year.
func kolab2By(r *node, typ string, days []string) (string, error) {
	switch typ {
	case "daynumber", "monthday":
		n, ok := kolabOrdinal(r.val("daynumber"))
		if typ == "monthday" || !ok {
			n, ok = kolabOrdinal(r.val("date"))
		}
		if !ok {
			return "", errKolabRule
		}
		return "BYMONTHDAY=" + strconv.Itoa(n), nil
	case "weekday":
		n, ok := kolabOrdinal(r.val("daynumber"))
		if !ok || len(days) == 0 {
			return "", errKolabRule
		}
		if n == 5 {
			n = -1 // Kolab clients write 5 for "the last"
		}
		return "BYDAY=" + strconv.Itoa(n) + days[0], nil
	case "yearday":
		n, ok := kolabOrdinal(r.val("daynumber"))
		if !ok {
			return "", errKolabRule
		}
		return "BYYEARDAY=" + strconv.Itoa(n), nil
	}
	return "", errKolabRule
}

// kolabOrdinal reads a day number of a rule: not zero, within ±366.
func kolabOrdinal(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil && n >= -366 && n <= 366 && n != 0
}

// kolab2Range returns the COUNT or UNTIL part of the range element rg
// (nil or of another type: none).
func kolab2Range(rg *node, allDay bool) (string, error) {
	if rg == nil {
		return "", nil
	}
	v := strings.TrimSpace(rg.text)
	switch strings.ToLower(rg.attrs["type"]) {
	case "number":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return "", errKolabRule
		}
		return "COUNT=" + strconv.Itoa(n), nil
	case "date":
		d, err := time.Parse("2006-01-02", v)
		if err != nil {
			return "", errKolabRule
		}
		if allDay {
			return "UNTIL=" + d.Format("20060102"), nil
		}
		return "UNTIL=" + d.Format("20060102") + "T235959Z", nil
	}
	return "", nil
}

var (
	textEscaper   = strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`, "\r\n", `\n`, "\n", `\n`)
	dateCompactor = strings.NewReplacer("-", "", ":", "")
)
