package calendar

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-ical"
)

// TestXCalValueTypes: every value type xcalWriteProp writes, with
// parameters, as RFC 6321 spells it. The properties come out in
// propOrder's order.
func TestXCalValueTypes(t *testing.T) {
	c := ical.NewComponent("VEVENT")
	add := func(name, value string, params ...string) {
		p := ical.NewProp(name)
		p.Value = value
		for i := 0; i+1 < len(params); i += 2 {
			p.Params.Add(params[i], params[i+1])
		}
		c.Props.Add(p)
	}
	add("CATEGORIES", `a\,b,c`)
	add("SUMMARY", `x\, y\; z\n`, "LANGUAGE", "en", "ALTREP", "http://x", "X-A", "1", "X-A", "2")
	add("DTSTART", "20250303")
	add("EXDATE", "20250303T090000Z, 20250304T090000Z")
	add("RDATE", "20250303T090000Z/PT1H,20250304T090000Z/20250304T100000Z", "VALUE", "PERIOD")
	add("RRULE", "FREQ=WEEKLY;UNTIL=20250601;BYDAY=MO,TU;bad")
	add("EXRULE", "FREQ=DAILY;UNTIL=20250601T000000Z")
	add("TZOFFSETFROM", "+0100")
	add("TZOFFSETTO", "-05")
	add("GEO", "1.5;2.5")
	add("SEQUENCE", "3")
	add("ATTENDEE", "mailto:a@b", "DELEGATED-FROM", "mailto:c@d")
	add("X-BOOL", "TRUE", "VALUE", "BOOLEAN")
	want := "<vevent><properties>" + strings.Join([]string{
		`<sequence><integer>3</integer></sequence>`,
		`<dtstart><date>2025-03-03</date></dtstart>`,
		`<rrule><recur><freq>WEEKLY</freq><until>2025-06-01</until><byday>MO</byday><byday>TU</byday></recur></rrule>`,
		`<rdate><period><start>2025-03-03T09:00:00Z</start><duration>PT1H</duration></period><period><start>2025-03-04T09:00:00Z</start><end>2025-03-04T10:00:00Z</end></period></rdate>`,
		`<exdate><date-time>2025-03-03T09:00:00Z</date-time><date-time>2025-03-04T09:00:00Z</date-time></exdate>`,
		`<summary><parameters><altrep><uri>http://x</uri></altrep><language><text>en</text></language><x-a><text>1</text><text>2</text></x-a></parameters><text>x, y; z&#xA;</text></summary>`,
		`<attendee><parameters><delegated-from><cal-address>mailto:c@d</cal-address></delegated-from></parameters><cal-address>mailto:a@b</cal-address></attendee>`,
		`<tzoffsetfrom><utc-offset>+01:00</utc-offset></tzoffsetfrom>`,
		`<tzoffsetto><utc-offset>-05</utc-offset></tzoffsetto>`,
		`<categories><text>a,b</text><text>c</text></categories>`,
		`<exrule><recur><freq>DAILY</freq><until>2025-06-01T00:00:00Z</until></recur></exrule>`,
		`<geo><float>1.5</float><float>2.5</float></geo>`,
		`<x-bool><boolean>TRUE</boolean></x-bool>`,
	}, "") + "</properties></vevent>"
	var b bytes.Buffer
	xcalWriteComponent(&b, c)
	if got := b.String(); got != want {
		t.Errorf("xcalWriteComponent =\n%s\nwant\n%s", got, want)
	}
}
