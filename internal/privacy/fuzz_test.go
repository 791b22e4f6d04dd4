package privacy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
)

// FuzzReduce: for any event and any access level below the owner's, a
// reduced view holds no text of its input but what the allow-list keeps.
// The fuzzer gives a calendar (seeded from the corpus of real clients'
// calendars and testdata/), a secret and a choice of places; the secret
// is written into those places of every event and time zone — summary,
// location, description, attendee, organizer, X- properties (their names
// and values), X- parameters on the kept properties, parameter values
// (TZID, VALUE), values of kept properties, RRULE parts, CLASS, UID,
// alarms, TZNAME, X-LIC-LOCATION, TZURL — and must not show in any
// reduced view or zone. Beside the secret, every word of eight or more
// letters or digits that the input holds outside the allow-list must not
// show either, unless the kept part holds it too.
func FuzzReduce(f *testing.F) {
	files, _ := filepath.Glob("../calendar/testdata/corpus/*")
	own, _ := filepath.Glob("testdata/*.ics")
	for i, name := range append(files, own...) {
		if strings.HasSuffix(name, ".json") {
			continue
		}
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b, "quiltwhisper", uint64(0xffffffffffffffff))
			f.Add(b, "mystery", uint64(i)*0x9e3779b97f4a7c15)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed string, where uint64) {
		secret := secretOf(seed)
		var objs []*calendar.Object
		if parts, err := calendar.MessageParts(data); err == nil {
			for _, p := range parts {
				o, _ := calendar.PartObjects(p)
				objs = append(objs, o...)
			}
		}
		if cals, err := calendar.Decode(data); err == nil {
			objs = append(objs, calendar.Objects(cals)...)
		}
		if len(objs) > 8 {
			objs = objs[:8]
		}
		for _, o := range objs {
			evs := o.Events()
			if len(evs) > 8 {
				evs = evs[:8]
			}
			for _, ev := range evs {
				checkEvent(t, ev, secret, where)
			}
			for _, z := range o.Timezones {
				checkZone(t, z, secret, where)
			}
		}
	})
}

// secretOf makes a secret of 8 to 16 letters g–z out of seed: no hex
// digit (hashes) and no word of iCalendar's vocabulary can hold it.
func secretOf(seed string) string {
	var b strings.Builder
	for i := 0; i < len(seed) && b.Len() < 16; i++ {
		b.WriteByte('g' + seed[i]%20)
	}
	for b.Len() < 8 {
		b.WriteByte('q')
	}
	return b.String()
}

// on reports whether place i of where is chosen; the first places are
// always taken when where is all ones.
func on(where uint64, i int) bool { return where&(1<<(i%64)) != 0 }

// leaky returns a copy of ev with secret written into the places where
// chooses. The copy shares nothing that ev's other users see.
func leaky(ev *ical.Component, secret string, where uint64) *ical.Component {
	out := &ical.Component{Name: ev.Name, Props: ical.Props{}}
	for name, ps := range ev.Props {
		cp := make([]ical.Prop, len(ps))
		for i, p := range ps {
			p.Params = ical.Params{}
			for k, v := range ev.Props[name][i].Params {
				p.Params[k] = append([]string(nil), v...)
			}
			cp[i] = p
		}
		out.Props[name] = cp
	}
	up := strings.ToUpper(secret)
	add := func(name, value string, params ...string) {
		p := ical.Prop{Name: name, Value: value, Params: ical.Params{}}
		for i := 0; i+1 < len(params); i += 2 {
			p.Params[params[i]] = []string{params[i+1]}
		}
		out.Props[name] = append(out.Props[name], p)
	}
	texts := []string{ical.PropSummary, ical.PropLocation, ical.PropDescription, ical.PropComment,
		ical.PropContact, ical.PropCategories, ical.PropResources, ical.PropURL, "X-ALT-DESC", "X-" + up}
	for i, name := range texts {
		if on(where, i) {
			add(name, "the "+secret+" text")
		}
	}
	n := len(texts)
	if on(where, n) {
		add(ical.PropAttendee, "mailto:"+secret+"@example.org", "CN", secret, "X-"+up, secret)
	}
	if on(where, n+1) {
		add(ical.PropOrganizer, "mailto:"+secret+"@example.org", "CN", secret)
	}
	if on(where, n+2) {
		out.Props.Del(ical.PropClass)
		add(ical.PropClass, secret)
	}
	if on(where, n+3) {
		out.Props.Del(ical.PropUID)
		add(ical.PropUID, secret+"-uid")
	}
	if on(where, n+4) {
		out.Props.Del(ical.PropStatus)
		add(ical.PropStatus, secret)
	} else {
		add(ical.PropStatus, "CONFIRMED", "X-"+up, secret)
	}
	if on(where, n+5) {
		add(ical.PropTransparency, secret)
	}
	if on(where, n+6) {
		add(ical.PropSequence, "1"+secret)
	}
	// Every parameter of every property gets an X- sibling, and the time
	// properties a TZID and VALUE of the secret's.
	for name, ps := range out.Props {
		for i := range ps {
			if on(where, n+7) {
				ps[i].Params["X-"+up] = []string{secret}
			}
			if on(where, n+8) {
				ps[i].Params["X-NOTE"] = []string{"the " + secret}
			}
			switch name {
			case ical.PropDateTimeStart, ical.PropDateTimeEnd, ical.PropExceptionDates, ical.PropRecurrenceDates, ical.PropRecurrenceID:
				if on(where, n+9) {
					ps[i].Params[ical.ParamTimezoneID] = []string{"Zone of " + secret}
				}
				if on(where, n+10) {
					ps[i].Params[ical.ParamValue] = []string{secret}
				}
				if on(where, n+11) {
					ps[i].Params[ical.ParamRange] = []string{secret}
				}
			case ical.PropRecurrenceRule:
				if on(where, n+12) {
					ps[i].Value += ";X-" + up + "=" + secret
				}
				if on(where, n+13) {
					ps[i].Value += ";BYDAY=" + secret
				}
			}
		}
	}
	if on(where, n+14) {
		out.Children = append(out.Children, &ical.Component{Name: ical.CompAlarm, Props: ical.Props{
			ical.PropDescription: {{Name: ical.PropDescription, Value: secret}}}})
	}
	return out
}

// leakyZone returns a copy of the VTIMEZONE z with secret written into the
// places where chooses.
func leakyZone(z *ical.Component, secret string, where uint64) *ical.Component {
	up := strings.ToUpper(secret)
	var cp func(c *ical.Component, depth int) *ical.Component
	cp = func(c *ical.Component, depth int) *ical.Component {
		out := &ical.Component{Name: c.Name, Props: ical.Props{}}
		for name, ps := range c.Props {
			for _, p := range ps {
				np := ical.Prop{Name: p.Name, Value: p.Value, Params: ical.Params{}}
				for k, v := range p.Params {
					np.Params[k] = append([]string(nil), v...)
				}
				if on(where, 40) {
					np.Params["X-"+up] = []string{secret}
				}
				out.Props[name] = append(out.Props[name], np)
			}
		}
		for i, name := range []string{ical.PropTimezoneName, "X-LIC-LOCATION", ical.PropTimezoneURL, ical.PropComment, "X-" + up} {
			if on(where, 41+i) {
				out.Props[name] = append(out.Props[name], ical.Prop{Name: name, Value: secret, Params: ical.Params{}})
			}
		}
		if depth == 0 && on(where, 46) {
			out.Props.Del(ical.PropTimezoneID)
			out.Props[ical.PropTimezoneID] = []ical.Prop{{Name: ical.PropTimezoneID, Value: "Zone of " + secret}}
		}
		for _, ch := range c.Children {
			if depth < 2 {
				out.Children = append(out.Children, cp(ch, depth+1))
			}
		}
		return out
	}
	return cp(z, 0)
}

// words returns the runs of 8 or more letters and digits of s, lower-cased.
func words(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if len(w) >= 8 {
			out = append(out, strings.ToLower(w))
		}
	}
	return out
}

// vocabulary is the text a reduced view writes of its own.
const vocabulary = "busy private confidential public vevent vtimezone standard daylight begin end " +
	"opaque transparent tentative confirmed cancelled free oof workingelsewhere thisandfuture date-time period " +
	"secondly minutely hourly daily weekly monthly yearly gregorian backward forward"

// split returns the text of props that allow keeps (values, and the
// values of the parameters it keeps, with the names TZID gives) and the
// rest (names, values and parameters it does not keep).
func split(props ical.Props, allow map[string]keep) (kept, rest string) {
	var k, r strings.Builder
	for name, ps := range props {
		a, ok := allow[strings.ToUpper(name)]
		if ok {
			k.WriteString(name + " ")
		}
		for _, p := range ps {
			if !ok {
				r.WriteString(" " + p.Value)
			} else {
				k.WriteString(" " + p.Value)
			}
			for pn, pvs := range p.Params {
				_, kp := a.params[strings.ToUpper(pn)]
				for _, v := range pvs {
					if ok && kp {
						k.WriteString(" " + v + " " + TZID(v))
					} else {
						r.WriteString(" " + pn + " " + v)
					}
				}
			}
		}
		if !ok {
			r.WriteString(" " + name)
		}
	}
	return k.String(), r.String()
}

// noLeak fails t when out (a reduced view) shows the secret, or a word of
// rest that kept does not hold.
func noLeak(t *testing.T, what string, out *ical.Component, secret, kept, rest string) {
	t.Helper()
	if out == nil {
		return
	}
	text := strings.ToLower(encode(out))
	if strings.Contains(text, secret) {
		t.Fatalf("%s shows the secret %q:\n%s", what, secret, text)
	}
	kept = strings.ToLower(kept) + " " + vocabulary
	for _, w := range words(rest) {
		if strings.Contains(text, w) && !strings.Contains(kept, w) {
			t.Fatalf("%s shows %q of its input, not allow-listed:\n%s", what, w, text)
		}
	}
}

func checkEvent(t *testing.T, ev *ical.Component, secret string, where uint64) {
	ev = leaky(ev, secret, where)
	kept, rest := split(ev.Props, std.props)
	for _, v := range []struct {
		a acl.Access
		c Class
	}{{acl.FreeBusyAccess, Public}, {acl.FreeBusyAccess, Private}, {acl.ReadAccess, Confidential}, {acl.ReadAccess, Private}} {
		noLeak(t, "reduced event at "+v.a.String()+"/"+v.c.String(), Event(ev, v.a, v.c, true), secret, kept, rest)
	}
}

func checkZone(t *testing.T, z *ical.Component, secret string, where uint64) {
	z = leakyZone(z, secret, where)
	id := ""
	if p := z.Props.Get(ical.PropTimezoneID); p != nil {
		id = calendar.Text(p)
	}
	name := TZID(id)
	kept, rest := split(nil, nil)
	for _, ch := range z.Children {
		k, r := split(ch.Props, std.observance)
		kept, rest = kept+" "+k, rest+" "+r
	}
	_, r := split(z.Props, nil)
	noLeak(t, "reduced zone", Zone(z, name), secret, kept+" "+name, rest+" "+r)
}
