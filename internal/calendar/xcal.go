package calendar

import (
	"bytes"
	"encoding/xml"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-ical"
)

// EncodeXCal writes cal as an xCal document (RFC 6321): the payload of a
// Kolab format 3 object (application/calendar+xml). It is what
// PartObjects reads back; property value types follow RFC 5545's
// defaults and VALUE parameters.
func EncodeXCal(w io.Writer, cal *ical.Component) error {
	var b bytes.Buffer
	// CRLF, the only line ends a message may hold (Cyrus refuses bare
	// LF); line breaks inside values are escaped by xmlText.
	b.WriteString(`<?xml version="1.0" encoding="UTF-8" standalone="no" ?>` + "\r\n")
	b.WriteString(`<icalendar xmlns="urn:ietf:params:xml:ns:icalendar-2.0">`)
	xcalWriteComponent(&b, cal)
	b.WriteString("</icalendar>\r\n")
	_, err := w.Write(b.Bytes())
	return err
}

func xcalWriteComponent(b *bytes.Buffer, c *ical.Component) {
	name := strings.ToLower(c.Name)
	b.WriteString("<" + name + "><properties>")
	for _, pname := range propOrder(c.Props) {
		for _, p := range c.Props[pname] {
			xcalWriteProp(b, &p)
		}
	}
	b.WriteString("</properties>")
	if len(c.Children) > 0 {
		b.WriteString("<components>")
		for _, ch := range c.Children {
			xcalWriteComponent(b, ch)
		}
		b.WriteString("</components>")
	}
	b.WriteString("</" + name + ">")
}

// xcalTypes are the default value types of the properties fbpub writes
// that are not TEXT (RFC 5545 §3.8, RFC 6321 §3.4).
var xcalTypes = map[string]string{
	"DTSTART": "date-time", "DTEND": "date-time", "DUE": "date-time", "RECURRENCE-ID": "date-time",
	"EXDATE": "date-time", "RDATE": "date-time", "DTSTAMP": "date-time", "CREATED": "date-time",
	"LAST-MODIFIED": "date-time", "COMPLETED": "date-time", "ACKNOWLEDGED": "date-time",
	"DURATION": "duration", "TRIGGER": "duration",
	"RRULE": "recur", "EXRULE": "recur",
	"SEQUENCE": "integer", "PRIORITY": "integer", "PERCENT-COMPLETE": "integer", "REPEAT": "integer",
	"ORGANIZER": "cal-address", "ATTENDEE": "cal-address",
	"URL": "uri", "ATTACH": "uri", "TZURL": "uri",
	"TZOFFSETFROM": "utc-offset", "TZOFFSETTO": "utc-offset",
	"GEO": "float",
}

// xcalMulti are TEXT properties whose value is a comma-separated list.
var xcalMulti = map[string]bool{"CATEGORIES": true, "RESOURCES": true}

// xcalParamTypes are the parameters whose values are not TEXT.
var xcalParamTypes = map[string]string{
	"DELEGATED-FROM": "cal-address", "DELEGATED-TO": "cal-address", "MEMBER": "cal-address",
	"SENT-BY": "cal-address", "ALTREP": "uri", "DIR": "uri",
}

// xcalWriteProp writes p as an xCal property element: its parameters,
// then its value as elements of its type.
func xcalWriteProp(b *bytes.Buffer, p *ical.Prop) {
	name := strings.ToLower(p.Name)
	b.WriteString("<" + name + ">")
	xcalWriteParams(b, p.Params)
	xcalWriteValue(b, p, xcalType(p))
	b.WriteString("</" + name + ">")
}

// xcalType returns the xCal value type of p: its VALUE parameter, else
// the default type of its name, else text.
func xcalType(p *ical.Prop) string {
	if v := p.Params.Get(ical.ParamValue); v != "" {
		return strings.ToLower(v)
	}
	if typ, ok := xcalTypes[p.Name]; ok {
		return typ
	}
	return "text"
}

// xcalWriteParams writes the parameters element of params, sorted by
// name, without VALUE (the type of the value elements says it); nothing
// when there are no others.
func xcalWriteParams(b *bytes.Buffer, params ical.Params) {
	var names []string
	for k := range params {
		if k != ical.ParamValue {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	b.WriteString("<parameters>")
	for _, k := range names {
		pt, ok := xcalParamTypes[k]
		if !ok {
			pt = "text"
		}
		b.WriteString("<" + strings.ToLower(k) + ">")
		for _, v := range params[k] {
			xcalElem(b, pt, v)
		}
		b.WriteString("</" + strings.ToLower(k) + ">")
	}
	b.WriteString("</parameters>")
}

// xcalWriteValue writes the value of p as elements of type typ.
func xcalWriteValue(b *bytes.Buffer, p *ical.Prop, typ string) {
	switch typ {
	case "text":
		if !xcalMulti[p.Name] {
			xcalElem(b, "text", unescapeText(p.Value))
			return
		}
		for _, v := range splitText(p.Value) {
			xcalElem(b, "text", unescapeText(v))
		}
	case "date-time", "date":
		for _, v := range strings.Split(p.Value, ",") {
			xcalWriteDate(b, "", strings.TrimSpace(v))
		}
	case "period":
		for _, v := range strings.Split(p.Value, ",") {
			xcalWritePeriod(b, strings.TrimSpace(v))
		}
	case "recur":
		xcalWriteRecur(b, p.Value)
	case "utc-offset":
		v := p.Value
		if len(v) >= 5 {
			v = v[:3] + ":" + v[3:]
		}
		xcalElem(b, "utc-offset", v)
	case "float":
		for _, v := range strings.Split(p.Value, ";") {
			xcalElem(b, "float", v)
		}
	default: // duration, integer, cal-address, uri, boolean, time, binary…
		xcalElem(b, typ, p.Value)
	}
}

// xcalWriteDate writes v, a DATE or DATE-TIME value, as a date or
// date-time element, or as the text of the element name when name is not
// empty.
func xcalWriteDate(b *bytes.Buffer, name, v string) {
	typ, text := "date-time", xcalDateTime(v)
	if len(v) == 8 {
		typ, text = "date", xcalDate(v)
	}
	if name == "" {
		xcalElem(b, typ, text)
		return
	}
	xcalElem(b, name, text)
}

// xcalWritePeriod writes v, a PERIOD value (start/end or start/duration),
// as a period element.
func xcalWritePeriod(b *bytes.Buffer, v string) {
	start, rest, _ := strings.Cut(v, "/")
	b.WriteString("<period>")
	xcalElem(b, "start", xcalDateTime(start))
	if strings.HasPrefix(rest, "P") || strings.HasPrefix(rest, "+P") || strings.HasPrefix(rest, "-P") {
		xcalElem(b, "duration", rest)
	} else {
		xcalElem(b, "end", xcalDateTime(rest))
	}
	b.WriteString("</period>")
}

// xcalWriteRecur writes v, a RECUR value, as a recur element: one element
// per rule part and value, UNTIL as a date or date-time.
func xcalWriteRecur(b *bytes.Buffer, v string) {
	b.WriteString("<recur>")
	for _, part := range strings.Split(v, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "until" {
			xcalWriteDate(b, "until", v)
			continue
		}
		for _, x := range strings.Split(v, ",") {
			xcalElem(b, k, x)
		}
	}
	b.WriteString("</recur>")
}

func xcalElem(b *bytes.Buffer, name, text string) {
	b.WriteString("<" + name + ">" + xmlText(text) + "</" + name + ">")
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// xcalDate turns 20250310 into 2025-03-10.
func xcalDate(v string) string {
	if len(v) != 8 {
		return v
	}
	return v[:4] + "-" + v[4:6] + "-" + v[6:]
}

// xcalDateTime turns 20250310T090000Z into 2025-03-10T09:00:00Z.
func xcalDateTime(v string) string {
	v = strings.TrimSpace(v)
	if len(v) < 15 || v[8] != 'T' {
		return v
	}
	return xcalDate(v[:8]) + "T" + v[9:11] + ":" + v[11:13] + ":" + v[13:]
}

// splitText splits a TEXT list at the commas that are not escaped.
func splitText(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case ',':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
