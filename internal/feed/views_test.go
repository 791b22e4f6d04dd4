package feed

import (
	"strings"
	"testing"

	"github.com/fbpub/fbpub/internal/calendar"
)

// TestReduceKeepsUID: a reduced event that keeps its UID keeps it as
// written, escapes included (it used to be escaped a second time).
func TestReduceKeepsUID(t *testing.T) {
	cals, err := calendar.Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\\,b;c\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Secret\r\nLOCATION:Room\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ev := calendar.Objects(cals)[0].Master
	b, err := calendar.Marshal(reduce(ev, private, false))
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.Contains(got, "UID:a\\,b;c\r\n") || strings.Contains(got, "Secret") || strings.Contains(got, "Room") || !strings.Contains(got, "CLASS:PRIVATE") {
		t.Errorf("reduced:\n%s", got)
	}
	b, _ = calendar.Marshal(reduce(ev, public, true))
	if got := string(b); !strings.Contains(got, "UID:busy-") || !strings.Contains(got, "SUMMARY:Busy") || strings.Contains(got, "a\\,b") {
		t.Errorf("busy view:\n%s", got)
	}
}
