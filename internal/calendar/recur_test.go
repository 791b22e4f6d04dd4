package calendar

import (
	"strings"
	"testing"

	"github.com/emersion/go-ical"
)

// TestCheckRecur: rules within RFC 5545's syntax and ranges are kept,
// written as strict parsers read them; the values ical.js refuses for
// the whole calendar (a black-box sweep found each) are refused.
func TestCheckRecur(t *testing.T) {
	for in, want := range map[string]string{
		"FREQ=DAILY;COUNT=2":                         "FREQ=DAILY;COUNT=2",
		"freq=daily;count=2":                         "FREQ=DAILY;COUNT=2",
		" FREQ=MONTHLY ; BYDAY=+05MO,-1fr":           "FREQ=MONTHLY;BYDAY=5MO,-1FR",
		"FREQ=YEARLY;BYMONTHDAY=+01,-31;BYMONTH=02":  "FREQ=YEARLY;BYMONTHDAY=1,-31;BYMONTH=2",
		"FREQ=WEEKLY;X-NAME=1;WKST=SU;BYDAY=MO":      "FREQ=WEEKLY;WKST=SU;BYDAY=MO",
		"FREQ=MINUTELY;BYSECOND=60;BYMINUTE=0":       "FREQ=MINUTELY;BYSECOND=60;BYMINUTE=0",
		"FREQ=YEARLY;BYYEARDAY=-366;BYWEEKNO=53":     "FREQ=YEARLY;BYYEARDAY=-366;BYWEEKNO=53",
		"FREQ=DAILY;UNTIL=20250301T000000Z":          "FREQ=DAILY;UNTIL=20250301T000000Z",
		"FREQ=DAILY;UNTIL=20250301":                  "FREQ=DAILY;UNTIL=20250301",
		"RSCALE=GREGORIAN;FREQ=YEARLY;SKIP=FORWARD":  "RSCALE=GREGORIAN;FREQ=YEARLY;SKIP=FORWARD",
		"FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1,366;;": "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-1,366",
		"FREQ=HOURLY;INTERVAL=0007;BYHOUR=0,23":      "FREQ=HOURLY;INTERVAL=0007;BYHOUR=0,23",
		"FREQ=YEARLY;BYDAY=53MO,-53SU;BYMONTH=12,1":  "FREQ=YEARLY;BYDAY=53MO,-53SU;BYMONTH=12,1",
	} {
		if got, ok := CheckRecur(in); !ok || got != want {
			t.Errorf("CheckRecur(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{
		"FREQ=YEARLY;BYMONTH=13", "FREQ=DAILY;BYHOUR=99", "FREQ=DAILY;BYHOUR=24", "FREQ=MONTHLY;BYMONTHDAY=99",
		"FREQ=MONTHLY;BYMONTHDAY=0", "FREQ=YEARLY;BYYEARDAY=999", "FREQ=YEARLY;BYWEEKNO=99", "FREQ=YEARLY;BYWEEKNO=-0",
		"FREQ=MINUTELY;BYSECOND=999", "FREQ=MINUTELY;BYSECOND=-1", "FREQ=MONTHLY;BYDAY=+99MO", "FREQ=MONTHLY;BYDAY=+0MO",
		"FREQ=MONTHLY;BYDAY=-0MO", "FREQ=MONTHLY;BYDAY=++1MO", "FREQ=MONTHLY;BYDAY=+-1MO", "FREQ=MONTHLY;BYDAY=XX",
		"FREQ=MONTHLY;BYDAY=", "FREQ=MONTHLY;BYDAY=1", "FREQ=FOO", "FREQ=DAILY;WKST=XX", "COUNT=2", "",
		"FREQ=DAILY;FREQ=WEEKLY", "FREQ=DAILY;UNTIL=garbage", "FREQ=DAILY;UNTIL=2025-03-01", "FREQ=DAILY;COUNT=-1",
		"FREQ=DAILY;INTERVAL=x", "FREQ=MONTHLY;BYSETPOS=0", "FREQ=MONTHLY;BYSETPOS=367", "FREQ=YEARLY;BYMONTH=1,,2",
		"FREQ=YEARLY;BYMONTHDAY=031", "RSCALE=HEBREW;FREQ=YEARLY", "FREQ",
	} {
		if got, ok := CheckRecur(in); ok {
			t.Errorf("CheckRecur(%q) = %q, true; want it refused", in, got)
		}
	}
}

// FuzzCheckRecur: whatever CheckRecur accepts it writes in upper-case
// words, digits and the rule's punctuation, and accepts again unchanged.
func FuzzCheckRecur(f *testing.F) {
	for _, s := range []string{"FREQ=DAILY;COUNT=2", "freq=monthly;byday=+05mo,-1fr", "FREQ=YEARLY;BYMONTH=13", "FREQ=WEEKLY;X-A=1;WKST=SU"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := CheckRecur(s)
		if !ok {
			return
		}
		if strings.Trim(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=;,+-") != "" || strings.ContainsAny(out, "+") {
			t.Fatalf("CheckRecur(%q) = %q: characters outside a rule's", s, out)
		}
		if again, ok := CheckRecur(out); !ok || again != out {
			t.Fatalf("CheckRecur(%q) = %q, but again %q, %v", s, out, again, ok)
		}
	})
}

// TestSound: the properties whose values strict parsers refuse for the
// whole calendar are left out (in children too), rules are written as
// CheckRecur writes them, everything else is as it was; the input is not
// modified, and a sound component is returned as it is.
func TestSound(t *testing.T) {
	o := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nDTSTART:20250303T100000Z\nSUMMARY:Keep\n"+
		"RRULE:freq=weekly;byday=mo\nRRULE:FREQ=MONTHLY;BYMONTH=13\nEXRULE:FREQ=FOO\nFREEBUSY:garbage\nFREEBUSY:20250303T100000Z/PT1H\n"+
		"X-A;VALUE=RECUR:FREQ=BAD\nX-B;VALUE=PERIOD:20250303T100000Z\nX-C;VALUE=PERIOD:20250303T100000Z/20250303T110000Z\nX-D:text\n"+
		"BEGIN:X-PART\nRRULE:FREQ=DAILY;BYHOUR=99\nX-E:kept\nEND:X-PART\nEND:VEVENT\nEND:VCALENDAR\n")[0]
	ev := o.Master
	before := encodeOne(t, ev)
	got := encodeOne(t, Sound(ev))
	if encodeOne(t, ev) != before {
		t.Errorf("Sound modified its input")
	}
	for _, want := range []string{"SUMMARY:Keep", "RRULE:FREQ=WEEKLY;BYDAY=MO", "FREEBUSY:20250303T100000Z/PT1H",
		"X-C;VALUE=PERIOD:20250303T100000Z/20250303T110000Z", "X-D:text", "BEGIN:X-PART", "X-E:kept"} {
		if !strings.Contains(got, want+"\r\n") {
			t.Errorf("Sound left out %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"BYMONTH=13", "EXRULE", "garbage", "FREQ=BAD", "X-B", "BYHOUR=99", "freq="} {
		if strings.Contains(got, gone) {
			t.Errorf("Sound kept %q:\n%s", gone, got)
		}
	}
	sound := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:b\nDTSTART:20250303T100000Z\nRRULE:FREQ=DAILY\nEND:VEVENT\nEND:VCALENDAR\n")[0].Master
	if Sound(sound) != sound {
		t.Errorf("Sound copied a sound component")
	}
}

func encodeOne(t *testing.T, c *ical.Component) string {
	t.Helper()
	var b strings.Builder
	if err := NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
