package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// privacyIdentities is the privacy matrix's part on who the requester is:
// logins spelt otherwise than the server spells them ("BOB" for bob, on
// servers that fold case), and groups whose membership fbpub knows or not.
// A spelling must never see more than the login it stands for; an entry
// of a group fbpub cannot resolve counts against every requester.
//
// alice's calendar Open is read by anyone but bob and the group team
// (dave); Desk gives the group team only "l", which under Dovecot's
// precedence replaces what "anyone" gives, and under Cyrus' union adds to
// it. They are top-level folders, published alone, so that they inherit no
// entries of the matrix's Calendar (both servers copy a parent's ACL to a
// new child).
func privacyIdentities(t *testing.T, bin string, srv *testbed.Server) {
	day := time.Now().UTC().AddDate(0, 0, 4).Format("20060102")
	event := func(uid, summary, hour string) []byte {
		return testbed.CalendarMessage(summary, crlf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub tests//EN
BEGIN:VEVENT
UID:`+uid+`
DTSTAMP:20250101T000000Z
DTSTART:`+day+`T`+hour+`0000Z
DTEND:`+day+`T`+hour+`3000Z
SUMMARY:`+summary+`
END:VEVENT
END:VCALENDAR
`))
	}
	group := srv.GroupIdentifier()
	srv.CreateFolder(t, "alice", "Open")
	srv.Append(t, "alice", "Open", event("open-house-7", "Open house", "07"))
	srv.SetACL(t, "alice", "Open", testbed.Proxy, "lra")
	srv.SetACL(t, "alice", "Open", "anyone", "lr")
	srv.SetACL(t, "alice", "Open", "-bob", "r")
	srv.SetACL(t, "alice", "Open", "-"+group, "r")
	srv.CreateFolder(t, "alice", "Desk")
	srv.Append(t, "alice", "Desk", event("desk-duty-8", "Desk duty", "06"))
	srv.SetACL(t, "alice", "Desk", testbed.Proxy, "lra")
	srv.SetACL(t, "alice", "Desk", "anyone", "lr")
	srv.SetACL(t, "alice", "Desk", group, "l")

	start := func(t *testing.T, groups string) (string, *syncBuffer) {
		cfg := filepath.Join(t.TempDir(), "fbpub.toml")
		err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[imap]
addr = %q
tls = "none"
user = %q
password = %q
[publish]
mail_domain = "example.org"
check_interval = "0s"
folders = ["Open", "Desk"]
[access]
freebusy = "public"
groups = { %s }
`, srv.Addr, testbed.Proxy, testbed.Password(testbed.Proxy), groups)), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		return startBinaryArgs(t, bin, []string{"--config", cfg})
	}
	// Dovecot's precedence: a group entry replaces what "anyone" gives.
	deskForGroup := srv.Kind == testbed.Cyrus
	type want struct{ open, desk bool } // reads Open house, Desk duty
	check := func(t *testing.T, base string, rows map[string]want) {
		t.Helper()
		for _, user := range []string{"alice", "ALICE", "bob", "BOB", "Bob", "carol", "CAROL", "dave", "Dave", "DAVE", ""} {
			w, ok := rows[user]
			if !ok {
				t.Fatalf("no expectation for %q", user)
			}
			who := user
			if who == "" {
				who = "anonymous"
			}
			for _, c := range []struct {
				view, text, busy string
				may              bool
			}{
				{"/calendar/alice/Open.ics", "Open house", day + "T070000Z", w.open},
				{"/calendar/alice/Desk.ics", "Desk duty", day + "T060000Z", w.desk},
				{"/calendar/alice.ics", "Open house", day + "T070000Z", w.open},
				{"/calendar/alice.ics", "Desk duty", day + "T060000Z", w.desk},
				{"/freebusy/alice.xfb", "Open house", day + "T070000Z", w.open},
				{"/freebusy/alice.xfb", "Desk duty", day + "T060000Z", w.desk},
			} {
				code, body := get(t, base+c.view, user)
				if code != 200 {
					t.Errorf("%s GET %s = %d %s", who, c.view, code, body)
					continue
				}
				text := readable(body)
				if got := strings.Contains(text, c.text); got != c.may {
					t.Errorf("%s GET %s: shows %q = %v, want %v:\n%s", who, c.view, c.text, got, c.may, text)
				}
				if !strings.Contains(strings.ReplaceAll(body, "\r\n ", ""), c.busy) {
					t.Errorf("%s GET %s lacks the busy time %s:\n%s", who, c.view, c.busy, body)
				}
			}
		}
	}

	t.Run("known groups", func(t *testing.T) {
		base, _ := start(t, testbed.Group+` = ["dave"]`)
		check(t, base, map[string]want{
			"alice": {true, true}, "ALICE": {true, true}, // the owner, however typed
			"bob": {false, true}, "BOB": {false, true}, "Bob": {false, true}, // -bob r
			"carol": {true, true}, "CAROL": {true, true},
			"dave": {false, deskForGroup}, "Dave": {false, deskForGroup}, "DAVE": {false, deskForGroup}, // -team r; team l
			"": {true, true},
		})
	})
	t.Run("unknown groups", func(t *testing.T) {
		// No membership for team: its entries count against every
		// logged-in requester, and fbpub says so.
		base, logs := start(t, "")
		check(t, base, map[string]want{
			"alice": {true, true}, "ALICE": {true, true},
			"bob": {false, deskForGroup}, "BOB": {false, deskForGroup}, "Bob": {false, deskForGroup},
			"carol": {false, deskForGroup}, "CAROL": {false, deskForGroup},
			"dave": {false, deskForGroup}, "Dave": {false, deskForGroup}, "DAVE": {false, deskForGroup},
			"": {true, true}, // the anonymous requester is in no group
		})
		_, metrics := get(t, base+"/metrics", "")
		if strings.Contains(metrics, "fbpub_acl_unresolved_groups_total 0\n") || !strings.Contains(metrics, "fbpub_acl_unresolved_groups_total ") {
			t.Errorf("fbpub_acl_unresolved_groups_total did not count:\n%s", grepLines(metrics, "unresolved"))
		}
		if n := strings.Count(logs.String(), "group="+testbed.Group); n != 1 {
			t.Errorf("the log names the unknown group %d times, want once:\n%s", n, logs.String())
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
