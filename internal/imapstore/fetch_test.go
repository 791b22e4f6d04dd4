package imapstore

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

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

// TestFetchWholeAndParts: with WholeBelow, when the folder's last message
// has more than one calendar part (so no part can be guessed), a small
// message is read whole in the first round trip, through Received (and so
// not again in the listing's messages), a large one by body structure and
// only its calendar part; a \Deleted one comes without content.
func TestFetchWholeAndParts(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	small := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("small", fmt.Sprintf(fetchICS, "s1", "small")))
	big := srv.Append(t, "alice", "Calendar", bigMessage("b1", 8000))
	gone := srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("gone", fmt.Sprintf(fetchICS, "g1", "gone")), "\\Deleted")
	twins := srv.Append(t, "alice", "Calendar", twoCalendars("t"))

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
	if len(received) != 2 || received[0].UID != uint32(small) || received[1].UID != uint32(twins) {
		t.Fatalf("Received got %d messages, want only the small messages %d and %d", len(received), small, twins)
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
	// The last message's body structure, whole + flags, then body
	// structure, then the part.
	if commands["FETCH"] != 1 || commands["UID FETCH"] != 3 {
		t.Errorf("commands %v, want 1 FETCH and 3 UID FETCH", commands)
	}
}

// singlePart is a message that is itself text/calendar, in
// quoted-printable.
func singlePart(uid string) []byte {
	ics := strings.ReplaceAll(fmt.Sprintf(fetchICS, uid, "single"), "SUMMARY:single", "SUMMARY:caf=C3=A9 single")
	return []byte("Subject: " + uid + "\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + ics)
}

// twoCalendars is a multipart message with two calendar parts.
func twoCalendars(uid string) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: " + uid + "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"YY\"\r\n\r\n")
	for i := range 2 {
		b.WriteString("--YY\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\n" + fmt.Sprintf(fetchICS, fmt.Sprint(uid, i), "twin") + "\r\n")
	}
	b.WriteString("--YY--\r\n")
	return b.Bytes()
}

// TestFetchStructured: when the folder's last message has its calendar in
// part 2 (as Kolab's do), every message's body structure and part 2 are
// asked for in the first round trip. Messages of that
// layout, even one with a large attachment before the calendar, come
// through Received with only their calendar part; a message without a
// calendar part comes without parts; the others (a message that is
// itself text/calendar, one with two calendar parts, one whose calendar
// part is too large for the first round) come in the listing with their
// calendar parts, read by body structure afterwards; a \Deleted one comes
// without content. On both servers.
func TestFetchStructured(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			srv.CreateFolder(t, "alice", "Calendar")
			srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
			add := func(msg []byte, flags ...imap.Flag) uint32 {
				return uint32(srv.Append(t, "alice", "Calendar", msg, flags...))
			}
			small := add(testbed.CalendarMessage("small", fmt.Sprintf(fetchICS, "s1", "small")))
			attached := add(bigMessage("b1", 8000))
			single := add(singlePart("o1"))
			twins := add(twoCalendars("t"))
			large := add(testbed.CalendarMessage("large", fmt.Sprintf(fetchICS, "l1", "large "+strings.Repeat("x", 5000))))
			text := add([]byte("Subject: no calendar\r\n\r\nhello\r\n"))
			gone := add(testbed.CalendarMessage("gone", fmt.Sprintf(fetchICS, "g1", "gone")), imap.FlagDeleted)
			last := add(testbed.CalendarMessage("last", fmt.Sprintf(fetchICS, "z1", "last")))

			commands := map[string]int{}
			s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { commands[cmd]++ })
			received := map[uint32]Message{}
			l, err := s.Fetch(t.Context(), srv.SharedName("alice", "Calendar"), Query{
				Want:       func(mt string) bool { return mt == "text/calendar" },
				WholeBelow: 4096,
				Received: func(m Message) {
					if _, dup := received[m.UID]; dup {
						t.Errorf("UID %d received twice", m.UID)
					}
					received[m.UID] = m
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			listed := map[uint32]Message{}
			for _, m := range l.Messages {
				listed[m.UID] = m
			}
			// summaries is what the calendar parts of m say, in order.
			summaries := func(m Message) []string {
				var out []string
				for _, p := range m.Parts {
					body := string(p.Body)
					if p.Encoding == "quoted-printable" {
						body = strings.ReplaceAll(body, "=C3=A9", "é")
					}
					_, summary, _ := strings.Cut(body, "SUMMARY:")
					summary, _, _ = strings.Cut(summary, "\r\n")
					out = append(out, fmt.Sprintf("%v %s %s %s", p.Path, p.MediaType, p.Params["charset"], summary))
				}
				return out
			}
			for _, c := range []struct {
				uid   uint32
				via   map[uint32]Message
				parts []string
			}{
				{small, received, []string{"[2] text/calendar utf-8 small"}},
				{attached, received, []string{"[2] text/calendar utf-8 big"}},
				{text, received, nil},
				{last, received, []string{"[2] text/calendar utf-8 last"}},
				{single, listed, []string{"[1] text/calendar utf-8 café single"}},
				{twins, listed, []string{"[1] text/calendar utf-8 twin", "[2] text/calendar utf-8 twin"}},
				{large, listed, []string{"[2] text/calendar utf-8 large " + strings.Repeat("x", 5000)}},
			} {
				m, ok := c.via[c.uid]
				if !ok {
					t.Errorf("UID %d: not where expected (received %v, listed %v)", c.uid, received[c.uid].UID != 0, listed[c.uid].UID != 0)
					continue
				}
				if got := summaries(m); m.Raw != nil || !slices.Equal(got, c.parts) {
					t.Errorf("UID %d: raw %d octets, parts %q; want parts %q", c.uid, len(m.Raw), got, c.parts)
				}
			}
			if len(received)+len(listed) != 7 {
				t.Errorf("%d received, %d listed; want 7 in all", len(received), len(listed))
			}
			if _, ok := received[gone]; ok || listed[gone].UID != 0 || !l.Deleted[gone] {
				t.Errorf("deleted message: received or listed, or not marked deleted")
			}
			if len(l.UIDs) != 8 {
				t.Errorf("%d UIDs, want 8", len(l.UIDs))
			}
			// The probe, the first round (body structures included),
			// then parts [1] and [2] of the misses.
			if commands["FETCH"] != 1 || commands["UID FETCH"] != 3 {
				t.Errorf("commands %v: want 1 FETCH and 3 UID FETCH", commands)
			}

			// Without Received, every message with content is in the
			// listing, in UID order, with the same parts.
			l2, err := s.Fetch(t.Context(), srv.SharedName("alice", "Calendar"), Query{
				Want: func(mt string) bool { return mt == "text/calendar" }, WholeBelow: 4096})
			if err != nil {
				t.Fatal(err)
			}
			var uids []uint32
			for _, m := range l2.Messages {
				uids = append(uids, m.UID)
				before := received[m.UID]
				if before.UID == 0 {
					before = listed[m.UID]
				}
				if !slices.Equal(summaries(m), summaries(before)) {
					t.Errorf("UID %d without Received: %q, with: %q", m.UID, summaries(m), summaries(before))
				}
			}
			if want := []uint32{small, attached, single, twins, large, text, last}; !slices.Equal(uids, want) {
				t.Errorf("without Received, the listing holds %v, want %v", uids, want)
			}
		})
	}
}

// TestWantedPartsParams checks that a wanted part's parameters are
// go-imap's map itself when its keys are in lower case, as go-imap
// writes them (no copy per message of a cold read), and a copy with
// lower-case keys otherwise.
func TestWantedPartsParams(t *testing.T) {
	q := Query{Want: func(mt string) bool { return mt == "text/calendar" }, MaxPart: 1 << 20}
	lower := map[string]string{"charset": "utf-8", "method": "PUBLISH"}
	bs := &imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
		&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "utf-8"}},
		&imap.BodyStructureSinglePart{Type: "TEXT", Subtype: "Calendar", Params: lower, Encoding: "8BIT", Size: 300},
	}}
	parts := wantedParts(bs, q)
	if len(parts) != 1 || !slices.Equal(parts[0].Path, []int{2}) || parts[0].MediaType != "text/calendar" || parts[0].Encoding != "8bit" {
		t.Fatalf("wantedParts = %+v, want part 2, text/calendar, 8bit", parts)
	}
	if !maps.Equal(parts[0].Params, lower) {
		t.Errorf("Params = %v, want %v", parts[0].Params, lower)
	}
	if n := testing.AllocsPerRun(10, func() { lowerKeys(lower) }); n != 0 {
		t.Errorf("lowerKeys of lower-case keys: %v allocations, want 0", n)
	}
	mixed := map[string]string{"Charset": "utf-8", "METHOD": "REQUEST"}
	got := lowerKeys(mixed)
	want := map[string]string{"charset": "utf-8", "method": "REQUEST"}
	if !maps.Equal(got, want) || !maps.Equal(mixed, map[string]string{"Charset": "utf-8", "METHOD": "REQUEST"}) {
		t.Errorf("lowerKeys(%v) = %v (and left %v), want %v and the map untouched", mixed, got, mixed, want)
	}
}
