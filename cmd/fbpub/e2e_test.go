package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

// buildBinary builds fbpub once for the end-to-end tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fbpub")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBinary runs `fbpub serve` configured through the environment only,
// as the README shows, and waits until it answers.
func startBinary(t *testing.T, bin string, env ...string) (base string, logs *syncBuffer) {
	t.Helper()
	return startBinaryArgs(t, bin, nil, env...)
}

// startBinaryArgs runs "fbpub serve" with extra arguments (--config FILE).
func startBinaryArgs(t *testing.T, bin string, args []string, env ...string) (base string, logs *syncBuffer) {
	t.Helper()
	listen := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), append([]string{"FBPUB_LISTEN=" + listen}, env...)...)
	logs = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("fbpub log:\n%s", logs.String())
		}
	})
	base = "http://" + listen
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base, logs
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fbpub did not start; log:\n%s", logs.String())
	return "", nil
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	code, _, body := request(t, "GET", url, "", "")
	return code, body
}

// request sends one request, as user (HTTP Basic with the test bed
// password) unless user is "", with body and the header pairs hdr.
func request(t *testing.T, method, url, user, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, testbed.Password(user))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// TestEndToEnd: alice grants the proxy lr on her Calendar, bob does not.
// fbpub, started as a user would start it, publishes alice's events and
// nothing of bob's; the bytes of both answers are checked.
func TestEndToEnd(t *testing.T) {
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
LOCATION:Room 1
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Reminder
TRIGGER:-PT15M
END:VALARM
END:VEVENT
END:VCALENDAR
`)))
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")

	srv.CreateFolder(t, "bob", "Calendar")
	srv.Append(t, "bob", "Calendar", testbed.CalendarMessage("Secret", crlf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example//Test//EN
BEGIN:VEVENT
UID:bob-secret-1
DTSTAMP:20250101T000000Z
DTSTART:`+day+`T120000Z
DTEND:`+day+`T130000Z
SUMMARY:Bob's secret interview
END:VEVENT
END:VCALENDAR
`)))

	// Folders fbpub sees but must not publish, for `fbpub check`.
	srv.CreateFolder(t, "alice", "Tasks")
	srv.SetACL(t, "alice", "Tasks", testbed.Proxy, "lr")
	srv.CreateFolder(t, "carol", "Calendar")
	srv.SetACL(t, "carol", "Calendar", testbed.Proxy, "l")

	bin := buildBinary(t)
	env := []string{"FBPUB_IMAP_ADDR=" + srv.Addr, "FBPUB_IMAP_TLS=none",
		"FBPUB_IMAP_USER=" + testbed.Proxy, "FBPUB_IMAP_PASSWORD=" + testbed.Password(testbed.Proxy),
		"FBPUB_MAIL_DOMAIN=example.org"}
	cmd := exec.Command(bin, "check")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fbpub check: %v\n%s", err, out)
	}
	for _, want := range []string{
		"configuration: ok", "logged in as fbproxy", "ACL", "CONDSTORE",
		"alice  shared/alice/Calendar  rights lr",
		`shared/alice/Tasks     not a calendar folder`,
		`shared/carol/Calendar  the proxy may not read it (rights "l", needs l and r)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("fbpub check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), testbed.Password(testbed.Proxy)) {
		t.Errorf("fbpub check printed the password")
	}

	base, _ := startBinary(t, bin, env...)

	code, body := fetch(t, base+"/freebusy/alice@example.org.vfb")
	today := time.Now().UTC()
	start := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -7)
	end := start.AddDate(0, 0, 7+90+1)
	body = regexp.MustCompile(`DTSTAMP:\d{8}T\d{6}Z`).ReplaceAllString(body, "DTSTAMP:X")
	want := crlf(fmt.Sprintf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub//fbpub//EN
METHOD:PUBLISH
BEGIN:VFREEBUSY
UID:fbpub-freebusy-alice
DTSTAMP:X
DTSTART:%s
DTEND:%s
ORGANIZER:mailto:alice@example.org
FREEBUSY;FBTYPE=BUSY:%sT090000Z/%sT103000Z
END:VFREEBUSY
END:VCALENDAR
`, start.Format("20060102T150405Z"), end.Format("20060102T150405Z"), day, day))
	if code != 200 || body != want {
		t.Errorf("alice .vfb: %d\n%s\nwant:\n%s", code, body, want)
	}

	req, _ := http.NewRequest("GET", base+"/calendar/alice/Calendar.ics", nil)
	req.SetBasicAuth("alice", testbed.Password("alice"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	code, body = resp.StatusCode, string(b)
	want = crlf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//fbpub//fbpub//EN
CALSCALE:GREGORIAN
METHOD:PUBLISH
X-WR-CALNAME:alice – Calendar
X-PUBLISHED-TTL:PT15M
REFRESH-INTERVAL;VALUE=DURATION:PT15M
BEGIN:VEVENT
UID:alice-planning-1
DTSTAMP:20250101T000000Z
DTSTART:` + day + `T090000Z
DTEND:` + day + `T103000Z
SUMMARY:Quarterly planning
LOCATION:Room 1
END:VEVENT
END:VCALENDAR
`)
	if code != 200 || body != want {
		t.Errorf("alice Calendar.ics, as alice: %d\n%s\nwant:\n%s", code, body, want)
	}

	// Anyone else sees when alice is busy, not what she does.
	code, body = fetch(t, base+"/calendar/alice/Calendar.ics")
	if code != 200 || !strings.Contains(body, "SUMMARY:Busy\r\n") || !strings.Contains(body, "DTSTART:"+day+"T090000Z\r\n") ||
		strings.Contains(body, "Quarterly") || strings.Contains(body, "Room 1") || strings.Contains(body, "alice-planning-1") {
		t.Errorf("alice Calendar.ics, anonymously: %d\n%s", code, body)
	}

	for _, path := range []string{"/freebusy/bob@example.org.vfb", "/freebusy/bob.ifb", "/calendar/bob/Calendar.ics", "/calendar/bob.ics"} {
		code, body := fetch(t, base+path)
		if code != http.StatusNotFound || body != "not found\n" {
			t.Errorf("GET %s = %d %q, want 404 \"not found\\n\"", path, code, body)
		}
	}
	for _, path := range []string{"/freebusy/alice.vfb", "/calendar/alice.ics", "/calendar/alice/Calendar.ics"} {
		if _, body := fetch(t, base+path); strings.Contains(body, "bob-secret") || strings.Contains(body, "interview") {
			t.Errorf("GET %s leaks bob's event:\n%s", path, body)
		}
	}
}
