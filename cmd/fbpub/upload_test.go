package main

import (
	"net/http"
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
// If-Match gets 412, and a reader without the insert right 403, both
// with the folder untouched.
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

	// The review is in alice's log folder, not destroyed.
	c := srv.Dial(t, "alice")
	if _, err := c.Select("Deleted Events", nil).Wait(); err != nil {
		t.Fatalf("no log folder: %v", err)
	}
	msgs, err := c.Fetch(imapAll(), fetchBodies()).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("log folder: %d messages, %v", len(msgs), err)
	}
	if body := string(msgs[0].BodySection[0].Bytes); !strings.Contains(body, "SUMMARY:Review") || !strings.Contains(body, "X-Fbpub-Deleted: ") || !strings.Contains(body, "by=alice") {
		t.Errorf("log copy:\n%s", body)
	}
}

func imapAll() imap.SeqSet { return imap.SeqSetNum(1) }

func fetchBodies() *imap.FetchOptions {
	return &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
}
