package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// CalendarMessage wraps an iCalendar text into an RFC 5322 message, the shape
// groupware clients store: From, Date, Subject, Message-ID and MIME-Version
// headers and a multipart/mixed body with a short text/plain part and a
// "text/calendar; charset=utf-8; method=PUBLISH" part. Line endings are CRLF
// throughout, whatever ics uses.
func CalendarMessage(subject, ics string) []byte {
	var id [12]byte
	rand.Read(id[:])
	token := hex.EncodeToString(id[:])
	boundary := "fbpub-testbed-" + token
	crlf := func(s string) string {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
		s = strings.TrimRight(s, "\n")
		return strings.ReplaceAll(s, "\n", "\r\n") + "\r\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: fbpub test bed <testbed@example.org>\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Message-ID: <%s@testbed.example.org>\r\n", token)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n", boundary)
	fmt.Fprintf(&b, "\r\n")
	fmt.Fprintf(&b, "This is a multi-part message in MIME format.\r\n")
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\n")
	fmt.Fprintf(&b, "Content-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "\r\n")
	fmt.Fprintf(&b, "This message holds a calendar object.\r\n")
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	fmt.Fprintf(&b, "Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n")
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"event.ics\"\r\n")
	fmt.Fprintf(&b, "Content-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "\r\n")
	b.WriteString(crlf(ics))
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}
