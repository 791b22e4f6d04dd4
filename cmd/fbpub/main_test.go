package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
)

// TestRender checks the VFREEBUSY of a hand-checked Outlook calendar in
// Europe/Berlin: a weekly series with an EXDATE and a moved instance the
// owner has not answered yet (tentative), an out-of-office all-day event,
// and a declined meeting that does not count.
func TestRender(t *testing.T) {
	var out, errs strings.Builder
	err := run(context.Background(), []string{"render", "--start", "2025-03-01T00:00:00Z", "--end", "2025-04-01T00:00:00Z",
		"--tz", "Europe/Berlin", "--owner", "mailto:alice@example.org", "testdata/render-outlook.ics"}, nil, &out, &errs, os.Getenv)
	if err != nil {
		t.Fatalf("render: %v (%s)", err, errs.String())
	}
	want := []string{
		"FREEBUSY;FBTYPE=BUSY:20250303T083000Z/20250303T090000Z",
		"FREEBUSY;FBTYPE=BUSY:20250310T083000Z/20250310T090000Z",
		"FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20250311T230000Z/20250313T230000Z",
		"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250325T130000Z/20250325T140000Z",
		"FREEBUSY;FBTYPE=BUSY:20250331T073000Z/20250331T080000Z",
	}
	var got []string
	for _, l := range strings.Split(out.String(), "\r\n") {
		if strings.HasPrefix(l, "FREEBUSY") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("render periods:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out.String(), "ORGANIZER:mailto:alice@example.org\r\n") {
		t.Errorf("render output lacks the ORGANIZER:\n%s", out.String())
	}
}

func TestRenderBadInput(t *testing.T) {
	tests := []struct {
		args []string
		in   string
		want string
	}{
		{[]string{"render", "--start", "yesterday", "-"}, "", `--start: "yesterday" is not an RFC 3339 time`},
		{[]string{"render", "--tz", "Nowhere/City", "-"}, "", `--tz: unknown zone "Nowhere/City"`},
		{[]string{"render", "-"}, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", "malformed iCalendar"},
		{[]string{"render", "testdata/does-not-exist.ics"}, "", "no such file"},
	}
	for _, tt := range tests {
		var out, errs strings.Builder
		err := run(context.Background(), tt.args, strings.NewReader(tt.in), &out, &errs, os.Getenv)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// syncBuffer is a strings.Builder safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDemo runs `fbpub demo` in-process on a free port, as TestDemo does,
// and returns its base URL and its log. It stops the demo when the test
// ends.
func startDemo(t *testing.T) (string, *syncBuffer) {
	t.Helper()
	return startDemoWith(t, []string{"demo", "--listen", "127.0.0.1:0"}, func(string) string { return "" })
}

// startDemoWith is startDemo with the command line and environment given.
func startDemoWith(t *testing.T, args []string, getenv func(string) string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, nil, pw, &logs, getenv)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo exited with %v", err)
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	var base string
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`http://127\.0\.0\.1:\d+`)
	for sc.Scan() {
		if m := re.FindString(sc.Text()); m != "" {
			base = m
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		t.Fatalf("demo printed no URL; log:\n%s", logs.String())
	}
	return base, &logs
}

// TestDemoListenFromEnvironment: `fbpub demo` listens where FBPUB_LISTEN
// says, as `fbpub serve` does, unless --listen says otherwise.
func TestDemoListenFromEnvironment(t *testing.T) {
	base, _ := startDemoWith(t, []string{"demo"}, func(k string) string {
		if k == "FBPUB_LISTEN" {
			return "127.0.0.1:0"
		}
		return ""
	})
	if strings.HasSuffix(base, ":8080") {
		t.Errorf("demo with FBPUB_LISTEN=127.0.0.1:0 listens at %s, the default", base)
	}
	resp, err := http.Get(base + "/freebusy/alice@example.org.vfb")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET alice's free/busy from the demo at %s: %s", base, resp.Status)
	}
}

// TestDemo runs `fbpub demo` on a free port and fetches what the README
// tells a newcomer to fetch.
func TestDemo(t *testing.T) {
	base, logs := startDemo(t)
	get := func(path string) (int, http.Header, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	code, hdr, body := get("/freebusy/alice@example.org.vfb")
	if code != 200 || hdr.Get("Content-Type") != "text/calendar; charset=utf-8" {
		t.Fatalf("alice .vfb: %d %q\n%s", code, hdr.Get("Content-Type"), body)
	}
	for _, want := range []string{"BEGIN:VFREEBUSY", "ORGANIZER:mailto:alice@example.org", "FREEBUSY;FBTYPE=BUSY:", "FREEBUSY;FBTYPE=BUSY-TENTATIVE:"} {
		if !strings.Contains(body, want) {
			t.Errorf("alice .vfb lacks %q:\n%s", want, body)
		}
	}
	// The lunch tomorrow, 11:00–12:30 UTC, is in every default window.
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("20060102")
	if want := "FREEBUSY;FBTYPE=BUSY:" + tomorrow + "T110000Z/" + tomorrow + "T123000Z"; !strings.Contains(body, want) {
		t.Errorf("alice .vfb lacks tomorrow's lunch %q:\n%s", want, body)
	}
	// The cancelled budget review (tomorrow 15:00 UTC) makes nobody busy.
	if strings.Contains(body, tomorrow+"T150000Z") {
		t.Errorf("alice .vfb shows the cancelled event:\n%s", body)
	}

	code, _, body = get("/calendar/alice/Calendar.ics")
	if code != 200 {
		t.Fatalf("alice Calendar.ics: %d\n%s", code, body)
	}
	cals, err := calendar.Decode([]byte(body))
	if err != nil {
		t.Fatalf("feed does not parse: %v\n%s", err, body)
	}
	if n := len(calendar.Objects(cals)); n != 5 {
		t.Errorf("alice's Calendar feed has %d events, want 5", n)
	}
	if strings.Contains(body, "BEGIN:VALARM") {
		t.Errorf("feed still carries alarms")
	}
	// The demo server has no ACLs: the feed is the busy view, and the
	// extended free/busy names nothing, for everyone but the owner.
	if strings.Contains(body, "Lunch with Bob") || !strings.Contains(body, "SUMMARY:Busy") {
		t.Errorf("an anonymous requester sees event details on a server without ACLs:\n%s", body)
	}
	code, _, body = get("/freebusy/alice.xfb")
	if code != 200 || !strings.Contains(body, "FREEBUSY;FBTYPE=BUSY:"+tomorrow+"T110000Z/"+tomorrow+"T123000Z") || strings.Contains(body, "X-SUMMARY") {
		t.Errorf("alice .xfb: %d\n%s", code, body)
	}

	if code, _, _ := get("/calendar/bob/Tasks.ics"); code != http.StatusNotFound {
		t.Errorf("bob's Tasks folder (not a calendar) answered %d, want 404", code)
	}
	if code, _, _ := get("/freebusy/nobody.vfb"); code != http.StatusNotFound {
		t.Errorf("unknown user answered %d, want 404", code)
	}
	// Caching headers: the ETag comes back as 304, and gzip has its own tag.
	req, _ := http.NewRequest("GET", base+"/calendar/alice/Calendar.ics", nil)
	req.Header.Set("Accept-Encoding", "identity") // else Go's client asks for gzip itself
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	req.Header.Set("If-None-Match", etag)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %v, %v; want 304", etag, resp.Status, err)
	}
	req.Header.Del("If-None-Match")
	req.Header.Set("Accept-Encoding", "gzip")
	if resp, err = http.DefaultTransport.RoundTrip(req); err != nil || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("ETag") == etag {
		t.Errorf("gzip: %v %q %q", err, resp.Header.Get("Content-Encoding"), resp.Header.Get("ETag"))
	} else {
		resp.Body.Close()
	}
	// The demo's team, as the printed URLs show it: the scheduling page,
	// and its members' free/busy and common slots as JSON.
	code, hdr, body = get("/team/team")
	if code != 200 || hdr.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, `data-group="team"`) {
		t.Errorf("/team/team: %d %q\n%s", code, hdr.Get("Content-Type"), body)
	}
	req, _ = http.NewRequest("GET", base+"/freebusy/group/team.vfb", nil)
	req.Header.Set("Accept", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`{"user":"alice","status":"ok","busy":[{`, `{"user":"bob","status":"ok"`, `{"user":"carol","status":"ok"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("the demo team's free/busy as JSON lacks %s:\n%s", want, b)
			}
		}
	}
	if code, _, body := get("/freebusy/slots?group=team&duration=PT1H"); code != 200 || !strings.Contains(body, `"slots":[{"start":`) {
		t.Errorf("the demo team's slots: %d\n%s", code, body)
	}
	if code, _, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", code)
	}

	if !strings.Contains(logs.String(), "no ACL extension") || !strings.Contains(logs.String(), "no CONDSTORE") {
		t.Errorf("demo log does not say which features it turned off:\n%s", logs.String())
	}
}

// TestCheckSaysWhatIsWrong: `fbpub check` says "configuration: ok" only
// once the files the configuration names could be read, and warns of an
// FBPUB_* variable that names no setting (a misspelling would otherwise
// be ignored without a word).
func TestCheckSaysWhatIsWrong(t *testing.T) {
	defer func(e func() []string) { environ = e }(environ)
	environ = func() []string {
		return []string{"PATH=/bin", "FBPUB_IMAP_TSL=none", "FBPUB_TESTBED_DIR=/tmp", "FBPUB_IMAP_ADDR=127.0.0.1:1"}
	}
	env := map[string]string{"FBPUB_IMAP_ADDR": "127.0.0.1:1", "FBPUB_IMAP_TLS": "none", "FBPUB_IMAP_PASSWORD_FILE": filepath.Join(t.TempDir(), "missing")}
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"check"}, nil, &out, &errs, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "password_file") || strings.Contains(out.String(), "configuration: ok") {
		t.Errorf("check with a missing password file: %v, output\n%s", err, out.String())
	}
	env["FBPUB_IMAP_PASSWORD_FILE"], env["FBPUB_IMAP_PASSWORD"] = "", "x"
	out.Reset()
	err = run(context.Background(), []string{"check"}, nil, &out, &errs, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(out.String(), "configuration: ok") ||
		!strings.Contains(out.String(), "warning: config: FBPUB_IMAP_TSL is not a setting fbpub knows") || strings.Contains(out.String(), "FBPUB_TESTBED_DIR") {
		t.Errorf("check with FBPUB_IMAP_TSL set (and no server): %v, output\n%s", err, out.String())
	}
}
