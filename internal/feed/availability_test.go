package feed

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/testbed"
)

// weekdaysNineToFive is a VAVAILABILITY: weekdays 09:00-17:00 UTC.
const weekdaysNineToFive = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub tests//EN\r\n" +
	"BEGIN:VAVAILABILITY\r\nUID:hours\r\nDTSTAMP:20250101T000000Z\r\n" +
	"BEGIN:AVAILABLE\r\nUID:day\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250303T090000Z\r\nDTEND:20250303T170000Z\r\n" +
	"RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR\r\nEND:AVAILABLE\r\nEND:VAVAILABILITY\r\nEND:VCALENDAR\r\n"

// TestOffHoursFromFolder: the VAVAILABILITY in an owner's folder decides
// the off hours of a query that asks for them, over the configured
// pattern, and survives a warm restart; a query that does not ask gets
// the answer it always got.
func TestOffHoursFromFolder(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, 0)
	f.cache.opts.StateDir = dir
	setupAlice(t, f.srv)
	f.srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("hours", weekdaysNineToFive))
	f.srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("m", event("m", "Meeting", time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC), 10)))
	w := freebusy.Window{Start: time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 3, 8, 0, 0, 0, 0, time.UTC)}
	q := FreeBusyQuery{Owner: "alice", Window: w, Viewer: acl.Requester{User: "bob"}}
	plain, err := f.cache.FreeBusy(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(plain.Body), "BUSY-UNAVAILABLE") || !strings.Contains(string(plain.Body), "FREEBUSY;FBTYPE=BUSY:20250307T100000Z/20250307T110000Z") {
		t.Errorf("without off hours:\n%s", plain.Body)
	}
	q.OffHours, q.WorkingHours = true, availability.MustParseHours("MO-FR 06:00-20:00")
	marked, err := f.cache.FreeBusy(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T000000Z/20250307T090000Z", "FREEBUSY;FBTYPE=BUSY:20250307T100000Z/20250307T110000Z",
		"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250307T170000Z/20250308T000000Z"} {
		if !strings.Contains(string(marked.Body), want) {
			t.Errorf("with off hours, lacks %s:\n%s", want, marked.Body)
		}
	}
	if marked.ETag == plain.ETag {
		t.Errorf("answers with and without off hours share the ETag %s", marked.ETag)
	}

	restarted := newFixture(t, 0)
	restarted.cache.opts.StateDir = dir
	again, err := restarted.cache.FreeBusy(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.src.bodies.Load(); got != 0 {
		t.Errorf("after a restart, fetched %d bodies, want 0", got)
	}
	if again.ETag != marked.ETag || !strings.Contains(string(again.Body), "BUSY-UNAVAILABLE:20250307T170000Z/20250308T000000Z") {
		t.Errorf("after a restart, the VAVAILABILITY is lost:\n%s", again.Body)
	}
}
