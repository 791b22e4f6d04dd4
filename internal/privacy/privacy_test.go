package privacy

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
)

// Every secret of these tables contains "sekrit": no reduced output may.
const secret = "sekrit"

// prop is one property of the catalogue the event table runs over.
type prop struct {
	line string // the property as written, with the parameters it keeps
	// want is the line a reduced view writes; "" when it leaves the
	// property out. want may be a regular expression when it starts
	// with "^".
	want string
}

// catalogue holds every property of RFC 5545's VEVENT, RFC 7986's
// additions, common X- properties and an unknown IANA one, each with the
// parameters that a reduced view keeps, and what that view writes: the
// allow-list as the tests expect it, written out apart from the code.
var catalogue = []prop{
	{"DTSTART;TZID=Europe/Berlin:20250102T100000", "DTSTART;TZID=Europe/Berlin:20250102T100000"},
	{"DTSTART;VALUE=DATE:20250102", "DTSTART;VALUE=DATE:20250102"},
	{"DTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20250102T100000", "DTSTART;TZID=America/New_York:20250102T100000"},
	{"DTSTART;TZID=Home of the sekrit:20250102T100000", `^DTSTART;TZID=fbpub-tz-[0-9a-f]{16}:20250102T100000$`},
	{"DTEND;TZID=W. Europe Standard Time:20250102T110000", "DTEND;TZID=Europe/Berlin:20250102T110000"},
	{"DTEND;VALUE=DATE:20250103", "DTEND;VALUE=DATE:20250103"},
	{"DURATION:PT1H30M", "DURATION:PT1H30M"},
	{"RRULE:FREQ=WEEKLY;BYDAY=MO,-1FR;X-NOTE=sekrit;COUNT=3;WKST=SU", "RRULE:FREQ=WEEKLY;BYDAY=MO,-1FR;COUNT=3;WKST=SU"},
	{"RRULE:FREQ=MONTHLY;UNTIL=20251231T000000Z;BYMONTHDAY=1,-1;BYSETPOS=1;INTERVAL=2", "RRULE:FREQ=MONTHLY;UNTIL=20251231T000000Z;BYMONTHDAY=1,-1;BYSETPOS=1;INTERVAL=2"},
	{"RDATE;VALUE=PERIOD:20250105T100000Z/PT1H,20250106T100000Z/20250106T120000Z", "RDATE;VALUE=PERIOD:20250105T100000Z/PT1H,20250106T100000Z/20250106T120000Z"},
	{"RDATE;TZID=Europe/Berlin:20250107T100000", "RDATE;TZID=Europe/Berlin:20250107T100000"},
	{"EXDATE;TZID=Europe/Berlin:20250103T100000,20250104T100000", "EXDATE;TZID=Europe/Berlin:20250103T100000,20250104T100000"},
	{"EXDATE;VALUE=DATE:20250108", "EXDATE;VALUE=DATE:20250108"},
	{"RECURRENCE-ID;TZID=Europe/Berlin;RANGE=THISANDFUTURE:20250102T100000", "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20250102T100000"},
	{"RECURRENCE-ID;VALUE=DATE:20250102", "RECURRENCE-ID;VALUE=DATE:20250102"},
	{"DTSTAMP:20250101T000000Z", "DTSTAMP:20250101T000000Z"},
	{"SEQUENCE:3", "SEQUENCE:3"},
	{"TRANSP:transparent", "TRANSP:TRANSPARENT"},
	{"STATUS:tentative", "STATUS:TENTATIVE"},
	{"X-MICROSOFT-CDO-BUSYSTATUS:OOF", "X-MICROSOFT-CDO-BUSYSTATUS:OOF"},
	{"DESCRIPTION:the sekrit plan", ""},
	{"LOCATION:sekrit room", ""},
	{"GEO:37.386013;-122.082932", ""},
	{"ORGANIZER;CN=sekrit boss:mailto:sekrit-boss@example.org", ""},
	{"ATTENDEE;CN=sekrit guest;PARTSTAT=ACCEPTED:mailto:sekrit-guest@example.org", ""},
	{"CATEGORIES:sekrit,Personal", ""},
	{"COMMENT:sekrit comment", ""},
	{"CONTACT:sekrit contact", ""},
	{"RELATED-TO:sekrit-parent", ""},
	{"RESOURCES:sekrit projector", ""},
	{"URL:https://sekrit.example/meeting", ""},
	{"ATTACH;FMTTYPE=text/plain:https://sekrit.example/file", ""},
	{"PRIORITY:1", ""},
	{"CREATED:20241201T000000Z", ""},
	{"LAST-MODIFIED:20241202T000000Z", ""},
	{"REQUEST-STATUS:2.0;Success;sekrit", ""},
	{"COLOR:sekritred", ""},
	{"CONFERENCE;VALUE=URI:https://sekrit.example/call", ""},
	{"IMAGE;VALUE=URI:https://sekrit.example/img.png", ""},
	{"X-ALT-DESC;FMTTYPE=text/html:<b>sekrit</b>", ""},
	{"X-SEKRIT:anything", ""},
	{"X-MOZ-GENERATION:1", ""},
	{"X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY", ""},
	{"NEWIANAPROP:sekrit future", ""},
}

// badValues are values of kept properties that do not have their
// property's syntax: a reduced view leaves the property out.
var badValues = []string{
	"DTSTART:2025sekrit", "DTSTART:20250102T100000Z,20250103T100000Z", "DTEND:sekrit", "DURATION:P1Dsekrit",
	"RRULE:FREQ=sekrit", "RRULE:FREQ=DAILY;BYDAY=sekrit", "RRULE:COUNT=3", "RRULE:FREQ=DAILY;FREQ=WEEKLY",
	"RDATE:20250105T100000Z/sekrit", "EXDATE:sekrit", "RECURRENCE-ID:sekrit",
	"DTSTAMP:20250101", "SEQUENCE:sekrit", "TRANSP:sekrit", "STATUS:sekrit",
	"X-MICROSOFT-CDO-BUSYSTATUS:sekrit",
}

// classes are the CLASS lines the table runs over, with the class each
// means.
var classes = []struct {
	line string
	c    Class
}{
	{"", Public},
	{"CLASS:PUBLIC\n", Public},
	{"CLASS:CONFIDENTIAL\n", Confidential},
	{"CLASS:private\n", Private},
	{"CLASS:X-SEKRIT-CLASS\n", Private}, // unknown: private
	// Several (RFC 5545 allows one): the most restrictive, whichever
	// comes first.
	{"CLASS:PUBLIC\nCLASS:PRIVATE\n", Private},
	{"CLASS:PUBLIC\nCLASS:CONFIDENTIAL\n", Confidential},
	{"CLASS:CONFIDENTIAL\nCLASS:PUBLIC\n", Confidential},
}

var levels = []acl.Access{acl.NoAccess, acl.FreeBusyAccess, acl.ReadAccess, acl.OwnerAccess}

// eventCase is one row of the event table: an event holding prop (with an
// X-parameter added to it) and a class, seen at one access level.
type eventCase struct {
	line   string // the property under test
	want   string // catalogue's want; "" leaves it out
	class  string
	c      Class
	access acl.Access
}

func eventCases() []eventCase {
	var out []eventCase
	for _, cl := range classes {
		for _, a := range levels {
			for _, p := range catalogue {
				out = append(out, eventCase{p.line, p.want, cl.line, cl.c, a})
			}
			for _, v := range badValues {
				out = append(out, eventCase{v, "", cl.line, cl.c, a})
			}
			// A kept parameter with a value outside its syntax is left
			// out; its property stays.
			out = append(out,
				eventCase{"DTSTART;VALUE=sekrit:20250102", "DTSTART:20250102", cl.line, cl.c, a},
				eventCase{"DTEND;VALUE=sekrit:20250103", "DTEND:20250103", cl.line, cl.c, a},
				eventCase{"EXDATE;VALUE=sekrit:20250108", "EXDATE:20250108", cl.line, cl.c, a},
				eventCase{"RDATE;VALUE=sekrit:20250108", "RDATE:20250108", cl.line, cl.c, a},
				eventCase{"RECURRENCE-ID;VALUE=sekrit;RANGE=sekrit:20250102", "RECURRENCE-ID:20250102", cl.line, cl.c, a},
			)
		}
	}
	return out
}

// calendarOf is the calendar text of one event with property line and the
// class line, behind a master of the same class when line makes it an
// override; the event under test is the last VEVENT.
func (ec eventCase) calendarOf() string {
	name := ec.line[:strings.IndexAny(ec.line, ";:")]
	base := map[string]string{
		"UID":     "UID:uid-sekrit-1",
		"DTSTAMP": "DTSTAMP:20250101T000000Z",
		"DTSTART": "DTSTART:20250102T100000Z",
		"DTEND":   "DTEND:20250102T110000Z",
		"SUMMARY": "SUMMARY:the sekrit meeting",
	}
	// The property gets an X-parameter and a parameter of another
	// property's: neither is ever kept.
	line := strings.Replace(ec.line, ":", ";X-NOTE=sekrit-note;CN=sekrit-cn:", 1)
	base[name] = line
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub tests//EN\n")
	if name == "RECURRENCE-ID" {
		b.WriteString("BEGIN:VEVENT\nUID:uid-sekrit-1\nDTSTART:20250101T100000Z\nRRULE:FREQ=DAILY\n" + ec.class + "END:VEVENT\n")
	}
	b.WriteString("BEGIN:VEVENT\n")
	for _, k := range []string{"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY"} {
		b.WriteString(base[k] + "\n")
		delete(base, k)
	}
	for _, v := range base {
		b.WriteString(v + "\n")
	}
	b.WriteString(ec.class)
	b.WriteString("BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT15M\nDESCRIPTION:sekrit alarm\nEND:VALARM\n")
	b.WriteString("END:VEVENT\nEND:VCALENDAR\n")
	return strings.ReplaceAll(b.String(), "\n", "\r\n")
}

func (ec eventCase) String() string {
	return fmt.Sprintf("%s with %q at %s", ec.line, strings.TrimSpace(ec.class), ec.access)
}

// checkEvents runs the event table against r and returns its failures;
// with first, only the first.
func checkEvents(r *rules, first bool) []string {
	var fails []string
	for _, ec := range eventCases() {
		if f := ec.check(r); f != "" {
			fails = append(fails, f)
			if first {
				break
			}
		}
	}
	return fails
}

func (ec eventCase) check(r *rules) string {
	cals, err := calendar.Decode([]byte(ec.calendarOf()))
	if err != nil {
		return fmt.Sprintf("%v: decode: %v", ec, err)
	}
	objs := calendar.Objects(cals)
	o := objs[0]
	evs := o.Events()
	ev := evs[len(evs)-1]
	s := r.newSeries(objs)
	c, hide := s.Class(o.UID, ev), s.HideUID(o.UID)
	if c != ec.c || hide != (ec.c != Public) {
		return fmt.Sprintf("%v: class %v, hide UID %v; want %v, %v", ec, c, hide, ec.c, ec.c != Public)
	}
	out := r.event(ev, ec.access, c, hide)
	if ec.access == acl.NoAccess {
		if out != nil {
			return fmt.Sprintf("%v: a view, want none", ec)
		}
		return ""
	}
	got := encode(out)
	if ec.access == acl.OwnerAccess || ec.access == acl.ReadAccess && ec.c == Public {
		// Whole, without its alarm.
		whole := *ev
		whole.Children = nil
		if want := encode(&whole); got != want {
			return fmt.Sprintf("%v:\n%s\nwant it whole without alarms:\n%s", ec, got, want)
		}
		return ""
	}
	if strings.Contains(strings.ToLower(got), secret) {
		return fmt.Sprintf("%v: reduced view shows a secret:\n%s", ec, got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\r\n")
	has := func(name string) []string {
		var out []string
		for _, l := range lines {
			if strings.HasPrefix(l, name+":") || strings.HasPrefix(l, name+";") {
				out = append(out, l)
			}
		}
		return out
	}
	name := ec.line[:strings.IndexAny(ec.line, ";:")]
	switch name {
	case "UID", "SUMMARY", "CLASS":
	default:
		l := has(name)
		switch {
		case ec.want == "" && len(l) > 0:
			return fmt.Sprintf("%v: keeps %q, want it left out", ec, l)
		case ec.want == "":
		case len(l) != 1:
			return fmt.Sprintf("%v: writes %q, want %q", ec, l, ec.want)
		case strings.HasPrefix(ec.want, "^") && !regexp.MustCompile(ec.want).MatchString(l[0]),
			!strings.HasPrefix(ec.want, "^") && l[0] != ec.want:
			return fmt.Sprintf("%v: writes %q, want %q", ec, l[0], ec.want)
		}
	}
	if uid := has("UID"); len(uid) != 1 || !regexp.MustCompile(`^UID:busy-[0-9a-f]{32}$`).MatchString(uid[0]) {
		return fmt.Sprintf("%v: UID %q, want a keyed hash", ec, uid)
	}
	wantSummary, wantClass := "SUMMARY:Busy", ""
	if ec.access == acl.ReadAccess {
		wantClass = "CLASS:" + ec.c.String()
		if ec.c == Private {
			wantSummary = ""
		}
	}
	if got := strings.Join(has("SUMMARY"), ""); got != wantSummary {
		return fmt.Sprintf("%v: summary %q, want %q", ec, got, wantSummary)
	}
	if got := strings.Join(has("CLASS"), ""); got != wantClass {
		return fmt.Sprintf("%v: class %q, want %q", ec, got, wantClass)
	}
	if strings.Contains(got, "VALARM") {
		return fmt.Sprintf("%v: reduced view keeps an alarm", ec)
	}
	return ""
}

func encode(c *ical.Component) string {
	if c == nil {
		return "(none)"
	}
	b, err := calendar.Marshal(c)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.ReplaceAll(string(b), "\r\n ", "")
}

// TestEvent runs every property of the catalogue (and every kept one with
// a value outside its syntax) × every class × every access level.
func TestEvent(t *testing.T) {
	for _, f := range checkEvents(std, false) {
		t.Error(f)
	}
}

// TestEventKeepsUIDAsWritten: a reduced event that keeps its UID (the
// series is public, the override not) keeps it as written, escapes
// included, and nothing of its parameters.
func TestEventKeepsUIDAsWritten(t *testing.T) {
	cals, err := calendar.Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID;X-A=sekrit:a\\,b;c\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Secret\r\nLOCATION:Room\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := calendar.Objects(cals)[0].Master
	got := encode(Event(ev, acl.ReadAccess, Private, false))
	if !strings.Contains(got, "UID:a\\,b;c\r\n") || strings.Contains(got, "Secret") || strings.Contains(got, "Room") || strings.Contains(got, secret) || !strings.Contains(got, "CLASS:PRIVATE") {
		t.Errorf("reduced:\n%s", got)
	}
	got = encode(Event(ev, acl.FreeBusyAccess, Public, true))
	if !strings.Contains(got, "UID:busy-") || !strings.Contains(got, "SUMMARY:Busy") || strings.Contains(got, "a\\,b") {
		t.Errorf("busy view:\n%s", got)
	}
}

// TestReducedTimesAreTimes: the busy view keeps a time only when it is a
// day of the calendar and a time of the clock; a black-box sweep found
// month 13 and hour 25 kept, which ical.js moves and Python's icalendar
// refuses.
func TestReducedTimesAreTimes(t *testing.T) {
	cals, err := calendar.Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20250101T100000Z\r\nDTEND:20251211T250000Z\r\n" +
		"DTSTAMP:20250230T000000Z\r\nEXDATE:20251212T100000Z,20251313T100000Z\r\nRDATE:20240229T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := encode(Event(calendar.Objects(cals)[0].Master, acl.FreeBusyAccess, Public, true))
	if !strings.Contains(got, "DTSTART:20250101T100000Z") || !strings.Contains(got, "RDATE:20240229T100000Z") {
		t.Errorf("a sound time was left out:\n%s", got)
	}
	for _, gone := range []string{"T250000Z", "20250230", "20251313"} {
		if strings.Contains(got, gone) {
			t.Errorf("the busy view keeps %s:\n%s", gone, got)
		}
	}
}

// seriesCase is one row of the series table: messages (each its own
// calendar text, added to one Series) and what each event's class is.
type seriesCase struct {
	name     string
	messages []string
	// want is the class of each event, in message and input order, then
	// whether the UID is hidden.
	want []Class
	hide bool
}

func vevent(props ...string) string {
	return "BEGIN:VEVENT\nUID:u1\nDTSTAMP:20250101T000000Z\n" + strings.Join(props, "\n") + "\nEND:VEVENT\n"
}

const (
	master   = "DTSTART:20250101T100000Z\nRRULE:FREQ=DAILY;COUNT=5"
	override = "RECURRENCE-ID:20250102T100000Z\nDTSTART:20250102T120000Z"
	future   = "RECURRENCE-ID;RANGE=THISANDFUTURE:20250103T100000Z\nDTSTART:20250103T120000Z"
)

var seriesCases = []seriesCase{
	{"private series, override without class in another message",
		[]string{vevent(master, "CLASS:PRIVATE"), vevent(override, "SUMMARY:x")}, []Class{Private, Private}, true},
	{"the same, override first",
		[]string{vevent(override, "SUMMARY:x"), vevent(master, "CLASS:PRIVATE")}, []Class{Private, Private}, true},
	{"confidential series, public override in another message",
		[]string{vevent(master, "CLASS:CONFIDENTIAL"), vevent(override, "CLASS:PUBLIC")}, []Class{Confidential, Confidential}, true},
	{"public series, override without class in another message",
		[]string{vevent(master), vevent(override)}, []Class{Public, Public}, false},
	{"public series, private override in one message",
		[]string{vevent(master) + vevent(override, "CLASS:PRIVATE")}, []Class{Public, Private}, false},
	{"unknown class of the series",
		[]string{vevent(master, "CLASS:X-OWN"), vevent(override)}, []Class{Private, Private}, true},
	{"orphan override",
		[]string{vevent(override)}, []Class{Private}, true},
	{"orphan override that says it is public",
		[]string{vevent(override, "CLASS:PUBLIC")}, []Class{Private}, true},
	{"private THISANDFUTURE override makes its series private",
		[]string{vevent(master) + vevent(future, "CLASS:PRIVATE"), vevent(override)}, []Class{Private, Private, Private}, true},
	{"private THISANDFUTURE override in its own message",
		[]string{vevent(master), vevent(future, "CLASS:PRIVATE")}, []Class{Private, Private}, true},
	{"two copies of one series, the newer private",
		[]string{vevent(master), vevent(master, "CLASS:PRIVATE")}, []Class{Private, Private}, true},
	{"one event, no override",
		[]string{vevent("DTSTART:20250101T100000Z")}, []Class{Public}, false},
}

func checkSeries(r *rules) []string {
	var fails []string
	for _, sc := range seriesCases {
		s := r.newSeries()
		var objs []*calendar.Object
		for _, m := range sc.messages {
			cals, err := calendar.Decode([]byte(strings.ReplaceAll("BEGIN:VCALENDAR\n"+m+"END:VCALENDAR\n", "\n", "\r\n")))
			if err != nil {
				fails = append(fails, fmt.Sprintf("%s: %v", sc.name, err))
				continue
			}
			os := calendar.Objects(cals)
			s.Add(os)
			objs = append(objs, os...)
		}
		var got []Class
		for _, o := range objs {
			for _, ev := range o.Events() {
				got = append(got, s.Class(o.UID, ev))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(sc.want) || s.HideUID("u1") != sc.hide {
			fails = append(fails, fmt.Sprintf("%s: classes %v, hide UID %v; want %v, %v", sc.name, got, s.HideUID("u1"), sc.want, sc.hide))
		}
		// Judged by its own message, an object is never less strict than
		// the whole set makes it, but for an orphan whose master is
		// elsewhere (private either way, then).
		if len(sc.messages) == 1 {
			o := objs[0]
			series, ok := r.objectSeries(o)
			for i, ev := range o.Events() {
				if c := r.eventClass(ev, series, ok); c != sc.want[i] {
					fails = append(fails, fmt.Sprintf("%s: alone, event %d is %v, want %v", sc.name, i, c, sc.want[i]))
				}
			}
		}
	}
	return fails
}

// TestSeries: the class of an event is the stricter of its own and its
// UID's series', wherever the series is stored.
func TestSeries(t *testing.T) {
	for _, f := range checkSeries(std) {
		t.Error(f)
	}
}

const customZone = `BEGIN:VTIMEZONE
TZID;X-P=sekrit:Home of the sekrit
X-LIC-LOCATION:sekrit/place
TZURL:https://sekrit.example/tz
LAST-MODIFIED:20240101T000000Z
X-SEKRIT;X-P=sekrit:sekrit
BEGIN:STANDARD
DTSTART;X-P=sekrit;VALUE=sekrit:19701025T030000
TZOFFSETFROM;X-P=sekrit:+0200
TZOFFSETTO:+0100
TZNAME:sekrit standard
COMMENT:sekrit
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;X-N=sekrit
RDATE:sekrit
RDATE;VALUE=DATE-TIME:19901028T030000
END:STANDARD
BEGIN:DAYLIGHT
DTSTART;VALUE=DATE-TIME:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:sekrit summer
RRULE:FREQ=YEARLY;BYMONTH=sekrit
RDATE;VALUE=sekrit:19800330T020000
X-SEKRIT:sekrit
END:DAYLIGHT
BEGIN:STANDARD
DTSTART:sekrit
TZOFFSETFROM:+0100
TZOFFSETTO:+0100
END:STANDARD
BEGIN:STANDARD
DTSTART:19600101T000000
TZOFFSETFROM:sekrit
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19600101T000000
TZOFFSETFROM:+0100
TZOFFSETTO:sekrit
END:DAYLIGHT
BEGIN:X-SEKRIT
TZNAME:sekrit
END:X-SEKRIT
END:VTIMEZONE
`

const reducedZone = `BEGIN:VTIMEZONE
TZID:neutral
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
RDATE;VALUE=DATE-TIME:19901028T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART;VALUE=DATE-TIME:19700329T020000
RDATE:19800330T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
`

func checkZones(r *rules) []string {
	cals, err := calendar.Decode([]byte(strings.ReplaceAll("BEGIN:VCALENDAR\n"+customZone+"END:VCALENDAR\n", "\n", "\r\n")))
	if err != nil {
		return []string{err.Error()}
	}
	var fails []string
	z := r.zone(cals[0].Children[0], "neutral")
	if got, want := encode(z), strings.ReplaceAll(reducedZone, "\n", "\r\n"); got != want {
		fails = append(fails, fmt.Sprintf("zone reduced to\n%s\nwant\n%s", got, want))
	}
	empty := &ical.Component{Name: ical.CompTimezone, Props: ical.Props{}, Children: cals[0].Children[0].Children[2:]}
	if z := r.zone(empty, "neutral"); z != nil {
		fails = append(fails, fmt.Sprintf("zone without a usable observance reduced to\n%s\nwant none", encode(z)))
	}
	for id, want := range map[string]string{
		"Europe/Berlin":                         "Europe/Berlin",
		"W. Europe Standard Time":               "Europe/Berlin",
		"/mozilla.org/20050126_1/Europe/Berlin": "Europe/Berlin",
		"Home of the sekrit":                    "^fbpub-tz-[0-9a-f]{16}$",
	} {
		got := r.tzid(id)
		if got != want && !(strings.HasPrefix(want, "^") && regexp.MustCompile(want).MatchString(got)) {
			fails = append(fails, fmt.Sprintf("tzid(%q) = %q, want %q", id, got, want))
		}
	}
	if a, b := r.tzid("Home of the sekrit"), r.tzid("Home of the sekrit "); a == b {
		fails = append(fails, fmt.Sprintf("tzid gives two zone names one name %q", a))
	}
	return fails
}

// TestZone: a VTIMEZONE is reduced to its transition rules, and a TZID
// that is not a time zone database name becomes a neutral one.
func TestZone(t *testing.T) {
	for _, f := range checkZones(std) {
		t.Error(f)
	}
	if TZID("Home of the sekrit") != TZID("Home of the sekrit") {
		t.Error("TZID is not stable")
	}
}
