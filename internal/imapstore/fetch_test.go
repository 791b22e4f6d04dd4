package imapstore

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

const fetchICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250301T090000Z\r\nSUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"

// bigMessage is a Kolab-style multipart message whose calendar part comes
// after an attachment of n octets.
func bigMessage(uid string, n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@example.org\r\nSubject: " + uid + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n")
	b.WriteString("--XX\r\nContent-Type: application/octet-stream\r\n\r\n" + strings.Repeat("a", n) + "\r\n")
	b.WriteString("--XX\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\n" + fmt.Sprintf(fetchICS, uid, "big") + "\r\n--XX--\r\n")
	return b.Bytes()
}

// TestFetchWholeAndParts: with WholeBelow, a small message comes whole in
// the first round trip, through Received (and so not again in the
// listing's messages), a large one by body structure and only its
// calendar part; a \Deleted one comes without content.
func TestFetchWholeAndParts(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	small := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("small", fmt.Sprintf(fetchICS, "s1", "small")))
	big := srv.Append(t, "alice", "Calendar", bigMessage("b1", 8000))
	gone := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("gone", fmt.Sprintf(fetchICS, "g1", "gone")), "\\Deleted")

	commands := map[string]int{}
	s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { commands[cmd]++ })
	var received []Message
	l, err := s.Fetch(t.Context(), testbed.SharedName("alice", "Calendar"), Query{
		Want:       func(mt string) bool { return mt == "text/calendar" },
		WholeBelow: 4096,
		Received:   func(m Message) { received = append(received, m) },
	})
	if err != nil {
		t.Fatal(err)
	}
	byUID := map[uint32]Message{}
	for _, m := range l.Messages {
		byUID[m.UID] = m
	}
	if len(received) != 1 || received[0].UID != uint32(small) {
		t.Fatalf("Received got %d messages, want only the small message %d", len(received), small)
	}
	if m := received[0]; !bytes.Contains(m.Raw, []byte("SUMMARY:small")) || len(m.Parts) != 0 {
		t.Errorf("small message: Raw %q, %d parts; want it whole", m.Raw, len(m.Parts))
	}
	if _, ok := byUID[uint32(small)]; ok || !slices.Contains(l.UIDs, uint32(small)) || l.Deleted[uint32(small)] {
		t.Errorf("small message: in Messages %v, in UIDs %v, deleted %v; want it listed by UID only", ok, slices.Contains(l.UIDs, uint32(small)), l.Deleted[uint32(small)])
	}
	m := byUID[uint32(big)]
	if m.Raw != nil || len(m.Parts) != 1 || !bytes.Contains(m.Parts[0].Body, []byte("SUMMARY:big")) || bytes.Contains(m.Parts[0].Body, []byte("aaaa")) {
		t.Errorf("big message: Raw %d octets, parts %+v; want only its calendar part", len(m.Raw), m.Parts)
	}
	if m := byUID[uint32(gone)]; m.Raw != nil || len(m.Parts) != 0 || !l.Deleted[uint32(gone)] {
		t.Errorf("deleted message: %+v, deleted %v; want no content", m, l.Deleted[uint32(gone)])
	}
	if commands["UID FETCH"] != 3 { // whole + flags, then body structure, then the part
		t.Errorf("%d UID FETCH commands, want 3: %v", commands["UID FETCH"], commands)
	}
}
