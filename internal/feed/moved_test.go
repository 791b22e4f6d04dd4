package feed

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/testbed"
)

// TestMovedInstanceAcrossMessages: on the test bed Dovecot, alice's
// series and the override that moves one of its instances are two
// messages (as a one-instance invitation or a Kolab client stores them).
// Her free/busy shows the moved instance busy at its new time only, and
// the extended view gives a reader the override's summary there. The
// override counts only in answers made of the folder that holds it: one
// in a folder the requester may not see changes nothing of what they
// see.
func TestMovedInstanceAcrossMessages(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 2)
	d := day.Format("20060102")
	cal := func(body string) []byte {
		return testbed.CalendarMessage("event", strings.ReplaceAll("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub tests//EN\nBEGIN:VEVENT\nDTSTAMP:20250101T000000Z\n"+body+"END:VEVENT\nEND:VCALENDAR\n", "\n", "\r\n"))
	}
	for _, folder := range []string{"Calendar", "Calendar/Private"} {
		srv.CreateFolder(t, "alice", folder)
		srv.SetACL(t, "alice", folder, testbed.Proxy, "lra")
	}
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	srv.Append(t, "alice", "Calendar", cal("UID:planning\nDTSTART:"+d+"T090000Z\nDTEND:"+d+"T100000Z\nRRULE:FREQ=DAILY;COUNT=2\nSUMMARY:Planning\n"))
	srv.Append(t, "alice", "Calendar", cal("UID:planning\nRECURRENCE-ID:"+d+"T090000Z\nDTSTART:"+d+"T140000Z\nDTEND:"+d+"T150000Z\nSUMMARY:Planning moved to the afternoon\n"))
	// A series bob reads, moved by an override in a folder he may not
	// read; whether he sees its free/busy is the policy's to say.
	srv.Append(t, "alice", "Calendar", cal("UID:review\nDTSTART:"+d+"T060000Z\nDTEND:"+d+"T070000Z\nSUMMARY:Review\n"))
	srv.Append(t, "alice", "Calendar/Private", cal("UID:review\nRECURRENCE-ID:"+d+"T060000Z\nDTSTART:"+d+"T170000Z\nDTEND:"+d+"T180000Z\nSUMMARY:Review at home\n"))

	win := freebusy.Window{Start: day.Truncate(24 * time.Hour), End: day.Truncate(24*time.Hour).AddDate(0, 0, 3)}
	next := day.AddDate(0, 0, 1).Format("20060102")
	var (
		review      = d + "T060000Z/" + d + "T070000Z"
		reviewMoved = d + "T170000Z/" + d + "T180000Z"
		moved       = d + "T140000Z/" + d + "T150000Z"
		nextDay     = next + "T090000Z/" + next + "T100000Z"
	)
	bob, alice := acl.Requester{User: "bob"}, acl.Requester{User: "alice"}
	tests := []struct {
		policy acl.Visibility
		name   string
		q      FreeBusyQuery
		want   []string
	}{
		// Free/busy for everyone: bob's answer for alice is made of both
		// folders, so the override in Calendar/Private moves the review;
		// he reads the details of Calendar only.
		{acl.Public, "bob's alice.vfb", FreeBusyQuery{Viewer: bob}, []string{moved, reviewMoved, nextDay}},
		{acl.Public, "bob's alice.xfb", FreeBusyQuery{Extended: true, Viewer: bob}, []string{
			moved + " Planning moved to the afternoon", reviewMoved, nextDay + " Planning"}},
		{acl.Public, "bob's Calendar.vfb", FreeBusyQuery{Folder: []string{"Calendar"}, Viewer: bob}, []string{review, moved, nextDay}},
		{acl.Public, "bob's Calendar.pxfb", FreeBusyQuery{Folder: []string{"Calendar"}, Extended: true, Viewer: bob}, []string{
			review + " Review", moved + " Planning moved to the afternoon", nextDay + " Planning"}},
		{acl.Public, "alice's alice.xfb", FreeBusyQuery{Extended: true, Viewer: alice}, []string{
			moved + " Planning moved to the afternoon", reviewMoved + " Review at home", nextDay + " Planning"}},
		{acl.Public, "alice's Calendar.vfb", FreeBusyQuery{Folder: []string{"Calendar"}, Viewer: alice}, []string{review, moved, nextDay}},
		// Free/busy by ACL: bob may not see Calendar/Private at all, and
		// what it holds does not reach him through Calendar.
		{acl.ByACL, "bob's alice.vfb", FreeBusyQuery{Viewer: bob}, []string{review, moved, nextDay}},
		{acl.ByACL, "bob's alice.xfb", FreeBusyQuery{Extended: true, Viewer: bob}, []string{
			review + " Review", moved + " Planning moved to the afternoon", nextDay + " Planning"}},
		{acl.ByACL, "alice's alice.vfb", FreeBusyQuery{Viewer: alice}, []string{moved, reviewMoved, nextDay}},
	}
	ctx := context.Background()
	caches := map[acl.Visibility]*Cache{}
	for _, tt := range tests {
		c := caches[tt.policy]
		if c == nil {
			f := newFixtureOn(t, srv, 0)
			c = New(Options{Source: f.src, Metrics: f.m, Policy: &acl.Policy{FreeBusy: tt.policy}})
			caches[tt.policy] = c
		}
		q := tt.q
		q.Owner, q.Window = "alice", win
		a, err := c.FreeBusy(ctx, q)
		if err != nil {
			t.Fatalf("%s (free/busy %s): %v", tt.name, tt.policy, err)
		}
		if got := freeBusyLines(t, a.Body); !slices.Equal(got, tt.want) {
			t.Errorf("%s (free/busy %s):\n  %s\nwant\n  %s", tt.name, tt.policy, strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
		}
	}
}

// freeBusyLines reads the FREEBUSY lines of a VFREEBUSY answer as
// "start/end" followed by the decoded X-SUMMARY, when there is one.
func freeBusyLines(t *testing.T, body []byte) []string {
	t.Helper()
	cals, err := calendar.Decode(body)
	if err != nil || len(cals) != 1 {
		t.Fatalf("answer does not decode (%v):\n%s", err, body)
	}
	var out []string
	for _, c := range cals[0].Children {
		if c.Name != ical.CompFreeBusy {
			continue
		}
		for _, p := range c.Props.Values(ical.PropFreeBusy) {
			line := p.Value
			if s := p.Params.Get("X-SUMMARY"); s != "" {
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					t.Fatalf("X-SUMMARY %q: %v", s, err)
				}
				line += " " + string(b)
			}
			out = append(out, line)
		}
	}
	return out
}
