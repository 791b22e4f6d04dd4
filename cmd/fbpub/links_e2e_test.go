package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestLinksEndToEnd drives the built binary, free/busy visible by ACL
// only: alice creates a secret link, an anonymous client (as Outlook)
// gets her free/busy with it, and after she revokes it gets 404. The token never reaches the log.
func TestLinksEndToEnd(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("Planning", crlf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example//Test//EN
BEGIN:VEVENT
UID:alice-planning-1
DTSTAMP:20250101T000000Z
DTSTART:`+day+`T090000Z
DTEND:`+day+`T103000Z
SUMMARY:Quarterly planning
END:VEVENT
END:VCALENDAR
`)))
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")

	bin := buildBinary(t)
	base, logs := startBinary(t, bin, "FBPUB_IMAP_ADDR="+srv.Addr, "FBPUB_IMAP_TLS=none",
		"FBPUB_IMAP_USER="+testbed.Proxy, "FBPUB_IMAP_PASSWORD="+testbed.Password(testbed.Proxy),
		"FBPUB_MAIL_DOMAIN=example.org", "FBPUB_FREEBUSY=acl", "FBPUB_CHECK_INTERVAL=0s", "FBPUB_LOG_LEVEL=debug")

	if code, _ := fetch(t, base+"/freebusy/alice.vfb"); code != http.StatusUnauthorized {
		t.Fatalf("anonymous .vfb under acl = %d, want 401", code)
	}
	code, _, body := request(t, "POST", base+"/freebusy/links", "alice", "")
	var link struct{ ID, URL string }
	if err := json.Unmarshal([]byte(body), &link); code != http.StatusCreated || err != nil {
		t.Fatalf("POST /freebusy/links = %d %s", code, body)
	}
	if !strings.HasPrefix(link.URL, base+"/freebusy/s/") {
		t.Fatalf("link %q does not start with %s/freebusy/s/", link.URL, base)
	}
	code, body = fetch(t, link.URL)
	if code != 200 || !strings.Contains(body, "FREEBUSY;FBTYPE=BUSY:"+day+"T090000Z/"+day+"T103000Z\r\n") || strings.Contains(body, "Quarterly") {
		t.Fatalf("anonymous GET of the link = %d\n%s", code, body)
	}
	if code, _, _ := request(t, "DELETE", base+"/freebusy/links/"+link.ID, "alice", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE = %d", code)
	}
	if code, body := fetch(t, link.URL); code != http.StatusNotFound || body != "not found\n" {
		t.Errorf("the revoked link = %d %q, want 404", code, body)
	}
	token := strings.TrimSuffix(link.URL[strings.LastIndex(link.URL, "/")+1:], ".vfb")
	secret := token[strings.IndexByte(token, '.')+1:]
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log holds the token:\n%s", logs.String())
	}
}
