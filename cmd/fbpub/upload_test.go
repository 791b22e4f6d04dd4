package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/testbed"
)

func put(t *testing.T, url, user string, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	return request(t, "PUT", url, user, body, append([]string{"Content-Type", "text/calendar; charset=utf-8"}, hdr...)...)
}

func getAs(t *testing.T, url, user string) (int, http.Header, string) {
	t.Helper()
	return request(t, "GET", url, user, "")
}

// TestUploadEndToEnd is the ical2imap round trip as a client does it:
// GET the feed, edit one event, delete one, add one, PUT it back with
// If-Match; the answer, the next GET and the log folder agree. A stale
// If-Match gets 412, and a reader without the insert right 403 (even for
// a PUT that would change nothing), all with the folder untouched.
func TestUploadEndToEnd(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.SetACL(t, "alice", "Calendar", "bob", "lr")
	for _, e := range []struct{ uid, summary, hour string }{{"e-1", "Standup", "08"}, {"e-2", "Review", "10"}, {"e-3", "Lunch", "12"}} {
		srv.Append(t, "alice", "Calendar", testbed.CalendarMessage(e.summary, crlf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example//Test//EN
BEGIN:VEVENT
UID:`+e.uid+`
DTSTAMP:20250101T000000Z
DTSTART:`+day+`T`+e.hour+`0000Z
DTEND:`+day+`T`+e.hour+`3000Z
SUMMARY:`+e.summary+`
END:VEVENT
END:VCALENDAR
`)))
	}
	bin := buildBinary(t)
	base, _ := startBinary(t, bin, "FBPUB_IMAP_ADDR="+srv.Addr, "FBPUB_IMAP_TLS=none",
		"FBPUB_IMAP_USER="+testbed.Proxy, "FBPUB_IMAP_PASSWORD="+testbed.Password(testbed.Proxy), "FBPUB_CHECK_INTERVAL=0s")
	url := base + "/calendar/alice/Calendar.ics"

	code, hdr, feed := getAs(t, url, "alice")
	if code != 200 || !strings.Contains(feed, "SUMMARY:Review") {
		t.Fatalf("GET = %d\n%s", code, feed)
	}
	etag := hdr.Get("ETag")
	// Edit the standup (with a new SEQUENCE, as clients do), delete the
	// review, add a retro.
	edited := strings.Replace(feed, "SUMMARY:Standup", "SUMMARY:Standup (moved)\r\nSEQUENCE:1", 1)
	start := strings.Index(edited, "BEGIN:VEVENT\r\nUID:e-2")
	end := strings.Index(edited[start:], "END:VEVENT\r\n") + start + len("END:VEVENT\r\n")
	edited = edited[:start] + edited[end:]
	edited = strings.Replace(edited, "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:e-4\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:"+day+"T150000Z\r\nDTEND:"+day+"T160000Z\r\nSUMMARY:Retro\r\nEND:VEVENT\r\nEND:VCALENDAR", 1)

	before := srv.Dial(t, "alice")
	st0, _ := before.Status("Calendar", &imap.StatusOptions{UIDNext: true}).Wait()
	if code, _, body := put(t, url, "bob", edited); code != http.StatusForbidden || !strings.Contains(body, `"i"`) {
		t.Errorf("bob (lr) PUT = %d %q; want 403 naming the i right", code, body)
	}
	if code, _, body := put(t, url, "bob", feed); code != http.StatusForbidden || !strings.Contains(body, `"i"`) {
		t.Errorf("bob (lr) PUT of the calendar as it is = %d %q; want 403 naming the i right", code, body)
	}
	if code, _, _ := put(t, url, "alice", edited, "If-Match", `"not-the-current-tag"`); code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match = %d, want 412", code)
	}
	if st1, _ := before.Status("Calendar", &imap.StatusOptions{UIDNext: true}).Wait(); st1 == nil || st0 == nil || st1.UIDNext != st0.UIDNext {
		t.Errorf("a refused PUT changed the folder")
	}

	code, hdr, answer := put(t, url, "alice", edited, "If-Match", etag)
	if code != 200 {
		t.Fatalf("PUT = %d\n%s", code, answer)
	}
	if got := hdr.Get("X-Fbpub-Upload"); got != "added=1 replaced=1 deleted=1 unchanged=1 refused=0" {
		t.Errorf("X-Fbpub-Upload = %q", got)
	}
	_, hdr2, next := getAs(t, url, "alice")
	for _, body := range []string{answer, next} {
		for _, want := range []string{"SUMMARY:Standup (moved)", "SUMMARY:Lunch", "SUMMARY:Retro"} {
			if !strings.Contains(body, want) {
				t.Errorf("feed after the upload lacks %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "SUMMARY:Review") || strings.Count(body, "BEGIN:VEVENT") != 3 {
			t.Errorf("feed after the upload still has the review, or not 3 events:\n%s", body)
		}
	}
	if hdr.Get("ETag") != hdr2.Get("ETag") || hdr.Get("ETag") == etag {
		t.Errorf("ETags: before %s, PUT answer %s, next GET %s", etag, hdr.Get("ETag"), hdr2.Get("ETag"))
	}
	// Two clients edit the same state at once, each with If-Match: one
	// wins, the other gets 412 and must merge; nothing is lost.
	_, cur, body := getAs(t, url, "alice")
	one := strings.Replace(body, "SUMMARY:Lunch", "SUMMARY:Lunch (client one)\r\nSEQUENCE:1", 1)
	two := strings.Replace(body, "SUMMARY:Retro", "SUMMARY:Retro (client two)\r\nSEQUENCE:1", 1)
	codes := make(chan int, 2)
	for _, b := range []string{one, two} {
		go func() {
			// Not put: t.Fatal must not run on another goroutine.
			req, _ := http.NewRequest("PUT", url, strings.NewReader(b))
			req.SetBasicAuth("alice", testbed.Password("alice"))
			req.Header.Set("If-Match", cur.Get("ETag"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	got := []int{<-codes, <-codes}
	if !(got[0] == 200 && got[1] == http.StatusPreconditionFailed || got[0] == http.StatusPreconditionFailed && got[1] == 200) {
		t.Errorf("two concurrent PUTs with the same If-Match: %v; want one 200 and one 412", got)
	}
	_, _, after := getAs(t, url, "alice")
	if strings.Contains(after, "(client one)") == strings.Contains(after, "(client two)") {
		t.Errorf("not exactly one client's edit landed:\n%s", after)
	}

	// The review is in alice's log folder, not destroyed, and so are the
	// versions the edits replaced.
	c := srv.Dial(t, "alice")
	if _, err := c.Select("Deleted Events", nil).Wait(); err != nil {
		t.Fatalf("no log folder: %v", err)
	}
	msgs, err := c.Fetch(imapAll(), fetchBodies()).Collect()
	if err != nil || len(msgs) != 3 {
		t.Fatalf("log folder: %d messages, %v; want the review, the standup and the lunch or retro before the edits", len(msgs), err)
	}
	var log []string
	for _, m := range msgs {
		log = append(log, string(m.BodySection[0].Bytes))
	}
	for _, want := range [][]string{
		{"SUMMARY:Review\r\n", "reason=deleted"},
		{"SUMMARY:Standup\r\n", "reason=replaced"},
	} {
		if !slices.ContainsFunc(log, func(b string) bool {
			return strings.Contains(b, want[0]) && strings.Contains(b, "X-Fbpub-Deleted: ") && strings.Contains(b, "by=alice; "+want[1])
		}) {
			t.Errorf("the log lacks %s with %s:\n%s", want[0], want[1], strings.Join(log, "\n"))
		}
	}
}

// TestUploadRefusals: what a client is told when fbpub cannot store its
// upload, through the binary against Dovecot behind a relay: one event
// twice is 400 naming the UID, 100,000 events 413 naming
// upload.max_events, a connection cut under the upload 503 with
// Retry-After; each leaves the folder as it was.
func TestUploadRefusals(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	event := func(uid, summary, extra string) string {
		return "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:" + day + "T090000Z\r\nDTEND:" + day +
			"T100000Z\r\nSUMMARY:" + summary + "\r\n" + extra + "END:VEVENT\r\n"
	}
	calendar := func(events ...string) string {
		return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//Test//EN\r\n" + strings.Join(events, "") + "END:VCALENDAR\r\n"
	}
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", calendar(event("e-1", "Standup", ""))))
	// The relay cuts a connection once it has sent 20 kB: far more than
	// fbpub's own connections send here, far less than the upload of a
	// 30 kB event.
	relay := testbed.Relay(t, srv.Addr, func(sent int64) testbed.Fault {
		if sent > 20<<10 {
			return testbed.Cut
		}
		return testbed.Forward
	})
	bin := buildBinary(t)
	base, _ := startBinary(t, bin, "FBPUB_IMAP_ADDR="+relay, "FBPUB_IMAP_TLS=none",
		"FBPUB_IMAP_USER="+testbed.Proxy, "FBPUB_IMAP_PASSWORD="+testbed.Password(testbed.Proxy), "FBPUB_CHECK_INTERVAL=0s")
	url := base + "/calendar/alice/Calendar.ics"
	unchanged := func(what string) {
		t.Helper()
		code, _, body := getAs(t, url, "alice")
		if code != 200 || strings.Count(body, "BEGIN:VEVENT") != 1 || !strings.Contains(body, "SUMMARY:Standup") {
			t.Errorf("after %s: GET = %d\n%s", what, code, body)
		}
	}

	code, _, body := put(t, url, "alice", calendar(event("e-1", "Standup", ""), event("dup-7", "One", ""), event("dup-7", "Two", "")))
	if code != http.StatusBadRequest || !strings.Contains(body, `"dup-7"`) {
		t.Errorf("PUT of two events with one UID = %d %q; want 400 naming the UID", code, body)
	}
	unchanged("two events with one UID")

	var huge strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&huge, "BEGIN:VEVENT\r\nUID:%d\r\nDTSTART:%sT090000Z\r\nEND:VEVENT\r\n", i, day)
	}
	code, _, body = put(t, url, "alice", calendar(huge.String()))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(body, "upload.max_events") {
		t.Errorf("PUT of 100,000 events = %d %q; want 413 naming upload.max_events", code, body)
	}
	unchanged("100,000 events")

	big := event("e-2", "Offsite", "DESCRIPTION:"+strings.Repeat("x", 30<<10)+"\r\n")
	code, hdr, body := put(t, url, "alice", calendar(event("e-1", "Standup", ""), big))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("PUT cut on its way to IMAP = %d (Retry-After %q) %q; want 503 with Retry-After", code, hdr.Get("Retry-After"), body)
	}
	unchanged("a cut upload")
}

func imapAll() imap.SeqSet { return imap.SeqSet{imap.SeqRange{Start: 1}} } // 1:*

func fetchBodies() *imap.FetchOptions {
	return &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
}
