package calendar

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// decodeCases are hand-written inputs for the corners of iCalendar's line
// syntax, with what Decode answers: n calendars, or err.
var decodeCases = []struct {
	in  string
	n   int
	err error
	why string
}{
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, nil, "empty calendar"},
	{"BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR", 1, nil, "LF only, no final newline"},
	{"BEGIN:VCALENDAR\rVERSION:2.0\rEND:VCALENDAR\r", 0, ErrMalformed, "CR alone ends no line"},
	{"BEGIN:VCALENDAR\r\nX-A:a\rb\r\r\nEND:VCALENDAR\r\n", 1, nil, "a CR inside a value"},
	{"begin:vcalendar\r\nversion:2.0\r\nx-foo;tzid=a:b\r\nend:VCALENDAR\r\n", 1, nil, "names in lower case"},
	{"BEGIN:VCALENDAR\r\nEND:vcalendar\r\n", 1, nil, "END matched without case"},
	{"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "END of another component"},
	{"BEGIN:VEVENT\r\nEND:VEVENT\r\n", 0, ErrMalformed, "top level must be VCALENDAR"},
	{"BEGIN:VEVENT\r\nUID:x\r\n", 0, ErrMalformed, "cut short"},
	{"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", 0, ErrMalformed, "missing END"},
	{"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT", 0, ErrMalformed, "cut short inside a child"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n", 0, ErrMalformed, "a second component cut short"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n", 0, ErrMalformed, "a second calendar cut short"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n", 0, ErrMalformed, "a complete VEVENT after a calendar"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "extra END"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\ngarbage\r\n", 0, ErrMalformed, "text after the last END"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n\r\n\n\r\n", 1, nil, "empty lines after the last END"},
	{"\r\n\r\nBEGIN:VCALENDAR\r\n\r\nEND:VCALENDAR\r\n", 1, nil, "empty lines skipped"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n ", 1, nil, "a final space"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n\t", 1, nil, "a final tab"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n \r\n", 1, nil, "a final line of one space"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR  ", 1, nil, "END:VCALENDAR followed by spaces"},
	{"BEGIN:VCALENDAR\r\nEND:VCAL\r\n ENDAR\r\n", 1, nil, "folded END"},
	{"BEGIN:VCALENDAR\r\nEND:VCAL\r\n\tENDAR", 1, nil, "folded with a tab, no final newline"},
	{"BEGIN:VCALENDAR\r\nX-A:\xe2\x82\r\n \xac\r\nEND:VCALENDAR\r\n", 1, nil, "fold inside a UTF-8 sequence"},
	{"BEGIN:VCALENDAR\r\nX-\xc3\xa4:1\r\nX-\xff:2\r\nEND:VCALENDAR\r\n", 1, nil, "non-ASCII names"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\xff\r\n", 0, ErrMalformed, "invalid byte in END"},
	{"BEGIN:VCALENDAR\r\nBEGIN:\r\nEND:\r\nEND:VCALENDAR\r\n", 1, nil, "empty component name"},
	{"BEGIN:VCALENDAR\r\nX-A:\r\nEND:VCALENDAR\r\n", 1, nil, "empty value"},
	{"BEGIN:VCALENDAR\r\n:x\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "empty name"},
	{"BEGIN:VCALENDAR\r\nX-A\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "no colon"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a,b;c:d\":v\r\nEND:VCALENDAR\r\n", 1, nil, "quoted parameter value with , ; :"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a,\"b:c\",,d;Q=:v:w;x\r\nEND:VCALENDAR\r\n", 1, nil, "several values, one quoted, one empty; value with : and ;"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a;p=b;P=c,d:v\r\nEND:VCALENDAR\r\n", 1, nil, "a repeated parameter"},
	{"BEGIN:VCALENDAR\r\nX-A;=a:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "empty parameter name"},
	{"BEGIN:VCALENDAR\r\nX-A;P:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "parameter without '='"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "parameter value to the end of the line (go-ical panics)"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a,\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "trailing comma (go-ical panics)"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a\"b:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "text after a closing quote (go-ical panics)"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "unterminated quote"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a\"b:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "quote inside an unquoted value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=:v\r\nEND:VCALENDAR\r\n", 1, nil, "empty parameter value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"\":v\r\nEND:VCALENDAR\r\n", 1, nil, "empty quoted parameter value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a;:v\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "';' with no parameter"},
	{"BEGIN;X=1:VCALENDAR\r\nEND;Y=\"2\":VCALENDAR\r\n", 1, nil, "parameters on BEGIN and END"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 2, nil, "two calendars"},
	{"BEGIN:VCALENDAR\nEND:VCALENDAR\n\n\nBEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VCALENDAR\nEND:VCALENDAR\n", 3, nil, "three calendars, bare LF, blank lines between"},
	{"BEGIN:VCALENDAR\r\nBEGIN:A\r\nBEGIN:B\r\nBEGIN:C\r\nEND:C\r\nEND:B\r\nEND:A\r\nEND:VCALENDAR\r\n", 1, nil, "nesting"},
	{"\xef\xbb\xbfBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, nil, "a UTF-8 BOM"},
	{" BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 0, ErrMalformed, "a leading space is part of the first line"},
	{"\r\n BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, nil, "an empty line continued by a folded one"},
	{"", 0, ErrNoCalendar, "empty"},
	{"  \r\n\t\n", 0, ErrNoCalendar, "blank"},
	{"\xef\xbb\xbf\r\n", 0, ErrNoCalendar, "a BOM and a line break"},
}

// checkCategory fails unless err is exactly want: Decode's errors are its
// category values, which quote nothing of the input.
func checkCategory(t *testing.T, call string, err, want error) {
	t.Helper()
	if err != want {
		t.Errorf("%s: err = %v, want %v", call, err, want)
	}
}

func TestDecodeCases(t *testing.T) {
	for _, c := range decodeCases {
		cals, err := Decode([]byte(c.in))
		checkCategory(t, fmt.Sprintf("Decode(%q) (%s)", c.in, c.why), err, c.err)
		if len(cals) != c.n {
			t.Errorf("Decode(%q) (%s) = %d calendars, want %d", c.in, c.why, len(cals), c.n)
		}
	}
}

// TestDecodeValues checks what some lines decode to.
func TestDecodeValues(t *testing.T) {
	one := func(in string) *ical.Component {
		t.Helper()
		cals, err := Decode([]byte(in))
		if err != nil || len(cals) != 1 {
			t.Fatalf("Decode(%q) = %d calendars, %v; want 1", in, len(cals), err)
		}
		return cals[0].Component
	}
	params := func(p *ical.Prop) map[string][]string { return map[string][]string(p.Params) }

	c := one("BEGIN:VCALENDAR\r\nx-a;p=a,\"b:c\",,d;p=e:v:w\r\nEND:VCALENDAR\r\n")
	if p := c.Props.Get("X-A"); p == nil || !reflect.DeepEqual(params(p), map[string][]string{"P": {"a", "b:c", "", "d", "e"}}) || p.Value != "v:w" {
		t.Errorf("parameter values: %+v", p)
	}
	c = one("BEGIN:VCALENDAR\r\nX-A;P=\"a,b;c:d\":v\r\nEND:VCALENDAR\r\n")
	if p := c.Props.Get("X-A"); p == nil || p.Params.Get("P") != "a,b;c:d" || p.Value != "v" {
		t.Errorf("quoted parameter value: %+v", p)
	}
	c = one("BEGIN:VCALENDAR\r\nX-A:\xe2\x82\r\n \xac\r\nDESCRIPTION:a\r\n\tb\r\nEND:VCALENDAR\r\n")
	if v := c.Props.Get("X-A").Value; v != "€" {
		t.Errorf("value folded inside a UTF-8 sequence = %q, want €", v)
	}
	if v := c.Props.Get("DESCRIPTION").Value; v != "ab" {
		t.Errorf("value folded with a tab = %q, want ab", v)
	}
	c = one("begin:vcalendar\r\nbegin:vevent\r\nsummary;language=de:x\r\nend:vevent\r\nend:vcalendar\r\n")
	if c.Name != ical.CompCalendar || len(c.Children) != 1 || c.Children[0].Name != ical.CompEvent {
		t.Errorf("component names not upper-cased: %q %d", c.Name, len(c.Children))
	} else if p := c.Children[0].Props.Get(ical.PropSummary); p == nil || p.Params.Get("LANGUAGE") != "de" {
		t.Errorf("property and parameter names not upper-cased: %+v", c.Children[0].Props)
	}
	c = one("BEGIN:VCALENDAR\r\nX:1\r\nX:2\r\nBEGIN:VEVENT\r\nX:3\r\nEND:VEVENT\r\nX:4\r\nEND:VCALENDAR\r\n")
	var xs []string
	for _, p := range c.Props.Values("X") {
		xs = append(xs, p.Value)
	}
	if !reflect.DeepEqual(xs, []string{"1", "2", "4"}) || len(c.Children) != 1 || c.Children[0].Props.Get("X").Value != "3" {
		t.Errorf("repeated properties around a child: %v, %d children", xs, len(c.Children))
	}
	c = one("BEGIN:VCALENDAR\r\nX-A:a\rb\r\r\nEND:VCALENDAR\r\n")
	if v := c.Props.Get("X-A").Value; v != "a\rb\r" {
		t.Errorf("value with CRs = %q, want %q", v, "a\rb\r")
	}
}

// TestDecodeLimits checks the bounds on size and on components.
func TestDecodeLimits(t *testing.T) {
	build := func(calendars, events int, tail string) []byte {
		var b bytes.Buffer
		for c := range calendars {
			b.WriteString("BEGIN:VCALENDAR\r\n")
			for range events {
				b.WriteString("BEGIN:VEVENT\r\nEND:VEVENT\r\n")
			}
			if c < calendars-1 {
				b.WriteString("END:VCALENDAR\r\n")
			}
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	for _, c := range []struct {
		calendars, events int
		tail              string
		want              error
	}{
		{1, maxComponents - 1, "END:VCALENDAR\r\n", nil},
		{1, maxComponents, "END:VCALENDAR\r\n", ErrTooLarge},
		{2, maxComponents / 2, "END:VCALENDAR\r\n", ErrTooLarge},
		{1, maxComponents + 5, "", ErrMalformed}, // cut short
		{1, maxComponents + 5, "END:VCALENDAR\r\nX\r\n", ErrTooLarge},
	} {
		cals, err := Decode(build(c.calendars, c.events, c.tail))
		checkCategory(t, fmt.Sprintf("%d calendars of %d events, tail %q", c.calendars, c.events, c.tail), err, c.want)
		if c.want == nil && len(cals) != c.calendars {
			t.Errorf("%d calendars of %d events: %d calendars", c.calendars, c.events, len(cals))
		}
	}
	big := append([]byte("BEGIN:VCALENDAR\r\nX-A:"), bytes.Repeat([]byte("a"), MaxPayload)...)
	if _, err := Decode(big); err != ErrTooLarge {
		t.Errorf("Decode of %d octets: err = %v, want ErrTooLarge", len(big), err)
	}
}

// TestDecodeLongLastLine: text after the last END is an error whatever its
// length. go-ical reads through a 4096-octet buffer and loses a last
// line, without a line break, that ends exactly at the end of one of its
// pieces; it then answers io.EOF, which alone would look like the end of
// the text.
func TestDecodeLongLastLine(t *testing.T) {
	const head = "BEGIN:VCALENDAR\r\nX-A:1\r\nEND:VCALENDAR\r\n"
	for n := 4096 - 8; n <= 2*4096+8; n++ {
		if n > 4096+8 && n < 2*4096-8 {
			continue
		}
		data := []byte(head + "X" + strings.Repeat("b", n-1))
		cals, err := Decode(data)
		checkCategory(t, fmt.Sprintf("a last line of %d octets", n), err, ErrMalformed)
		if len(cals) != 0 {
			t.Errorf("a last line of %d octets: %d calendars", n, len(cals))
		}
	}
}

// TestGoICalStillWrong pins down each defect of go-ical that Decode and
// Text correct. When one of these fails, go-ical has been fixed: drop the
// correction (and this check) from the wrapper.
func TestGoICalStillWrong(t *testing.T) {
	goical := func(in string) (n int, err error, panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		dec := ical.NewDecoder(strings.NewReader(in))
		for {
			_, err := dec.Decode()
			if err != nil {
				return n, err, false
			}
			n++
		}
	}
	const cal = "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
	for _, in := range []string{
		"BEGIN:VCALENDAR\r\nX-A;P=a\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nX-A;P=a,\r\nEND:VCALENDAR\r\n",
		"BEGIN:VCALENDAR\r\nX-A;P=\"a\"b:v\r\nEND:VCALENDAR\r\n",
	} {
		if _, _, panicked := goical(in); !panicked {
			t.Errorf("go-ical no longer panics on %q", in)
		}
	}
	if _, err, _ := goical("\xef\xbb\xbf" + cal); err == io.EOF {
		t.Error("go-ical now reads a calendar after a BOM")
	}
	if n, _, _ := goical(cal + " "); n != 0 {
		t.Error("go-ical now reads a calendar followed by a space")
	}
	if n, err, _ := goical(cal + "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"); n != 1 || err != io.EOF {
		t.Errorf("go-ical now answers a calendar cut short with %d calendars and %v, not io.EOF", n, err)
	}
	if n, err, _ := goical(cal + "X" + strings.Repeat("b", 4095)); n != 1 || err != io.EOF {
		t.Errorf("go-ical now reads a last line of 4096 octets (%d calendars, %v)", n, err)
	}
	p := ical.NewProp(ical.PropSummary)
	p.Value = "Budget, Q2"
	if s, _ := p.Text(); s != "Budget" {
		t.Errorf("go-ical's Prop.Text of an unescaped comma now gives %q", s)
	}
}

func TestText(t *testing.T) {
	for _, c := range []struct{ value, want string }{
		{"Team sync", "Team sync"},
		{"Budget, Q2", "Budget, Q2"},
		{`Budget\, Q2`, "Budget, Q2"},
		{`a\;b\\c\nd\Ne`, "a;b\\c\nd\ne"},
		{`unknown \x escape`, "unknown x escape"},
		{`trailing \`, `trailing \`},
		{"", ""},
	} {
		p := ical.NewProp(ical.PropSummary)
		p.Value = c.value
		if got := Text(p); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.value, got, c.want)
		}
	}
	if got := Text(nil); got != "" {
		t.Errorf("Text(nil) = %q", got)
	}
}

// FuzzDecode: Decode never panics, answers only its error categories,
// never returns more than maxComponents components, and what it returns
// round-trips: encoded and decoded again it is the same, wherever the
// encoder writes a value unchanged (it drops a CR in a value, and controls
// and invalid UTF-8 in a parameter value).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.ics")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	for _, c := range decodeCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cals, err := Decode(data)
		switch err {
		case nil:
		case ErrMalformed, ErrNoCalendar, ErrTooLarge:
			if cals != nil {
				t.Fatalf("Decode(%q) = %d calendars and %v", data, len(cals), err)
			}
			return
		default:
			t.Fatalf("Decode(%q): err = %v, not a category", data, err)
		}
		if len(cals) == 0 {
			t.Fatalf("Decode(%q): no calendars and no error", data)
		}
		n := 0
		for _, cal := range cals {
			n += countComponents(cal.Component)
		}
		if n > maxComponents {
			t.Fatalf("Decode(%q): %d components", data, n)
		}
		for _, cal := range cals {
			if !encodesVerbatim(cal.Component) {
				continue
			}
			out, err := Marshal(cal.Component)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			again, err := Decode(out)
			if err != nil || len(again) != 1 {
				t.Fatalf("Decode(%q): the encoding %q decodes to %d calendars, %v", data, out, len(again), err)
			}
			if !sameComponent(cal.Component, again[0].Component) {
				t.Fatalf("Decode(%q): not the same after encoding %q and decoding again", data, out)
			}
		}
	})
}

// encodesVerbatim reports whether the encoder writes every value and
// parameter value of c as it is.
func encodesVerbatim(c *ical.Component) bool {
	for _, ps := range c.Props {
		for _, p := range ps {
			if strings.ContainsAny(p.Value, "\r\n") {
				return false
			}
			for _, vs := range p.Params {
				for _, v := range vs {
					if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r == '"' || r < 0x20 && r != '\t' || r == 0x7f }) {
						return false
					}
				}
			}
		}
	}
	for _, ch := range c.Children {
		if !encodesVerbatim(ch) {
			return false
		}
	}
	return true
}

func sameComponent(a, b *ical.Component) bool {
	if a.Name != b.Name || len(a.Children) != len(b.Children) ||
		!maps.EqualFunc(a.Props, b.Props, func(x, y []ical.Prop) bool {
			return slices.EqualFunc(x, y, func(p, q ical.Prop) bool {
				return p.Name == q.Name && p.Value == q.Value &&
					maps.EqualFunc(p.Params, q.Params, func(u, v []string) bool { return reflect.DeepEqual(u, v) })
			})
		}) {
		return false
	}
	for i := range a.Children {
		if !sameComponent(a.Children[i], b.Children[i]) {
			return false
		}
	}
	return true
}

// TestDecodeReusesReader checks that the reader go-ical decodes through
// is reused, not made per call (4 KiB each, most of what decoding a
// small event allocated), and that a reader returned by a decode that
// go-ical panicked in serves the next decode as well as any other.
func TestDecodeReusesReader(t *testing.T) {
	const panics = "BEGIN:VCALENDAR\r\nX-A;P=a,\r\nEND:VCALENDAR\r\n"
	for range 3 {
		if _, err := Decode([]byte(panics)); err != ErrMalformed {
			t.Fatalf("Decode(%q) = %v, want ErrMalformed", panics, err)
		}
		cals, err := Decode([]byte(smallEvent))
		if err != nil || len(cals) != 1 || len(cals[0].Children) != 1 {
			t.Fatalf("Decode(smallEvent) after a panic = %d calendars, %v", len(cals), err)
		}
	}
	const tiny = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	const n = 200
	data := []byte(tiny)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		if _, err := Decode(data); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// go-ical's tree of tiny takes well under 4 KiB; a reader per call
	// would add 4 KiB to each.
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per >= 4096 {
		t.Errorf("Decode(%q) allocates %d bytes, want < 4096 (a bufio.Reader per call?)", tiny, per)
	}
}
