package testbed_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

const sampleICS = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//fbpub//testbed//EN\nBEGIN:VEVENT\nUID:testbed-1@example.org\nDTSTAMP:20250101T000000Z\nDTSTART:20250102T090000Z\nDTEND:20250102T100000Z\nSUMMARY:Standup\nEND:VEVENT\nEND:VCALENDAR\n"

// list returns the names c sees with LIST "" "*".
func list(t *testing.T, c *imapclient.Client) []string {
	t.Helper()
	data, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	var names []string
	for _, d := range data {
		names = append(names, d.Mailbox)
	}
	return names
}

// forEach runs f in a subtest for every test bed server.
func forEach(t *testing.T, f func(t *testing.T, srv *testbed.Server)) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) { f(t, srv) })
	}
}

// myRights returns c's rights on mailbox, or the error.
func myRights(c *imapclient.Client, mailbox string) (string, error) {
	data, err := c.MyRights(mailbox).Wait()
	if err != nil {
		return "", err
	}
	return string(data.Rights), nil
}

func TestSharedCalendar(t *testing.T) { forEach(t, testSharedCalendar) }

func testSharedCalendar(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	shared := srv.SharedName("alice", "Calendar")
	bobs := srv.SharedName("bob", "Calendar")

	srv.CreateFolder(t, "alice", "Calendar")
	uid := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", sampleICS), imap.FlagSeen)
	if uid == 0 {
		t.Fatal("Append returned UID 0")
	}
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.CreateFolder(t, "bob", "Calendar") // no grant: invisible to the proxy

	p := srv.Dial(t, testbed.Proxy)
	names := list(t, p)
	if !slices.Contains(names, shared) {
		t.Errorf("fbproxy's LIST lacks %s: %q", shared, names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, srv.SharedPrefix()+"bob") {
			t.Errorf("fbproxy sees %q without a grant", n)
		}
	}
	if got, err := myRights(p, shared); err != nil || got != "lr" {
		t.Errorf("MYRIGHTS %s = %q, %v; want lr", shared, got, err)
	}
	if _, err := myRights(p, bobs); err == nil {
		t.Errorf("MYRIGHTS %s succeeded without a grant", bobs)
	}
	st, err := p.Status(shared, &imap.StatusOptions{NumMessages: true, HighestModSeq: true, UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("STATUS MESSAGES = %v, want 1", st.NumMessages)
	}
	if st.HighestModSeq == 0 {
		t.Errorf("STATUS HIGHESTMODSEQ = 0, want > 0")
	}

	// The proxy reads the calendar part of the message.
	if _, err := p.Select(shared, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	var uids imap.UIDSet
	uids.AddNum(uid)
	section := &imap.FetchItemBodySection{Part: []int{2}, Peek: true}
	msgs, err := p.Fetch(uids, &imap.FetchOptions{UID: true, ModSeq: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("UID FETCH returned %d messages, want 1", len(msgs))
	}
	body := msgs[0].FindBodySection(section)
	if !bytes.Contains(body, []byte("BEGIN:VEVENT\r\nUID:testbed-1@example.org\r\n")) {
		t.Errorf("part 2 is not the calendar with CRLF lines: %q", body)
	}
	if msgs[0].ModSeq == 0 {
		t.Errorf("FETCH MODSEQ = 0")
	}

	// Revoking is seen at once (the ACL cache is off).
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "")
	if got, err := myRights(p, shared); err == nil {
		t.Errorf("after revoking, MYRIGHTS = %q", got)
	}
	if acl := srv.GetACL(t, "alice", "Calendar"); len(acl) != 1 || acl["alice"] == "" {
		t.Errorf("after DELETEACL, ACL = %v, want only alice", acl)
	}
}

func TestGroupAndAnyoneGrants(t *testing.T) { forEach(t, testGroupAndAnyoneGrants) }

func testGroupAndAnyoneGrants(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	team, public := srv.SharedName("carol", "Team"), srv.SharedName("carol", "Public")

	srv.CreateFolder(t, "carol", "Team")
	srv.SetACL(t, "carol", "Team", srv.GroupIdentifier(), "lrs")
	srv.CreateFolder(t, "carol", "Public")
	srv.SetACL(t, "carol", "Public", "anyone", "lr")

	d := srv.Dial(t, "dave")
	if got, err := myRights(d, team); err != nil || got != "lrs" {
		t.Errorf("dave's MYRIGHTS %s = %q, %v; want lrs", team, got, err)
	}
	b := srv.Dial(t, "bob")
	if got, err := myRights(b, team); err == nil {
		t.Errorf("bob (not in team) has %q on %s", got, team)
	}
	for _, user := range []string{"bob", "dave", testbed.Proxy} {
		c := srv.Dial(t, user)
		if got, err := myRights(c, public); err != nil || got != "lr" {
			t.Errorf("%s's MYRIGHTS %s = %q, %v; want lr", user, public, got, err)
		}
	}
	if acl := srv.GetACL(t, "carol", "Team"); acl[srv.GroupIdentifier()] != "lrs" {
		t.Errorf("GETACL Team = %v, want %s lrs", acl, srv.GroupIdentifier())
	}

	// A negative entry takes a right away from a group member.
	srv.SetACL(t, "carol", "Team", "-dave", "s")
	if got, err := myRights(d, team); err != nil || got != "lr" {
		t.Errorf("with -dave s, dave's MYRIGHTS %s = %q, %v; want lr", team, got, err)
	}
}

func TestMetadata(t *testing.T) { forEach(t, testMetadata) }

func testMetadata(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)

	const entry = "/private/vendor/kolab/folder-type"
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetMetadata(t, "alice", "Calendar", entry, "event")
	srv.SetMetadata(t, "alice", "INBOX", "/shared/comment", "inbox note")

	c := srv.Dial(t, "alice")
	md, err := c.GetMetadata("Calendar", []string{entry}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA: %v", err)
	}
	if v := md.Entries[entry]; v == nil || string(*v) != "event" {
		t.Errorf("GETMETADATA %s = %v, want event", entry, v)
	}

	// The proxy reads the shared entry of a folder it may read.
	const sharedEntry = "/shared/vendor/kolab/folder-type"
	srv.SetMetadata(t, "alice", "Calendar", sharedEntry, "event")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	p := srv.Dial(t, testbed.Proxy)
	md, err = p.GetMetadata(srv.SharedName("alice", "Calendar"), []string{sharedEntry}, nil).Wait()
	if err != nil {
		t.Fatalf("fbproxy's GETMETADATA: %v", err)
	}
	if v := md.Entries[sharedEntry]; v == nil || string(*v) != "event" {
		t.Errorf("fbproxy's GETMETADATA %s = %v, want event", sharedEntry, v)
	}

	srv.Reset(t)
	md, err = c.GetMetadata("INBOX", []string{"/shared/comment"}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA after Reset: %v", err)
	}
	if v := md.Entries["/shared/comment"]; v != nil {
		t.Errorf("after Reset, INBOX /shared/comment = %q", *v)
	}
}

func TestStopStartKeepsData(t *testing.T) { forEach(t, testStopStartKeepsData) }

func testStopStartKeepsData(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)
	addr := srv.Addr
	shared := srv.SharedName("alice", "Calendar")

	srv.CreateFolder(t, "alice", "Calendar")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", sampleICS))
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	before := srv.Dial(t, testbed.Proxy)
	if _, err := myRights(before, shared); err != nil {
		t.Fatalf("MYRIGHTS before Stop: %v", err)
	}

	srv.Stop(t)
	if err := before.Noop().Wait(); err == nil {
		t.Errorf("a session survived Stop")
	}
	if _, err := imapclient.DialInsecure(addr, nil); err == nil {
		t.Errorf("%s still accepts connections after Stop", srv.Kind)
	}
	srv.Start(t)
	if srv.Addr != addr {
		t.Fatalf("Start moved the server from %s to %s", addr, srv.Addr)
	}

	p := srv.Dial(t, testbed.Proxy)
	st, err := p.Status(shared, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS after Start: %v", err)
	}
	if *st.NumMessages != 1 {
		t.Errorf("after Start, MESSAGES = %d, want 1", *st.NumMessages)
	}
}

func TestStoppedServerRestartsAfterTest(t *testing.T) {
	forEach(t, func(t *testing.T, srv *testbed.Server) {
		t.Run("stop", func(t *testing.T) { srv.Stop(t) })
		// The cleanup of the subtest started it again.
		srv.Dial(t, "alice")
	})
}

func TestReset(t *testing.T) { forEach(t, testReset) }

func testReset(t *testing.T, srv *testbed.Server) {
	srv.Reset(t)

	srv.CreateFolder(t, "alice", "Calendar/Work")
	srv.CreateFolder(t, "alice", "Tasks")
	srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
	srv.SetACL(t, "alice", "INBOX", "bob", "lr")
	srv.SetACL(t, "alice", "INBOX", srv.GroupIdentifier(), "lr")
	srv.SetACL(t, "alice", "INBOX", "-carol", "r")
	srv.SetMetadata(t, "alice", "INBOX", "/private/comment", "note")
	srv.CreateFolder(t, "carol", "Shared")
	srv.SetACL(t, "carol", "Shared", "alice", "lrx")
	srv.Append(t, "alice", "INBOX", []byte("Subject: hi\r\n\r\nhello\r\n"))
	srv.Append(t, "bob", "INBOX", []byte("Subject: hi\r\n\r\nhello\r\n"), imap.FlagSeen)
	srv.CreateFolder(t, "bob", "Ünïcode & more")

	srv.Reset(t)

	for _, user := range testbed.Users {
		c := srv.Dial(t, user)
		if names := list(t, c); !slices.Equal(names, []string{"INBOX"}) {
			t.Errorf("%s sees %q after Reset, want only INBOX", user, names)
		}
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS INBOX: %v", err)
		}
		if *st.NumMessages != 0 {
			t.Errorf("%s's INBOX has %d messages after Reset", user, *st.NumMessages)
		}
	}
	if acl := srv.GetACL(t, "alice", "INBOX"); len(acl) != 1 {
		t.Errorf("alice's INBOX ACL after Reset = %v, want only alice", acl)
	}
	c := srv.Dial(t, "alice")
	md, err := c.GetMetadata("INBOX", []string{"/private/comment"}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA after Reset: %v", err)
	}
	if v := md.Entries["/private/comment"]; v != nil {
		t.Errorf("after Reset, INBOX /private/comment = %q", *v)
	}
}

// TestNamespace checks that SharedPrefix is the other users' namespace the
// server announces, and that every user can log in with its password.
func TestNamespace(t *testing.T) {
	forEach(t, func(t *testing.T, srv *testbed.Server) {
		for _, user := range testbed.Users {
			c := srv.Dial(t, user)
			ns, err := c.Namespace().Wait()
			if err != nil {
				t.Fatalf("NAMESPACE as %s: %v", user, err)
			}
			if len(ns.Other) == 0 || ns.Other[0].Prefix != srv.SharedPrefix() || ns.Other[0].Delim != '/' {
				t.Errorf("NAMESPACE as %s: other users = %+v, want prefix %q with /", user, ns.Other, srv.SharedPrefix())
			}
			if len(ns.Personal) == 0 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' {
				t.Errorf("NAMESPACE as %s: personal = %+v, want prefix \"\" with /", user, ns.Personal)
			}
		}
	})
}

// TestBodyStructure checks that the calendar part of CalendarMessage is found
// through BODYSTRUCTURE whatever case the server writes the types in.
func TestBodyStructure(t *testing.T) {
	forEach(t, func(t *testing.T, srv *testbed.Server) {
		srv.Reset(t)
		srv.CreateFolder(t, "alice", "Calendar")
		uid := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", sampleICS))
		c := srv.Dial(t, "alice")
		if _, err := c.Select("Calendar", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("SELECT: %v", err)
		}
		var uids imap.UIDSet
		uids.AddNum(uid)
		msgs, err := c.Fetch(uids, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
		if err != nil || len(msgs) != 1 || msgs[0].BodyStructure == nil {
			t.Fatalf("UID FETCH BODYSTRUCTURE = %v, %v", msgs, err)
		}
		var found []int
		msgs[0].BodyStructure.Walk(func(path []int, part imap.BodyStructure) bool {
			if sp, ok := part.(*imap.BodyStructureSinglePart); ok && sp.MediaType() == "text/calendar" {
				found = path
				if sp.Params["method"] != "PUBLISH" {
					t.Errorf("calendar part parameters = %v", sp.Params)
				}
			}
			return true
		})
		if !slices.Equal(found, []int{2}) {
			t.Errorf("calendar part at %v, want [2]", found)
		}
	})
}

func TestCalendarMessage(t *testing.T) {
	msg := testbed.CalendarMessage("Standup", sampleICS)
	s := string(msg)
	for _, want := range []string{"From: ", "Date: ", "Subject: Standup\r\n", "Message-ID: <", "MIME-Version: 1.0\r\n",
		"Content-Type: multipart/mixed; boundary=", "Content-Type: text/plain; charset=utf-8\r\n",
		"Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n", "END:VCALENDAR\r\n--"} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\r") {
		t.Errorf("message has bare CR or LF")
	}
}
