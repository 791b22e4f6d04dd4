package imapstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// kolabLine is a FETCH response as Dovecot sends it to a structure fetch
// of a test bed message (calendar in part 2), up to its literal.
func kolabLine(seq int) string {
	return fmt.Sprintf(`* %d FETCH (UID %d FLAGS (\Seen) MODSEQ (%d) BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 39 1 NIL NIL NIL NIL)("text" "calendar" ("charset" "utf-8" "method" "PUBLISH") NIL NIL "8bit" 263 12 NIL ("attachment" ("filename" "event.ics")) NIL NIL) "mixed" ("boundary" "fbpub-testbed-0123456789abcdef01234567") NIL NIL NIL) BODY[2]<0> {%d}`, seq, seq, seq+7, len(kolabPart)) + "\r\n" + kolabPart + ")\r\n"
}

const kolabPart = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250301T090000Z\r\nSUMMARY:y\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"

func BenchmarkBodyStructure(b *testing.B) {
	var text bytes.Buffer
	for i := 1; i <= 1000; i++ {
		text.WriteString(kolabLine(i))
	}
	f := structureFetch([]int{2}, Query{Want: func(mt string) bool { return mt == "text/calendar" }, WholeBelow: 64 << 10, MaxPart: 16 << 20})
	b.SetBytes(int64(text.Len()))
	b.ReportAllocs()
	for b.Loop() {
		err := readStructures(text.Bytes(), f, func(s *structure) {
			if !s.ok || len(s.wanted) != 1 {
				b.Fatalf("%+v", s)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzBodyStructure feeds the bulk reader a BODYSTRUCTURE in a FETCH
// response to a structure fetch and checks it against go-imap reading the
// same: what go-imap reads, the bulk reader reads too or refuses as
// errBulkSyntax (the fetch then falls back to go-imap), and when it says
// it understood the structure, it finds the same wanted parts (path,
// media type, parameters, encoding, too large or not).
// Run with go test -fuzz FuzzBodyStructure ./internal/imapstore.
func FuzzBodyStructure(f *testing.F) {
	for _, seed := range []string{
		`(("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 39 1 NIL NIL NIL NIL)("text" "calendar" ("charset" "utf-8" "method" "PUBLISH") NIL NIL "8bit" 263 12 NIL ("attachment" ("filename" "event.ics")) NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)`,
		`("TEXT" "CALENDAR" ("CHARSET" "UTF-8") NIL NIL "QUOTED-PRINTABLE" 200 9)`,
		`("text" "calendar" NIL NIL NIL NIL 20000000 9 NIL NIL NIL NIL)`,
		`(("text" "calendar" NIL NIL NIL "7bit" 2 1)(("text" "calendar" ("name" {5}` + "\r\n" + `a b c) NIL NIL "base64" 4 1)("application" "octet-stream" NIL NIL NIL "base64" 4) "alternative") "mixed")`,
		`(("message" "rfc822" NIL NIL NIL "7bit" 300 ("date" "subj" (("a" NIL "b" "c")) NIL NIL NIL NIL NIL NIL "<id>") ("text" "calendar" NIL NIL NIL "7bit" 3 1) 12)("text" "calendar" ("charset" "=?utf-8?q?x?=") NIL NIL "7bit" 3 1) "mixed")`,
		`("application" "calendar+xml" ("charset" "us-ascii" "charset" "utf-8") "<cid>" "a \"quoted\" description" "8BIT" 12 NIL NIL NIL NIL)`,
	} {
		f.Add([]byte(seed))
	}
	want := func(mt string) bool { return strings.Contains(mt, "calendar") }
	f.Fuzz(func(t *testing.T, bs []byte) {
		if bytes.ContainsAny(bs, "\n\r") && !bytes.Contains(bs, []byte("}\r\n")) {
			t.Skip() // a line break outside a literal ends the response
		}
		q := Query{Want: want, WholeBelow: 64, MaxPart: 16 << 20}
		fetch := structureFetch([]int{2}, q)
		answer := append(append([]byte("* 1 FETCH (UID 4 BODYSTRUCTURE "), bs...), " BODY[2]<0> {5}\r\nhello)"...) // the fake server ends the line
		plain, err := fakeGoIMAPFetchOf(t, answer, &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}, BodySection: []*imap.FetchItemBodySection{fetch.section}})
		if err != nil || len(plain) != 1 || plain[0].BodyStructure == nil {
			return // go-imap refuses it: nothing to compare
		}
		var got *structure
		var leanErr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("bulk reader panics on %q: %v", answer, r)
				}
			}()
			leanErr = readStructures(append(slices.Clip(answer), "\r\n"...), fetch, func(s *structure) { got = s })
		}()
		if errors.Is(leanErr, errBulkSyntax) {
			return // fetched with go-imap instead (go-imap is more lenient)
		}
		if leanErr != nil || got == nil {
			t.Fatalf("go-imap reads %q, the bulk reader: %v", answer, leanErr)
		}
		if !got.ok {
			return
		}
		wantParts := wantedParts(plain[0].BodyStructure, q)
		if len(got.wanted) == 0 && len(wantParts) == 0 {
			return
		}
		if !reflect.DeepEqual(got.wanted, wantParts) {
			t.Fatalf("%q:\nbulk    %+v\ngo-imap %+v", answer, got.wanted, wantParts)
		}
	})
}

// readStructures parses text, FETCH responses to f, with the bulk reader,
// calling each with the body structure of every message.
func readStructures(text []byte, f bulkFetch, each func(*structure)) error {
	br := bufio.NewReaderSize(bytes.NewReader(text), maxLine)
	b := &bulkConn{br: br, moved: time.Now().Add(time.Hour)} // no deadline to move
	r := &fetchReader{br: br, f: f, line: b.line}
	for {
		line, err := b.line()
		if err != nil {
			return nil
		}
		m, err := r.response(line)
		if err != nil {
			return err
		}
		if m == nil {
			return errBulkSyntax
		}
		each(r.structure)
	}
}
