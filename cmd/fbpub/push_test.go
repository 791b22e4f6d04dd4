package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestPush: with a check interval of an hour, a change shows at once in a
// watched folder. With NOTIFY (Dovecot has it) every published folder is
// watched on one connection; with IDLE only the most requested ones
// (publish.watch), and a change elsewhere waits for the next check.
func TestPush(t *testing.T) {
	t.Run("notify", func(t *testing.T) { testPush(t, true) })
	t.Run("idle", func(t *testing.T) { testPush(t, false) })
}

func testPush(t *testing.T, notify bool) {
	srv := testbed.Get(t)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 1).Format("20060102")
	for _, owner := range []string{"alice", "bob"} {
		srv.CreateFolder(t, owner, "Calendar")
		srv.SetACL(t, owner, "Calendar", testbed.Proxy, "lr")
	}
	event := func(uid, summary string) []byte {
		return testbed.CalendarMessage(summary, crlf("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//EN\nBEGIN:VEVENT\nUID:"+uid+"\nDTSTAMP:20250101T000000Z\nDTSTART:"+day+"T090000Z\nDTEND:"+day+"T100000Z\nSUMMARY:"+summary+"\nEND:VEVENT\nEND:VCALENDAR\n"))
	}
	srv.Append(t, "alice", "Calendar", event("a1", "First"))
	srv.Append(t, "bob", "Calendar", event("b1", "First"))
	bin := buildBinary(t)
	base, logs := startBinary(t, bin, "FBPUB_IMAP_ADDR="+srv.Addr, "FBPUB_IMAP_TLS=none",
		"FBPUB_IMAP_USER="+testbed.Proxy, "FBPUB_IMAP_PASSWORD="+testbed.Password(testbed.Proxy),
		"FBPUB_CHECK_INTERVAL=1h", "FBPUB_WATCH=1", "FBPUB_NOTIFY="+strconv.FormatBool(notify))
	watched := "fbpub_imap_watched_folders 1\n"
	if notify {
		watched = "fbpub_imap_watched_folders 2\n"
	}
	alice := base + "/freebusy/alice.vfb"
	// alice is asked for most: with IDLE her folder gets the one watch.
	for range 5 {
		fetch(t, alice)
	}
	fetch(t, base+"/freebusy/bob.vfb")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, m := fetch(t, base+"/metrics")
		if strings.Contains(m, watched) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q after 20 s; log:\n%s", watched, logs.String())
		}
	}
	time.Sleep(300 * time.Millisecond) // the watch's SELECT and IDLE
	// A watch starts by announcing a change (it cannot know what it
	// missed): this request reads the states that announcement asked for.
	fetch(t, alice)

	events := func(url string) int {
		code, body := fetch(t, url)
		if code != 200 {
			t.Fatalf("GET %s = %d", url, code)
		}
		return strings.Count(body, "BEGIN:VEVENT")
	}
	if notify {
		if !strings.Contains(logs.String(), "watching with NOTIFY") {
			t.Errorf("the log does not say NOTIFY is used:\n%s", logs.String())
		}
		// bob's folder, requested once, is watched too.
		srv.Append(t, "bob", "Calendar", event("b2", "Second"))
		for deadline := time.Now().Add(20 * time.Second); events(base+"/calendar/bob.ics") != 2; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a change in bob's folder did not show within 20 s with NOTIFY; log:\n%s", logs.String())
			}
		}
	} else {
		// A change in bob's folder, which is not watched, waits for the
		// next check, an hour away.
		srv.Append(t, "bob", "Calendar", event("b2", "Second"))
		time.Sleep(1500 * time.Millisecond)
		if n := events(base + "/calendar/bob.ics"); n != 1 {
			t.Fatalf("bob's feed has %d events before any check or push; the check interval is not honoured", n)
		}
	}
	// A change in alice's folder is pushed.
	srv.Append(t, "alice", "Calendar", event("a2", "Second"))
	for deadline := time.Now().Add(20 * time.Second); events(base+"/calendar/alice.ics") != 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a change in the watched folder did not show within 20 s despite the 1 h check interval; log:\n%s", logs.String())
		}
	}
	if _, m := fetch(t, base+"/metrics"); !strings.Contains(m, "fbpub_imap_pushes_total") || strings.Contains(m, "fbpub_imap_pushes_total 0\n") {
		t.Errorf("no push counted")
	}
}

// TestNotifyConnsFor: the advice logged when the NOTIFY connections are
// full names the connections that would carry every published folder, at
// the rate the present ones carry them (README's sizing: 9 for 18,000).
func TestNotifyConnsFor(t *testing.T) {
	for _, c := range []struct{ carried, wanted, conns, want int }{
		{8000, 18000, 4, 9},
		{8000, 8001, 4, 5},
		{2000, 2000, 1, 1},
		{0, 10, 4, 4}, // nothing carried yet: no advice to give
	} {
		if got := notifyConnsFor(c.carried, c.wanted, c.conns); got != c.want {
			t.Errorf("notifyConnsFor(%d, %d, %d) = %d, want %d", c.carried, c.wanted, c.conns, got, c.want)
		}
	}
}
