package httpapi

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/testbed"
)

// crew is the group of the page tests: three members dave may see, one he
// may not (bob) and a name fbpub does not know.
var crew = Team{Groups: map[string][]string{"crew": {"alice", "carol", "dave", "bob", "nobody"}}, WorkingHours: nineToFive}

// TestTeamPageHTTP checks the page as HTTP: who may have it, what it
// refuses, its security headers, that it holds no inline script or style
// and escapes names from the URL, and its embedded assets.
func TestTeamPageHTTP(t *testing.T) {
	s := setupTeam(t, testbed.Get(t), crew)
	dave := basicAs("dave")
	for _, path := range []string{"/team/crew", "/team/nope", "/team?user=alice", "/team"} {
		if r := s.do(t, "GET", path); r.code != 401 || r.hdr.Get("Www-Authenticate") == "" {
			t.Errorf("anonymous GET %s = %d (WWW-Authenticate %q), want 401", path, r.code, r.hdr.Get("Www-Authenticate"))
		}
	}
	r := s.do(t, "GET", "/team/crew?start=2025-03-10&tz=Europe/Berlin&duration=PT30M", dave...)
	if r.code != 200 || r.hdr.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /team/crew = %d %s\n%s", r.code, r.hdr.Get("Content-Type"), r.body)
	}
	csp := r.hdr.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("page headers: CSP %q, X-Content-Type-Options %q, Cache-Control %q", csp, r.hdr.Get("X-Content-Type-Options"), r.hdr.Get("Cache-Control"))
	}
	doc := parseHTML(t, r.body)
	for _, e := range doc {
		if e.name == "script" && (e.attr["src"] == "" || strings.TrimSpace(e.text) != "") {
			t.Errorf("the page holds an inline script: %v", e)
		}
		if _, ok := e.attr["style"]; ok || e.name == "style" {
			t.Errorf("the page holds inline style: %v", e)
		}
		for _, a := range []string{"src", "href"} {
			if v := e.attr[a]; strings.Contains(v, "//") {
				t.Errorf("the page loads from elsewhere: <%s %s=%q>", e.name, a, v)
			}
		}
	}
	if m := find(doc, "main"); m == nil || m.attr["data-group"] != "crew" || m.attr["data-start"] != "2025-03-10" || m.attr["data-tz"] != "Europe/Berlin" || m.attr["data-root"] != "../" {
		t.Errorf("<main> = %v", m)
	}
	if o := find(doc, "option", "selected", "selected"); o == nil || o.attr["value"] != "PT30M" {
		t.Errorf("selected duration: %v", o)
	}
	// A name from the URL is text, never markup.
	evil := "<b>x</b>@example.org"
	r = s.do(t, "GET", "/team?user=alice&user="+url.QueryEscape(evil), dave...)
	if r.code != 200 || strings.Contains(r.body, "<b>") || !strings.Contains(r.body, "&lt;b&gt;x&lt;/b&gt;@example.org") {
		t.Errorf("GET /team?user=%s = %d, the name not escaped:\n%s", evil, r.code, r.body)
	}
	if in := find(parseHTML(t, r.body), "input", "value", evil); in == nil || in.attr["name"] != "user" || in.attr["type"] != "hidden" {
		t.Errorf("the listed members are not the form's hidden user fields: %v", in)
	}
	// Every control can be reached with the keyboard and has a label.
	labels := map[string]bool{}
	for _, e := range doc {
		if e.name == "label" {
			labels[e.attr["for"]] = true
		}
	}
	controls := 0
	for _, e := range doc {
		switch {
		case e.name == "input" && e.attr["type"] != "hidden", e.name == "select":
			controls++
			if id := e.attr["id"]; id == "" || !labels[id] || e.attr["tabindex"] == "-1" {
				t.Errorf("a control without a label, or out of the tab order: %v", e)
			}
		case e.name == "a" && e.attr["href"] == "", e.name == "button" && e.attr["type"] != "submit":
			t.Errorf("a link or button that does nothing: %v", e)
		}
	}
	if controls != 4 || find(doc, "button", "type", "submit") == nil || find(doc, "div", "id", "grid", "tabindex", "0") == nil {
		t.Errorf("the page has %d labelled controls, want 4 (week, length, zone, tentative), a submit button and a focusable grid", controls)
	}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/team/nope", 404},
		{"/team", 400},
		{"/team?user=", 400},
		{"/team?user=alice&user=bob&user=carol&user=dave&user=alice&user=bob&user=carol&user=dave&" + strings.Repeat("user=x&", 100), 400},
		{"/team/crew?start=2025-13-01", 400},
		{"/team/crew?start=20250310", 400},
		{"/team/crew?tz=Mars/Olympus", 400},
		{"/team/crew?tz=Local", 400},
		{"/team/crew?duration=soon", 400},
		{"/team/crew?duration=-PT1H", 400},
		{"/team/crew?tentative=maybe", 400},
		{"/team/crew?start=&tz=&duration=PT1H&tentative=free", 200}, // the form's empty fields
		{"/team/crew?duration=PT20M", 200},
	} {
		if r := s.do(t, "GET", tc.path, dave...); r.code != tc.code {
			t.Errorf("GET %s = %d, want %d: %s", tc.path, r.code, tc.code, r.body)
		}
	}
	for file, ct := range map[string]string{"team.js": "text/javascript; charset=utf-8", "team.css": "text/css; charset=utf-8"} {
		r := s.do(t, "GET", "/team/assets/"+file)
		want, _ := teamFiles.ReadFile("team/" + file)
		if r.code != 200 || r.hdr.Get("Content-Type") != ct || r.hdr.Get("X-Content-Type-Options") != "nosniff" || r.body != string(want) {
			t.Errorf("GET /team/assets/%s = %d %q %q", file, r.code, r.hdr.Get("Content-Type"), r.hdr.Get("X-Content-Type-Options"))
		}
		if again := s.do(t, "GET", "/team/assets/"+file, "If-None-Match", r.hdr.Get("Etag")); again.code != 304 {
			t.Errorf("GET /team/assets/%s with its ETag = %d, want 304", file, again.code)
		}
	}
	for _, path := range []string{"/team/assets/team.html", "/team/assets/nope.js", "/team/assets/..%2fteam.go"} {
		if r := s.do(t, "GET", path); r.code != 404 {
			t.Errorf("GET %s = %d, want 404", path, r.code)
		}
	}
	if got := testutil.ToFloat64(s.m.HTTPRequests.WithLabelValues("team", "200")); got < 3 {
		t.Errorf("fbpub_http_requests_total{route=\"team\",code=\"200\"} = %v, want at least 3", got)
	}
}

// TestTeamPage opens the page in headless Chromium, as dave, for the
// known week of the team tests, and checks the DOM it draws against the
// hand-computed week: every busy block with its member, times and
// FBTYPE, every common free slot, the members' statuses; then in New
// York, for the week whose Sunday changes the clocks, with other
// controls. It saves a screenshot (FBPUB_TEST_ARTIFACTS, else a
// temporary directory).
func TestTeamPage(t *testing.T) {
	browser := chromium(t)
	s := setupTeam(t, testbed.Get(t), crew)
	u, _ := url.Parse(s.URL)
	u.User = url.UserPassword("dave", testbed.Password("dave"))
	base := u.String()

	// Berlin, the week of Wednesday 12 March 2025: Monday 10 00:00 CET
	// (09T23:00Z) to Monday 17 00:00 CET (16T23:00Z). With
	// off_hours=unavailable each member's time outside working hours
	// shows: alice 09-17 Berlin (08-16Z), carol 09-17 New York (13-21Z,
	// after the clocks moved on 9 March), dave his VAVAILABILITY (09-13
	// and 14-18 London, which is UTC in March).
	page := browser.dom(t, base+"/team/crew?start=2025-03-12&tz=Europe/Berlin")
	checkWindow(t, page, "2025-03-09T23:00:00Z", "2025-03-16T23:00:00Z")
	var want []string
	off := func(user string, spans ...string) {
		for _, sp := range spans {
			want = append(want, user+" BUSY-UNAVAILABLE "+sp)
		}
	}
	off("alice", "09T23:00/10T08:00", "10T16:00/11T08:00", "11T16:00/12T08:00", "12T16:00/13T08:00", "13T16:00/14T08:00", "14T16:00/16T23:00")
	want = append(want, "alice BUSY-TENTATIVE 11T14:00/11T15:00")
	off("carol", "09T23:00/10T13:00", "10T21:00/11T13:00", "11T21:00/12T13:00", "12T21:00/13T13:00", "13T21:00/14T13:00", "14T21:00/16T23:00")
	want = append(want, "carol BUSY 10T15:00/10T15:30")
	off("dave", "09T23:00/10T09:00", "10T13:00/10T14:00", "10T18:00/11T09:00", "11T13:00/11T14:00", "11T18:00/12T09:00",
		"12T13:00/12T14:00", "12T18:00/13T09:00", "13T13:00/13T14:00", "13T18:00/14T09:00", "14T13:00/14T14:00", "14T18:00/16T23:00")
	checkBlocks(t, page, "2025-03-", want)
	// Everyone free for an hour: 14-16 UTC on weekdays, except Monday
	// (carol's meeting 15:00-15:30 leaves 14-15) and Tuesday (alice's
	// tentative meeting 14-15 leaves 15-16).
	checkSlots(t, page, "2025-03-", "10T14:00/10T15:00", "11T15:00/11T16:00", "12T14:00/12T16:00", "13T14:00/13T16:00", "14T14:00/14T16:00")
	statuses := map[string]string{}
	for _, e := range page {
		if e.name == "div" && e.attr["data-member"] != "" {
			statuses[e.attr["data-member"]] = e.attr["data-status"]
		}
	}
	if want := map[string]string{"alice": "ok", "carol": "ok", "dave": "ok", "bob": "no-authority", "nobody": "no-authority"}; !maps(statuses, want) {
		t.Errorf("member rows = %v, want %v", statuses, want)
	}
	text := allText(page)
	for _, want := range []string{"no authority: no calendar of this name that you may see", "Mon 10 Mar", "Sun 16 Mar",
		"times in Europe/Berlin", "5 common free times of 1 hour", "2 not shown", "Wed 12 Mar, 15:00–17:00"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not say %q:\n%s", want, text)
		}
	}
	for id, want := range map[string]string{"prev": "start=2025-03-03", "next": "start=2025-03-17"} {
		if a := find(page, "a", "id", id); a == nil || !strings.Contains(a.attr["href"], want) || !strings.Contains(a.attr["href"], "tz=Europe%2FBerlin") {
			t.Errorf("link %s = %v, want one to %s keeping tz", id, a, want)
		}
	}

	// New York, the week of Saturday 8 March: Monday 3 March 00:00 EST
	// (05:00Z) to Monday 10 March 00:00 EDT (04:00Z), 167 hours; dave
	// alone (and a name that is markup, unknown), four hours, tentative
	// meetings free: his two blocks of each weekday.
	page = browser.dom(t, base+"/team?user=dave&user="+url.QueryEscape("<b>x</b>")+"&start=2025-03-08&tz=America/New_York&duration=PT4H&tentative=free")
	checkWindow(t, page, "2025-03-03T05:00:00Z", "2025-03-10T04:00:00Z")
	want = nil
	off("dave", "03T05:00/03T09:00", "03T13:00/03T14:00", "03T18:00/04T09:00", "04T13:00/04T14:00", "04T18:00/05T09:00",
		"05T13:00/05T14:00", "05T18:00/06T09:00", "06T13:00/06T14:00", "06T18:00/07T09:00", "07T13:00/07T14:00", "07T18:00/10T04:00")
	checkBlocks(t, page, "2025-03-", want)
	checkSlots(t, page, "2025-03-", "03T09:00/03T13:00", "03T14:00/03T18:00", "04T09:00/04T13:00", "04T14:00/04T18:00", "05T09:00/05T13:00",
		"05T14:00/05T18:00", "06T09:00/06T13:00", "06T14:00/06T18:00", "07T09:00/07T13:00", "07T14:00/07T18:00")
	if e := find(page, "b"); e != nil {
		t.Errorf("a member name became markup: %v", e)
	}
	if e := find(page, "div", "data-member", "<b>x</b>"); e == nil || e.attr["data-status"] != "no-authority" {
		t.Errorf("the row of <b>x</b>: %v", e)
	}
	text = allText(page)
	for _, want := range []string{"<b>x</b>", "Sun 9 Mar", "times in America/New_York", "10 common free times of 4 hours", "Mon 3 Mar, 04:00–08:00"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not say %q:\n%s", want, text)
		}
	}
	if in := find(page, "input", "id", "tentative"); in == nil || !hasAttr(in, "checked") {
		t.Errorf("tentative=free not shown checked: %v", in)
	}

	// No start and no tz: this week by the server's clock (Thursday 6
	// March 2025), in the browser's zone (the test runs it with TZ=UTC).
	page = browser.dom(t, base+"/team/crew")
	checkWindow(t, page, "2025-03-03T00:00:00Z", "2025-03-10T00:00:00Z")
	if text := allText(page); !strings.Contains(text, "times in UTC") {
		t.Errorf("the page does not use the browser's zone:\n%s", text)
	}

	dir := os.Getenv("FBPUB_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "team-page.png")
	browser.screenshot(t, base+"/team/crew?start=2025-03-12&tz=Europe/Berlin", shot)
	t.Logf("screenshot of the page: %s", shot)
}

// hasAttr reports whether e has the attribute name.
func hasAttr(e *element, name string) bool {
	_, ok := e.attr[name]
	return ok
}

// maps reports whether two string maps are equal.
func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkWindow checks the week the page asked for.
func checkWindow(t *testing.T, page []element, start, end string) {
	t.Helper()
	if m := find(page, "main"); m == nil || m.attr["data-state"] != "ready" {
		t.Fatalf("the page did not finish drawing: %v\n%s", m, allText(page))
	}
	if g := find(page, "div", "id", "grid"); g == nil || g.attr["data-window-start"] != start || g.attr["data-window-end"] != end {
		t.Errorf("the page's week: %v, want %s to %s", g, start, end)
	}
}

// checkBlocks compares the busy blocks of the page with want, each
// "user FBTYPE DDTHH:MM/DDTHH:MM" (UTC, after prefix).
func checkBlocks(t *testing.T, page []element, prefix string, want []string) {
	t.Helper()
	var got []string
	for _, e := range page {
		if _, ok := e.attr["data-fbtype"]; ok {
			got = append(got, e.attr["data-user"]+" "+e.attr["data-fbtype"]+" "+short(prefix, e.attr["data-start"])+"/"+short(prefix, e.attr["data-end"]))
		}
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("busy blocks:\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
}

// checkSlots compares the highlighted slots of the page with want.
func checkSlots(t *testing.T, page []element, prefix string, want ...string) {
	t.Helper()
	var got []string
	for _, e := range page {
		if _, ok := e.attr["data-slot-start"]; ok {
			got = append(got, short(prefix, e.attr["data-slot-start"])+"/"+short(prefix, e.attr["data-slot-end"]))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("slots:\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
}

// short turns 2025-03-10T15:00:00Z into 10T15:00 (after prefix "2025-03-");
// anything else is returned whole, so that it shows in a diff.
func short(prefix, s string) string {
	if rest, ok := strings.CutPrefix(s, prefix); ok && strings.HasSuffix(rest, ":00Z") && len(rest) == 12 {
		return rest[:8]
	}
	return s
}

// element is an HTML element of a page with its attributes and the text
// directly inside it.
type element struct {
	name string
	attr map[string]string
	text string
}

// parseHTML reads the elements of a page with encoding/xml in its HTML
// mode (void elements closed, attributes without values allowed).
func parseHTML(t *testing.T, page string) []element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(page))
	d.Strict = false
	d.AutoClose = xml.HTMLAutoClose
	d.Entity = xml.HTMLEntity
	var out []element
	var open []int
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("page does not parse: %v\n%s", err, page)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := element{name: strings.ToLower(tok.Name.Local), attr: map[string]string{}}
			for _, a := range tok.Attr {
				name := a.Name.Local
				if a.Name.Space != "" {
					name = a.Name.Space + ":" + name
				}
				e.attr[strings.ToLower(name)] = a.Value
			}
			out = append(out, e)
			open = append(open, len(out)-1)
		case xml.EndElement:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		case xml.CharData:
			if len(open) > 0 {
				out[open[len(open)-1]].text += string(tok)
			}
		}
	}
}

// find returns the first element named name whose attributes have the
// given values (pairs), or nil.
func find(page []element, name string, attrs ...string) *element {
outer:
	for i, e := range page {
		if e.name != name {
			continue
		}
		for j := 0; j+1 < len(attrs); j += 2 {
			if e.attr[attrs[j]] != attrs[j+1] {
				continue outer
			}
		}
		return &page[i]
	}
	return nil
}

// allText is the text of a page, one element's text a line.
func allText(page []element) string {
	var b strings.Builder
	for _, e := range page {
		if s := strings.TrimSpace(e.text); s != "" {
			b.WriteString(s + "\n")
		}
	}
	return b.String()
}

// browser is a headless Chromium.
type browser struct{ path string }

// chromium finds Debian's chromium (testbed/install installs it): without
// it the test is skipped with a hint, or fails when CI is "true".
func chromium(t *testing.T) browser {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return browser{p}
		}
	}
	msg := "chromium not installed; ./testbed/install installs it (Debian's chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg + ", or set CI=true to make this fatal")
	return browser{}
}

// run runs the browser headless on a fresh profile with args, and
// returns what it printed.
func (b browser) run(t *testing.T, args ...string) []byte {
	t.Helper()
	profile, err := os.MkdirTemp("", "fbpub-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: helper processes may still write to the profile as
	// the browser exits.
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.path, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars", "--lang=en-GB", "--user-data-dir=" + profile}, args...)...)
	// The browser and its helpers are one process group, ended together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "TZ=UTC")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", b.path, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// dom loads a page, lets its script run, and returns its elements.
func (b browser) dom(t *testing.T, u string) []element {
	t.Helper()
	return parseHTML(t, string(b.run(t, "--virtual-time-budget=20000", "--dump-dom", u)))
}

// screenshot saves a PNG of a page.
func (b browser) screenshot(t *testing.T, u, file string) {
	t.Helper()
	b.run(t, "--virtual-time-budget=20000", "--window-size=1500,700", "--screenshot="+file, u)
	if fi, err := os.Stat(file); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot in %s: %v", file, err)
	}
}
