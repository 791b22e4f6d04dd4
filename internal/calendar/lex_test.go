package calendar

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/emersion/go-ical"
)

// decodeGoICal is the reference decodeFast must agree with: Decode's loop
// over go-ical's decoder, without Decode's preliminaries (size limit, BOM,
// blank text), and with nil Params for properties without parameters, as
// decodeFast gives them (go-ical gives empty maps).
func decodeGoICal(data []byte) (cals []*ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cals, err = nil, ErrMalformed
		}
	}()
	dec := ical.NewDecoder(bytes.NewReader(data))
	n := 0
	for {
		cal, err := dec.Decode()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, ErrMalformed
		}
		n += countComponents(cal.Component)
		if n > maxComponents {
			return nil, ErrTooLarge
		}
		nilEmptyParams(cal.Component)
		cals = append(cals, cal)
	}
	return cals, nil
}

func nilEmptyParams(c *ical.Component) {
	for _, ps := range c.Props {
		for i := range ps {
			if len(ps[i].Params) == 0 {
				ps[i].Params = nil
			}
		}
	}
	for _, child := range c.Children {
		nilEmptyParams(child)
	}
}

// diffDecode reports how decodeFast and go-ical disagree on data, or "".
func diffDecode(data []byte) (accepted bool, diff string) {
	want, werr := decodeGoICal(data)
	got, gerr := decodeFast(data)
	if gerr != werr {
		return werr == nil, fmt.Sprintf("error %v, go-ical %v", gerr, werr)
	}
	if werr != nil {
		return false, ""
	}
	if !reflect.DeepEqual(got, want) {
		return true, fmt.Sprintf("calendars differ:\n got %s\nwant %s", dumpCals(got), dumpCals(want))
	}
	return true, ""
}

func dumpCals(cals []*ical.Calendar) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calendars", len(cals))
	for _, c := range cals {
		dumpComp(&b, c.Component, "  ")
	}
	return b.String()
}

func dumpComp(b *strings.Builder, c *ical.Component, indent string) {
	fmt.Fprintf(b, "\n%s%q props=%d(nil=%v) children=%d(nil=%v)", indent, c.Name, len(c.Props), c.Props == nil, len(c.Children), c.Children == nil)
	for name, ps := range c.Props {
		for _, p := range ps {
			// nil or empty alike: decodeFast gives nil Params where
			// go-ical gives an empty map (see lex.go).
			fmt.Fprintf(b, "\n%s  %q=%q %q params=%q", indent, name, p.Name, p.Value, map[string][]string(p.Params))
		}
	}
	for _, ch := range c.Children {
		dumpComp(b, ch, indent+"  ")
	}
}

// readFuzzFile returns the values of a "go test fuzz v1" file.
func readFuzzFile(t testing.TB, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", name)
	}
	var vals []string
	for _, l := range lines[1:] {
		open, close := strings.IndexByte(l, '('), strings.LastIndexByte(l, ')')
		if open < 0 || close < open {
			t.Fatalf("%s: cannot read %q", name, l)
		}
		v, err := strconv.Unquote(l[open+1 : close])
		if err != nil {
			t.Fatalf("%s: %q: %v", name, l, err)
		}
		vals = append(vals, v)
	}
	return vals
}

type namedInput struct {
	name string
	data []byte
}

// corpusInputs gathers every calendar payload the repository's tests use:
// the client corpus (messages, and the calendar parts inside them), the
// committed fuzz corpora, and the events FuzzRecurrence builds from its
// corpus.
func corpusInputs(t testing.TB) []namedInput {
	t.Helper()
	var in []namedInput
	addMessage := func(name string, data []byte) {
		in = append(in, namedInput{name, data})
		if parts, err := MessageParts(data); err == nil {
			for i, p := range parts {
				in = append(in, namedInput{fmt.Sprintf("%s#part%d", name, i), p.Body})
				if u := ToUTF8(p.Params["charset"], p.Body); !bytes.Equal(u, p.Body) {
					in = append(in, namedInput{fmt.Sprintf("%s#part%d-utf8", name, i), u})
				}
			}
		}
	}
	files, _ := filepath.Glob("testdata/corpus/*.*")
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		addMessage(f, b)
	}
	for _, dir := range []string{"FuzzMessage", "FuzzMessageParts", "FuzzEncode", "FuzzDecodeFast"} {
		files, _ := filepath.Glob(filepath.Join("testdata/fuzz", dir, "*"))
		for _, f := range files {
			for _, v := range readFuzzFile(t, f) {
				addMessage(f, []byte(v))
			}
		}
	}
	files, _ = filepath.Glob("testdata/fuzz/FuzzRecurrence/*")
	for _, f := range files {
		v := readFuzzFile(t, f)
		if len(v) != 4 {
			continue
		}
		in = append(in, namedInput{f, []byte(recurrenceICS(v[0], v[1], v[2], v[3]))})
	}
	for i, c := range lexCases {
		in = append(in, namedInput{fmt.Sprintf("lexCases[%d]", i), []byte(c.in)})
	}
	return in
}

// variants derives inputs that stress the line handling from one input.
func variants(data []byte) map[string][]byte {
	v := map[string][]byte{
		"raw":      data,
		"nobom":    bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")),
		"lf":       bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")),
		"crlf":     bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")),
		"cr":       bytes.ReplaceAll(data, []byte("\n"), []byte("\r")),
		"lower":    bytes.ToLower(data),
		"refolded": refold(data, 7),
		"unfolded": bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n "), nil), []byte("\n "), nil),
		"trailing": append(append([]byte{}, data...), " \r\n\r\nX"...),
	}
	for i := 1; i <= 8; i++ {
		cut := len(data) * i / 9
		v[fmt.Sprintf("prefix%d", i)] = data[:cut]
	}
	if len(data) > 2 {
		v["-1"] = data[:len(data)-1]
		v["-2"] = data[:len(data)-2]
	}
	return v
}

// refold folds every line after every n bytes, with CRLF and a space or
// a tab, whether or not that splits a UTF-8 sequence.
func refold(data []byte, n int) []byte {
	var b bytes.Buffer
	col := 0
	for i, c := range data {
		if c == '\n' {
			col = 0
		} else if col == n {
			if i%2 == 0 {
				b.WriteString("\r\n ")
			} else {
				b.WriteString("\r\n\t")
			}
			col = 0
		}
		b.WriteByte(c)
		col++
	}
	return b.Bytes()
}

// TestDecodeFastCorpus compares decodeFast with go-ical on every payload
// of the repository's corpora and on variants of each.
func TestDecodeFastCorpus(t *testing.T) {
	inputs := corpusInputs(t)
	compared, accepted, rawInputs, rawAccepted, rawCals := 0, 0, 0, 0, 0
	for _, in := range inputs {
		for vname, data := range variants(in.data) {
			ok, diff := diffDecode(data)
			compared++
			if ok {
				accepted++
			}
			if vname == "raw" {
				rawInputs++
				if ok {
					rawAccepted++
					if cals, _ := decodeFast(data); len(cals) > 0 {
						rawCals++
					}
				}
			}
			if diff != "" {
				t.Errorf("%s (%s), input %q:\n%s", in.name, vname, clipInput(data), diff)
			}
		}
	}
	t.Logf("%d corpus inputs, %d accepted by go-ical (%d with at least one calendar); with variants %d inputs compared, %d accepted by go-ical",
		rawInputs, rawAccepted, rawCals, compared, accepted)
}

func clipInput(b []byte) []byte {
	if len(b) > 300 {
		return append(b[:300:300], "…"...)
	}
	return b
}

// lexCases are hand-written inputs for the corners of go-ical's decoder.
// n is how many calendars go-ical (and so decodeFast) returns, -1 for an
// error; every case is also compared with go-ical itself.
var lexCases = []struct {
	in  string
	n   int
	why string
}{
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, "empty calendar"},
	{"BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR", 1, "LF only, no final newline"},
	{"BEGIN:VCALENDAR\rVERSION:2.0\rEND:VCALENDAR\r", 0, "CR alone ends no line: one line, BEGIN with a long value, then io.EOF"},
	{"BEGIN:VCALENDAR\r\nX-A:a\rb\r\r\nEND:VCALENDAR\r\n", 1, "a CR inside a value, and one of two CRs before LF, stay"},
	{"begin:vcalendar\r\nversion:2.0\r\nx-foo;tzid=a:b\r\nend:VCALENDAR\r\n", 1, "names, parameter names and component names upper-cased"},
	{"BEGIN:VCALENDAR\r\nEND:vcalendar\r\n", 1, "END matched without case"},
	{"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", -1, "END of another component"},
	{"BEGIN:VEVENT\r\nEND:VEVENT\r\n", -1, "top level must be VCALENDAR"},
	{"BEGIN:VEVENT\r\nUID:x\r\n", 0, "top level VEVENT cut short: io.EOF, no calendar"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\n", 1, "a cut-short component after a calendar is dropped"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n", -1, "a complete VEVENT after a calendar"},
	{"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", 0, "missing END: io.EOF"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nEND:VCALENDAR\r\n", -1, "extra END"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\ngarbage\r\n", -1, "text after the last END"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n\r\n\n\r\n", 1, "empty lines after the last END"},
	{"\r\n\r\nBEGIN:VCALENDAR\r\n\r\nEND:VCALENDAR\r\n", 1, "empty lines skipped"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n ", 0, "a final space continues END:VCALENDAR and meets io.EOF: the calendar is lost"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n \r\n", 1, "a continuation line of one space adds nothing"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n  ", -1, "END:VCALENDAR followed by a space"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n\t", 0, "a final tab: the same"},
	{"BEGIN:VCALENDAR\r\nEND:VCAL\r\n ENDAR\r\n", 1, "folded END"},
	{"BEGIN:VCALENDAR\r\nEND:VCAL\r\n\tENDAR", 1, "folded with a tab, no final newline"},
	{"BEGIN:VCALENDAR\r\nX-A:\xe2\x82\r\n \xac\r\nEND:VCALENDAR\r\n", 1, "fold inside a UTF-8 sequence"},
	{"BEGIN:VCALENDAR\r\nX-\xc3\xa4:1\r\nX-\xff:2\r\nEND:VCALENDAR\r\n", 1, "non-ASCII names go through strings.ToUpper (invalid bytes become U+FFFD)"},
	{"BEG\xc4\xb1N:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, "dotless i upper-cases to I: BEGıN is BEGIN"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\xff\r\n", -1, "invalid byte in END"},
	{"BEGIN:VCALENDAR\r\nBEGIN:\xff\r\nEND:\xef\xbf\xbd\r\nEND:VCALENDAR\r\n", 1, "component name upper-cased with U+FFFD, END compared with EqualFold"},
	{"BEGIN:VCALENDAR\r\nBEGIN:\r\nEND:\r\nEND:VCALENDAR\r\n", 1, "empty component name"},
	{"BEGIN:VCALENDAR\r\nX-A:\r\nEND:VCALENDAR\r\n", 1, "empty value"},
	{"BEGIN:VCALENDAR\r\n:x\r\nEND:VCALENDAR\r\n", -1, "empty name"},
	{"BEGIN:VCALENDAR\r\nX-A\r\nEND:VCALENDAR\r\n", -1, "no colon"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a,b;c:d\":v\r\nEND:VCALENDAR\r\n", 1, "quoted parameter value with , ; :"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a,\"b:c\",,d;Q=:v:w;x\r\nEND:VCALENDAR\r\n", 1, "several values, one quoted, one empty; value with : and ;"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a;p=b;P=c,d:v\r\nEND:VCALENDAR\r\n", 1, "a repeated parameter collects its values"},
	{"BEGIN:VCALENDAR\r\nX-A;P:Q=a:v\r\nEND:VCALENDAR\r\n", 1, "a parameter name runs to '=' even past ':'"},
	{"BEGIN:VCALENDAR\r\nX-A;P\"=a:v\r\nEND:VCALENDAR\r\n", 1, "a quote in a parameter name"},
	{"BEGIN:VCALENDAR\r\nX-A;=a:v\r\nEND:VCALENDAR\r\n", -1, "empty parameter name"},
	{"BEGIN:VCALENDAR\r\nX-A;P:v\r\nEND:VCALENDAR\r\n", -1, "parameter without '='"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a\r\nEND:VCALENDAR\r\n", -1, "parameter value to the end of the line: go-ical panics"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a,\r\nEND:VCALENDAR\r\n", -1, "trailing comma: go-ical panics"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a\"b:v\r\nEND:VCALENDAR\r\n", -1, "text after a closing quote: go-ical panics"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"a:v\r\nEND:VCALENDAR\r\n", -1, "unterminated quote"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a\"b:v\r\nEND:VCALENDAR\r\n", -1, "quote inside an unquoted value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=:v\r\nEND:VCALENDAR\r\n", 1, "empty parameter value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=\"\":v\r\nEND:VCALENDAR\r\n", 1, "empty quoted parameter value"},
	{"BEGIN:VCALENDAR\r\nX-A;P=a;:v\r\nEND:VCALENDAR\r\n", -1, "';' with no parameter"},
	{"BEGIN;X=1:VCALENDAR\r\nEND;Y=\"2\":VCALENDAR\r\n", 1, "parameters on BEGIN and END are ignored"},
	{"BEGIN:VCALENDAR\r\nX:1\r\nX:2\r\nY:3\r\nX:4\r\nBEGIN:VEVENT\r\nX:5\r\nEND:VEVENT\r\nY:6\r\nEND:VCALENDAR\r\n", 1, "repeated names, props after a child"},
	{"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 2, "two calendars"},
	{"BEGIN:VCALENDAR\r\nBEGIN:A\r\nBEGIN:B\r\nBEGIN:C\r\nEND:C\r\nEND:B\r\nEND:A\r\nEND:VCALENDAR\r\n", 1, "nesting"},
	{"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT", 0, "cut short inside a child"},
	{"\xef\xbb\xbfBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", -1, "a BOM is part of the first name (Decode strips it first)"},
	{" BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", -1, "a leading space is part of the first line"},
	{"\r\n BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", 1, "an empty line continued by a folded one"},
	{"", 0, "empty input: no calendar, no error"},
	{"   ", -1, "blank"},
	{"\n", 0, "one empty line"},
}

func TestDecodeFastCases(t *testing.T) {
	for i, c := range lexCases {
		cals, err := decodeFast([]byte(c.in))
		got := len(cals)
		if err != nil {
			got = -1
		}
		if got != c.n {
			t.Errorf("case %d (%s): %d calendars, err %v; want %d", i, c.why, len(cals), err, c.n)
		}
		if _, diff := diffDecode([]byte(c.in)); diff != "" {
			t.Errorf("case %d (%s) %q: %s", i, c.why, c.in, diff)
		}
	}
}

// TestDecodeFastQuirks pins down what some of go-ical's odd answers are.
func TestDecodeFastQuirks(t *testing.T) {
	one := func(in string) *ical.Component {
		t.Helper()
		cals, err := decodeFast([]byte(in))
		if err != nil || len(cals) != 1 {
			t.Fatalf("%q: %d calendars, %v", in, len(cals), err)
		}
		return cals[0].Component
	}
	c := one("BEGIN:VCALENDAR\r\nX-A;P:Q=a:v\r\nEND:VCALENDAR\r\n")
	if got := c.Props["X-A"][0]; !reflect.DeepEqual(map[string][]string(got.Params), map[string][]string{"P:Q": {"a"}}) || got.Value != "v" {
		t.Errorf("parameter name with a colon: %+v", got)
	}
	c = one("BEGIN:VCALENDAR\r\nx-a;p=a,\"b:c\",,d;p=e:v:w\r\nEND:VCALENDAR\r\n")
	if got := c.Props["X-A"][0]; !reflect.DeepEqual(map[string][]string(got.Params), map[string][]string{"P": {"a", "b:c", "", "d", "e"}}) || got.Value != "v:w" {
		t.Errorf("parameter values: %+v", got)
	}
	c = one("BEGIN:VCALENDAR\r\nBEGIN:\xff\r\nEND:\r\n \xff\r\nEND:VCALENDAR\r\n")
	if c.Children[0].Name != "\uFFFD" {
		t.Errorf("component name %q", c.Children[0].Name)
	}
	// Params are nil without parameters, and a map of each property's
	// own with them, which may be written; Children stay nil; the Props
	// slices do not share space an append could overwrite.
	c = one("BEGIN:VCALENDAR\r\nX;A=1:1\r\nY:2\r\nX;A=1:3\r\nEND:VCALENDAR\r\n")
	if c.Children != nil {
		t.Error("Children not nil")
	}
	x := c.Props["X"]
	if y := c.Props["Y"][0]; y.Params != nil {
		t.Errorf("Y's Params = %#v, want nil", y.Params)
	}
	x[0].Params.Set("TZID", "a")
	if x[1].Params.Get("TZID") != "" {
		t.Error("a parameter set on one property appeared on another")
	}
	c.Props["X"] = append(x, ical.Prop{Name: "X", Value: "new"})
	if y := c.Props["Y"]; len(y) != 1 || y[0].Value != "2" || len(y[0].Params) != 0 {
		t.Errorf("append to one name changed another: %+v", y)
	}
	// The last line lost to io.EOF: after a final continuation space, and
	// when bufio hands a last line without newline out in pieces of which
	// the last ends at the end of the text.
	lost := "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nX-B:"
	for n, want := range map[int]int{bufSize - 1: 0, bufSize: 1, bufSize + 1: 0, 2 * bufSize: 1} {
		cals, err := decodeFast([]byte(lost + strings.Repeat("b", n-len("X-B:"))))
		if got := len(cals); got != want || (want == 0) != (err != nil) {
			t.Errorf("last line of %d bytes: %d calendars, %v; want %d", n, got, err, want)
		}
	}
	// With a CR as the last byte of the piece, bufio keeps it back and
	// the line is not lost.
	b := []byte(lost + strings.Repeat("b", bufSize-len("X-B:")))
	b[len(b)-1] = '\r'
	if cals, err := decodeFast(b); err == nil {
		t.Errorf("last line of %d bytes ending in CR: %d calendars, no error", bufSize, len(cals))
	}
	if cals, err := decodeFast([]byte("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n ")); err != nil || len(cals) != 0 {
		t.Errorf("final space: %d calendars, %v", len(cals), err)
	}
}

// TestDecodeFastLongLines checks lines around the size of go-ical's read
// buffer, where bufio.Reader.ReadLine hands a line out in pieces: go-ical
// loses a last line, without newline, that ends exactly at the end of a
// piece.
func TestDecodeFastLongLines(t *testing.T) {
	// A complete calendar, then a long line that go-ical either reads
	// (and rejects: no BEGIN) or loses to io.EOF (and accepts the
	// calendar). Long parameter values would do as well, but go-ical
	// builds those one byte at a time, in quadratic time.
	head := "BEGIN:VCALENDAR\r\nX-A:1\r\nEND:VCALENDAR\r\n"
	for _, size := range []int{bufSize - 2, bufSize - 1, bufSize, bufSize + 1, 2*bufSize - 1, 2 * bufSize, 2*bufSize + 1, 3*bufSize - 1, 3 * bufSize} {
		for _, crAt := range []int{-1, bufSize - 1, bufSize - 2, 2*bufSize - 2, 2*bufSize - 1} {
			for _, end := range []string{"", "\r", "\n", "\r\n", "\r\n ", "\n\t", "\r\n \r\n"} {
				for _, fold := range []bool{false, true} {
					line := []byte("X-B:" + strings.Repeat("a", size-len("X-B:")))
					if crAt > 4 && crAt < len(line) {
						line[crAt] = '\r'
					}
					var in []byte
					if fold {
						// The long line is a continuation line.
						in = append([]byte(head+"X-B:a\r\n "), line[len("X-B:"):]...)
					} else {
						in = append([]byte(head), line...)
					}
					in = append(in, end...)
					for _, data := range [][]byte{in, in[len(head):]} {
						if _, diff := diffDecode(data); diff != "" {
							t.Errorf("size %d, CR at %d, end %q, fold %v: %s", size, crAt, end, fold, diff)
						}
					}
				}
			}
		}
	}
	// Long lines of every length near the boundary as the whole input.
	for n := bufSize - 8; n <= bufSize+8; n++ {
		for _, tail := range []string{"", "\r", "\r\n"} {
			data := []byte("BEGIN:VCALENDAR\r\nEND;X=" + strings.Repeat("b", n) + ":VCALENDAR" + tail)
			if _, diff := diffDecode(data); diff != "" {
				t.Errorf("n %d tail %q: %s", n, tail, diff)
			}
			data = []byte("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nX" + strings.Repeat("b", n) + tail)
			if _, diff := diffDecode(data); diff != "" {
				t.Errorf("trailing n %d tail %q: %s", n, tail, diff)
			}
		}
	}
}

// TestDecodeFastLimit checks the component bound lands where Decode's does.
func TestDecodeFastLimit(t *testing.T) {
	build := func(events int, tail string) []byte {
		var b bytes.Buffer
		b.WriteString("BEGIN:VCALENDAR\r\n")
		for i := 0; i < events; i++ {
			b.WriteString("BEGIN:VEVENT\r\nEND:VEVENT\r\n")
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	for _, c := range []struct {
		events int
		tail   string
		want   error
	}{
		{maxComponents - 1, "END:VCALENDAR\r\n", nil},
		{maxComponents, "END:VCALENDAR\r\n", ErrTooLarge},
		{maxComponents + 5, "", nil}, // cut short: io.EOF, no calendar
		{maxComponents + 5, "X\r\n", ErrMalformed},
		{maxComponents + 5, "END:VCALENDAR\r\nX\r\n", ErrTooLarge},
	} {
		data := build(c.events, c.tail)
		cals, err := decodeFast(data)
		if err != c.want {
			t.Errorf("%d events, tail %q: %d calendars, %v; want %v", c.events, c.tail, len(cals), err, c.want)
		}
		if _, diff := diffDecode(data); diff != "" {
			t.Errorf("%d events, tail %q: %s", c.events, c.tail, diff)
		}
	}
}

// TestDecodeFastOwnsStrings decodes every corpus input while keeping
// what came out, then compares it all with go-ical: a string left pointing
// into the decoder's pooled scratch text would have been overwritten by
// the inputs decoded after it.
func TestDecodeFastOwnsStrings(t *testing.T) {
	inputs := corpusInputs(t)
	got := make([][]*ical.Calendar, len(inputs))
	for i, in := range inputs {
		got[i], _ = decodeFast(in.data)
	}
	for i, in := range inputs {
		want, err := decodeGoICal(in.data)
		if err != nil {
			continue
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("%s: decoded before the others, now differs from go-ical:\n got %s\nwant %s", in.name, dumpCals(got[i]), dumpCals(want))
		}
	}
}

// TestDecodeOwnsItsCopy: Decode copies a text without a final line break
// (every calendar MIME part) into pooled space before decoding it; what
// it returns must not change when that space holds the next text.
func TestDecodeOwnsItsCopy(t *testing.T) {
	inputs := corpusInputs(t)
	type decoded struct {
		text []byte
		cals []*ical.Calendar
	}
	var all []decoded
	for _, in := range inputs {
		text := bytes.TrimRight(in.data, " \t\r\n")
		if cals, err := Decode(text); err == nil {
			all = append(all, decoded{text, cals})
		}
	}
	if len(all) < 100 {
		t.Fatalf("only %d corpus texts decode without a final line break", len(all))
	}
	for _, d := range all {
		want, _ := Decode(d.text)
		if !reflect.DeepEqual(d.cals, want) {
			t.Errorf("decoded before the others, now differs:\n got %s\nwant %s", dumpCals(d.cals), dumpCals(want))
		}
	}
}

// TestDecodeFastNames checks that the names of the usual components,
// properties and parameters are the package's constants, in any case, and
// that an unusual name is a copy of its own.
func TestDecodeFastNames(t *testing.T) {
	same := func(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }
	for _, in := range []string{smallEvent, strings.ToLower(smallEvent)} {
		cals, err := decodeFast([]byte(in))
		if err != nil || len(cals) != 1 {
			t.Fatalf("smallEvent: %d calendars, %v", len(cals), err)
		}
		var walk func(c *ical.Component)
		walk = func(c *ical.Component) {
			if k, ok := knownNames[c.Name]; !ok || !same(c.Name, k) {
				t.Errorf("component name %q is not a constant", c.Name)
			}
			for name, ps := range c.Props {
				for _, p := range ps {
					if k, ok := knownNames[p.Name]; !ok || !same(p.Name, k) || !same(name, k) {
						t.Errorf("property name %q is not a constant", p.Name)
					}
					for pname := range p.Params {
						if k, ok := knownNames[pname]; !ok || !same(pname, k) {
							t.Errorf("parameter name %q of %s is not a constant", pname, p.Name)
						}
					}
				}
			}
			for _, ch := range c.Children {
				walk(ch)
			}
		}
		walk(cals[0].Component)
	}
	for _, s := range knownNames {
		for _, in := range []string{s, strings.ToLower(s)} {
			if got := upperName(in, true); !same(got, s) {
				t.Errorf("upperName(%q) = %q, not the constant", in, got)
			}
		}
	}
	for _, in := range []string{"X-FBPUB-TEST", "x-fbpub-test", "X-\u00c4", "X-\u00e4", "X-\xff"} {
		got := upperName(in, true)
		if got != strings.ToUpper(in) {
			t.Errorf("upperName(%q) = %q, want %q", in, got, strings.ToUpper(in))
		}
		if same(got, in) {
			t.Errorf("upperName(%q, true) shares the memory of its argument", in)
		}
	}
}

// TestDecodeFastRetains checks what a VEVENT kept from a decoded message
// holds alive, as a cache of events keeps them: no more than go-ical's own
// VEVENT does, although the message also has a VTIMEZONE, calendar
// properties and, here, a long calendar description.
func TestDecodeFastRetains(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	msg := []byte(strings.Replace(smallEvent, "BEGIN:VEVENT\r\n",
		"X-WR-CALDESC:"+strings.Repeat("calendar description ", 200)+"\r\n"+
			"BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"+
			"TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"+
			"END:VTIMEZONE\r\nBEGIN:VEVENT\r\n", 1))
	const n = 500
	retained := func(decode func([]byte) ([]*ical.Calendar, error)) float64 {
		kept := make([]*ical.Component, 0, n)
		decode(msg) // scratch space, pools
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			cals, err := decode(msg)
			if err != nil || len(cals) != 1 {
				t.Fatalf("%d calendars, %v", len(cals), err)
			}
			for _, c := range cals[0].Children {
				if c.Name == ical.CompEvent {
					kept = append(kept, c)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(kept)
		return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	}
	goical, fast := retained(decodeGoICal), retained(decodeFast)
	t.Logf("heap kept per VEVENT: go-ical %.0f B, decodeFast %.0f B (message %d B)", goical, fast, len(msg))
	if fast > goical {
		t.Errorf("a VEVENT from decodeFast keeps %.0f B alive, one from go-ical %.0f B", fast, goical)
	}
}

// TestDecodeFastTokenSoup compares decodeFast with go-ical on inputs put
// together at random from the pieces that matter to the line syntax, far
// denser in them than what the fuzzer's byte mutations reach.
func TestDecodeFastTokenSoup(t *testing.T) {
	tokens := []string{
		"BEGIN:VCALENDAR\r\n", "END:VCALENDAR\r\n", "BEGIN:VEVENT\r\n", "END:VEVENT\r\n",
		"begin:vevent\n", "end:Vevent\n", "BEGIN", "END", "VCALENDAR", "VEVENT",
		"X-A", "x-a", "DTSTART", "TZID", "tzid", ";", ":", ",", "=", "\"", "\r", "\n", "\r\n",
		" ", "\t", "\r\n ", "\n\t", "a", "b", "\xc3", "\xa4", "\xff", "\xc4\xb1", "\xef\xbf\xbd",
		"\xef\xbb\xbf", "=\"q;:,\"", ":v\r\n", ";P=a,b:v\r\n",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200000
	if testing.Short() {
		n = 20000
	}
	accepted, withCals := 0, 0
	var b []byte
	for i := 0; i < n; i++ {
		b = b[:0]
		if i%2 == 0 {
			// Token soup.
			if rng.IntN(2) == 0 {
				b = append(b, "BEGIN:VCALENDAR\r\n"...)
			}
			for k := rng.IntN(30); k > 0; k-- {
				b = append(b, tokens[rng.IntN(len(tokens))]...)
			}
			if rng.IntN(2) == 0 {
				b = append(b, "END:VCALENDAR\r\n"...)
			}
		} else {
			// Mostly well-formed lines, with the odd token in between.
			b = soupCalendar(rng, b, tokens)
		}
		ok, diff := diffDecode(b)
		if diff != "" {
			t.Fatalf("input %q:\n%s", b, diff)
		}
		if ok {
			accepted++
			if cals, _ := decodeFast(b); len(cals) > 0 {
				withCals++
			}
		}
	}
	t.Logf("%d inputs, %d accepted by go-ical, %d of them with calendars", n, accepted, withCals)
}

// soupCalendar appends one or two calendars of random, mostly well-formed
// content lines.
func soupCalendar(rng *rand.Rand, b []byte, tokens []string) []byte {
	names := []string{"X-A", "x-a", "DTSTART", "Summary", "ATTENDEE", "X-\xc3\xa4", "BEGIN", "END"}
	pnames := []string{"TZID", "cn", "P", "X-\xff", "P:Q"}
	pvals := []string{"", "a", "b c", "\"q;:,\"", "\"\"", "\xe2\x82\xac"}
	vals := []string{"", "v", "VEVENT", "VALARM", "vcalendar", "a;b:c,d", "\xe2\x82\xac", "x\ry"}
	ends := []string{"\r\n", "\r\n", "\n", "\r\n \r\n", "\n\t", "\r\n\r\n"}
	for c := rng.IntN(2) + 1; c > 0; c-- {
		b = append(b, "BEGIN:VCALENDAR\r\n"...)
		depth := 0
		for k := rng.IntN(12); k > 0; k-- {
			switch r := rng.IntN(20); {
			case r < 3:
				b = append(b, "BEGIN:VEVENT\r\n"...)
				depth++
			case r < 6 && depth > 0:
				b = append(b, "END:vevent\r\n"...)
				depth--
			case r == 6:
				b = append(b, tokens[rng.IntN(len(tokens))]...)
			default:
				line := names[rng.IntN(len(names))]
				for p := rng.IntN(3); p > 0; p-- {
					line += ";" + pnames[rng.IntN(len(pnames))] + "=" + pvals[rng.IntN(len(pvals))]
					for rng.IntN(3) == 0 {
						line += "," + pvals[rng.IntN(len(pvals))]
					}
				}
				line += ":" + vals[rng.IntN(len(vals))]
				if f := rng.IntN(4); f == 0 && len(line) > 1 {
					// Fold anywhere, even inside a UTF-8 sequence.
					at := 1 + rng.IntN(len(line)-1)
					line = line[:at] + "\r\n " + line[at:]
				}
				b = append(b, line...)
				b = append(b, ends[rng.IntN(len(ends))]...)
			}
		}
		for ; depth > 0; depth-- {
			b = append(b, "END:VEVENT\r\n"...)
		}
		b = append(b, "END:VCALENDAR\r\n"...)
	}
	return b
}

// FuzzDecodeFast compares decodeFast with go-ical on arbitrary input.
func FuzzDecodeFast(f *testing.F) {
	for _, in := range corpusInputs(f) {
		f.Add(in.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, diff := diffDecode(data); diff != "" {
			t.Fatalf("input %q:\n%s", data, diff)
		}
		// What one decode returns must own its memory: decoding other
		// text (which reuses the pooled scratch space) leaves it as
		// go-ical reads it. A string left pointing into the scratch
		// would show one message's data in another's events.
		got, err := decodeFast(data)
		if err != nil {
			return
		}
		decodeFast(bytes.Repeat([]byte("X"), len(data)))
		decodeFast([]byte(strings.ToLower(string(data))))
		if want, err := decodeGoICal(data); err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("input %q: changed by the next decodes:\n got %s\nwant %s", data, dumpCals(got), dumpCals(want))
		}
	})
}

// smallEvent is one event as a typical client stores it in IMAP.
const smallEvent = "BEGIN:VCALENDAR\r\n" +
	"PRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n" +
	"VERSION:2.0\r\n" +
	"CALSCALE:GREGORIAN\r\n" +
	"METHOD:REQUEST\r\n" +
	"BEGIN:VEVENT\r\n" +
	"DTSTART;TZID=Europe/Berlin:20250312T100000\r\n" +
	"DTEND;TZID=Europe/Berlin:20250312T110000\r\n" +
	"RRULE:FREQ=WEEKLY;BYDAY=WE;UNTIL=20250430T080000Z\r\n" +
	"DTSTAMP:20250301T101112Z\r\n" +
	"ORGANIZER;CN=Jana Jung:mailto:jana@example.org\r\n" +
	"UID:7kq2b3d9s1l0v8m4n6p2r5t7w9@google.com\r\n" +
	"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Jana J\r\n" +
	" ung;X-NUM-GUESTS=0:mailto:jana@example.org\r\n" +
	"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;CN=a\r\n" +
	" lice@example.org;X-NUM-GUESTS=0:mailto:alice@example.org\r\n" +
	"CREATED:20250301T101000Z\r\n" +
	"DESCRIPTION:Weekly sync\\, agenda in the doc.\r\n" +
	"LAST-MODIFIED:20250301T101112Z\r\n" +
	"LOCATION:Room 4.12\r\n" +
	"SEQUENCE:0\r\n" +
	"STATUS:CONFIRMED\r\n" +
	"SUMMARY:Team sync\r\n" +
	"TRANSP:OPAQUE\r\n" +
	"BEGIN:VALARM\r\n" +
	"ACTION:DISPLAY\r\n" +
	"DESCRIPTION:This is an event reminder\r\n" +
	"TRIGGER:-P0DT0H10M0S\r\n" +
	"END:VALARM\r\n" +
	"END:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

// benchInputs are the iCalendar payloads of the corpus, as fbpub decodes
// them: the .ics files and the text/calendar parts of the messages.
func benchInputs(b *testing.B) [][]byte {
	var out [][]byte
	files, _ := filepath.Glob("testdata/corpus/*.*")
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasSuffix(f, ".eml") {
			parts, _ := MessageParts(data)
			for _, p := range parts {
				if p.MediaType == "text/calendar" {
					out = append(out, ToUTF8(p.Params["charset"], p.Body))
				}
			}
			continue
		}
		out = append(out, data)
	}
	for i, in := range out {
		// Decode strips a BOM before decoding.
		in = bytes.TrimPrefix(in, []byte("\xef\xbb\xbf"))
		out[i] = in
		if _, err := decodeGoICal(in); err != nil {
			b.Fatalf("corpus input does not decode: %v\n%q", err, clipInput(in))
		}
	}
	return out
}

func benchDecoder(b *testing.B, decode func([]byte) ([]*ical.Calendar, error)) {
	b.Run("event", func(b *testing.B) {
		data := []byte(smallEvent)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if cals, err := decode(data); err != nil || len(cals) != 1 {
				b.Fatal(err)
			}
		}
	})
	b.Run("corpus", func(b *testing.B) {
		inputs := benchInputs(b)
		var total int64
		for _, in := range inputs {
			total += int64(len(in))
		}
		b.SetBytes(total)
		b.ReportAllocs()
		for b.Loop() {
			for _, in := range inputs {
				if _, err := decode(in); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func BenchmarkDecodeFast(b *testing.B)   { benchDecoder(b, decodeFast) }
func BenchmarkDecodeGoICal(b *testing.B) { benchDecoder(b, decodeGoICal) }

// BenchmarkDecodeCurrent is Decode as it is: decodeFast after Decode's
// preliminaries.
func BenchmarkDecodeCurrent(b *testing.B) { benchDecoder(b, Decode) }

func countComponents(c *ical.Component) int {
	n := 1
	for _, ch := range c.Children {
		n += countComponents(ch)
	}
	return n
}
