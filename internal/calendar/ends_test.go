package calendar

import (
	"strings"
	"testing"
)

// TestDecodeTextEnds checks the ends of a payload: blanks after the last
// line break (or on the last line) made go-ical drop the last calendar.
func TestDecodeTextEnds(t *testing.T) {
	cal := func(desc, end string) string {
		return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20250101T000000Z\r\n" +
			"DTSTART:20250301T090000Z\r\nDTEND:20250301T100000Z\r\nDESCRIPTION:" + desc + "\r\nEND:VEVENT\r\nEND:VCALENDAR" + end
	}
	var cases []string
	for _, end := range []string{"\r\n", "\r\n ", "\r\n\t", "\r\n \r\n", "\n  \n", "\r\n\r\n\r\n", " ", ""} {
		cases = append(cases, cal("x", end))
	}
	cases = append(cases, cal(strings.Repeat("d", 5000), " \r\n"))
	for _, c := range cases {
		cals, err := Decode([]byte(c))
		if err != nil || len(cals) != 1 || len(cals[0].Events()) != 1 {
			t.Errorf("%d bytes ending %q: %d calendars, %v", len(c), c[max(0, len(c)-20):], len(cals), err)
		}
	}
}
