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

// myRights returns c's rights on mailbox, or the error.
func myRights(c *imapclient.Client, mailbox string) (string, error) {
	data, err := c.MyRights(mailbox).Wait()
	if err != nil {
		return "", err
	}
	return string(data.Rights), nil
}

func TestSharedCalendar(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)

	srv.CreateFolder(t, "alice", "Calendar")
	uid := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", sampleICS), imap.FlagSeen)
	if uid == 0 {
		t.Fatal("Append returned UID 0")
	}
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.CreateFolder(t, "bob", "Calendar") // no grant: invisible to the proxy

	p := srv.Dial(t, testbed.Proxy)
	names := list(t, p)
	if !slices.Contains(names, "shared/alice/Calendar") {
		t.Errorf("fbproxy's LIST lacks shared/alice/Calendar: %q", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "shared/bob") {
			t.Errorf("fbproxy sees %q without a grant", n)
		}
	}
	if got, err := myRights(p, "shared/alice/Calendar"); err != nil || got != "lr" {
		t.Errorf("MYRIGHTS shared/alice/Calendar = %q, %v; want lr", got, err)
	}
	if _, err := myRights(p, "shared/bob/Calendar"); err == nil {
		t.Errorf("MYRIGHTS shared/bob/Calendar succeeded without a grant")
	}
	st, err := p.Status("shared/alice/Calendar", &imap.StatusOptions{NumMessages: true, HighestModSeq: true, UIDValidity: true}).Wait()
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
	if _, err := p.Select("shared/alice/Calendar", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
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
	if got, err := myRights(p, "shared/alice/Calendar"); err == nil {
		t.Errorf("after revoking, MYRIGHTS = %q", got)
	}
	if acl := srv.GetACL(t, "alice", "Calendar"); len(acl) != 1 || acl["alice"] == "" {
		t.Errorf("after DELETEACL, ACL = %v, want only alice", acl)
	}
}

func TestGroupAndAnyoneGrants(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)

	srv.CreateFolder(t, "carol", "Team")
	srv.SetACL(t, "carol", "Team", testbed.GroupIdentifier, "lrs")
	srv.CreateFolder(t, "carol", "Public")
	srv.SetACL(t, "carol", "Public", "anyone", "lr")

	d := srv.Dial(t, "dave")
	if got, err := myRights(d, "shared/carol/Team"); err != nil || got != "lrs" {
		t.Errorf("dave's MYRIGHTS shared/carol/Team = %q, %v; want lrs", got, err)
	}
	b := srv.Dial(t, "bob")
	if got, err := myRights(b, "shared/carol/Team"); err == nil {
		t.Errorf("bob (not in team) has %q on shared/carol/Team", got)
	}
	for _, user := range []string{"bob", "dave", testbed.Proxy} {
		c := srv.Dial(t, user)
		if got, err := myRights(c, "shared/carol/Public"); err != nil || got != "lr" {
			t.Errorf("%s's MYRIGHTS shared/carol/Public = %q, %v; want lr", user, got, err)
		}
	}
	if acl := srv.GetACL(t, "carol", "Team"); acl["$team"] != "lrs" {
		t.Errorf("GETACL Team = %v, want $team lrs", acl)
	}
}

func TestMetadata(t *testing.T) {
	srv := testbed.Get(t)
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

	srv.Reset(t)
	md, err = c.GetMetadata("INBOX", []string{"/shared/comment"}, nil).Wait()
	if err != nil {
		t.Fatalf("GETMETADATA after Reset: %v", err)
	}
	if v := md.Entries["/shared/comment"]; v != nil {
		t.Errorf("after Reset, INBOX /shared/comment = %q", *v)
	}
}

func TestStopStartKeepsData(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	addr := srv.Addr

	srv.CreateFolder(t, "alice", "Calendar")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Standup", sampleICS))
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	before := srv.Dial(t, testbed.Proxy)
	if _, err := myRights(before, "shared/alice/Calendar"); err != nil {
		t.Fatalf("MYRIGHTS before Stop: %v", err)
	}

	srv.Stop(t)
	if err := before.Noop().Wait(); err == nil {
		t.Errorf("a session survived Stop")
	}
	if _, err := imapclient.DialInsecure(addr, nil); err == nil {
		t.Errorf("Dovecot still accepts connections after Stop")
	}
	srv.Start(t)
	if srv.Addr != addr {
		t.Fatalf("Start moved the server from %s to %s", addr, srv.Addr)
	}

	p := srv.Dial(t, testbed.Proxy)
	st, err := p.Status("shared/alice/Calendar", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS after Start: %v", err)
	}
	if *st.NumMessages != 1 {
		t.Errorf("after Start, MESSAGES = %d, want 1", *st.NumMessages)
	}
}

func TestStoppedServerRestartsAfterTest(t *testing.T) {
	srv := testbed.Get(t)
	t.Run("stop", func(t *testing.T) { srv.Stop(t) })
	// The cleanup of the subtest started it again.
	srv.Dial(t, "alice")
}

func TestReset(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)

	srv.CreateFolder(t, "alice", "Calendar/Work")
	srv.CreateFolder(t, "alice", "Tasks")
	srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
	srv.SetACL(t, "alice", "INBOX", "bob", "lr")
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
