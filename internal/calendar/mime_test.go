package calendar

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/emersion/go-ical"
)

func describeParts(ps []Part) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s %v %q\n", p.MediaType, p.Params, p.Body)
	}
	return b.String()
}

// part is what a test expects of one Part.
type part struct {
	mediaType string
	params    string // fmt of the map
	body      string
}

func (p part) String() string { return fmt.Sprintf("%s %s %q\n", p.mediaType, p.params, p.body) }

func TestMessagePartsShapes(t *testing.T) {
	for _, c := range []struct {
		name string
		raw  string
		want []part
		err  error
	}{
		{"bare LF", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/calendar\n\nBEGIN:VCALENDAR\nEND:VCALENDAR\n--b--\n",
			[]part{{"text/calendar", "map[]", "BEGIN:VCALENDAR\nEND:VCALENDAR"}}, nil},
		{"folded fields, quoted boundary", "Content-Type: multipart/mixed;\r\n\tboundary=\"b b\"\r\n\r\n--b b\r\nContent-Type:\r\n text/calendar; method=PUBLISH\r\n\r\nX\r\n--b b--\r\n",
			[]part{{"text/calendar", "map[method:PUBLISH]", "X"}}, nil},
		{"nested, base64", "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nt\r\n--i\r\nContent-Type: text/calendar\r\n\r\nC\r\n--i--\r\n--o\r\nContent-Type: application/ics\r\nContent-Transfer-Encoding: base64\r\n\r\nQkVH\r\nSU4=\r\n--o--\r\n",
			[]part{{"text/calendar", "map[]", "C"}, {"application/ics", "map[]", "BEGIN"}}, nil},
		{"a line that starts like the delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\nline\r\n--bx not a delimiter\r\nmore\r\n--b--\r\n",
			[]part{{"text/calendar", "map[]", "line\r\n--bx not a delimiter\r\nmore"}}, nil},
		{"preamble, delimiter with trailing blanks, epilogue", "Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b  \r\nContent-Type: text/calendar; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBODY\r\n--b--\r\nepilogue\r\n",
			[]part{{"text/calendar", "map[charset:utf-8]", "BODY"}}, nil},
		{"the message is the calendar", "Content-Type: text/calendar\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBEGIN:VCALENDAR=0D=0AEND:VCALENDAR\r\n",
			[]part{{"text/calendar", "map[]", "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"}}, nil},
		{"an empty part and an empty calendar", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\n\r\n--b--",
			[]part{{"text/calendar", "map[]", ""}}, nil},
		{"case of names and values", "content-type: MULTIPART/MIXED; BOUNDARY=b\r\n\r\n--b\r\ncontent-TYPE: Text/Calendar; CHARSET=UTF-8\r\ncontent-transfer-encoding: BASE64\r\n\r\nQkVHSU4=\r\n--b--\r\n",
			[]part{{"text/calendar", "map[charset:UTF-8]", "BEGIN"}}, nil},
		{"the first of repeated fields", "Content-Type: text/calendar\r\nContent-Type: text/plain\r\n\r\nX",
			[]part{{"text/calendar", "map[]", "X"}}, nil},
		{"a broken parameter list", "Content-Type: text/calendar; charset\r\n\r\nX",
			[]part{{"text/calendar", "map[]", "X"}}, nil},
		{"RFC 2231 parameters", "Content-Type: text/calendar; name*=utf-8''%E2%82%AC.ics; charset=\"iso-8859-1\"\r\n\r\nX",
			[]part{{"text/calendar", "map[charset:iso-8859-1 name:€.ics]", "X"}}, nil},
		{"a header and no body", "Content-Type: text/calendar\r\n",
			[]part{{"text/calendar", "map[]", ""}}, nil},
		{"every calendar type", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/x-vcalendar\r\n\r\n1\r\n--b\r\nContent-Type: application/calendar+xml\r\n\r\n2\r\n--b\r\nContent-Type: application/x-vnd.kolab.event\r\n\r\n3\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n4\r\n--b--\r\n",
			[]part{{"text/x-vcalendar", "map[]", "1"}, {"application/calendar+xml", "map[]", "2"}, {"application/x-vnd.kolab.event", "map[]", "3"}}, nil},
		{"no calendar", "Content-Type: text/plain\r\n\r\nhello", nil, ErrNoCalendar},
		{"no Content-Type", "Subject: x\r\n\r\nBEGIN:VCALENDAR\r\n", nil, ErrNoCalendar},
		{"a multipart without boundary", "Content-Type: multipart/mixed\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\nX\r\n--b--\r\n", nil, ErrNoCalendar},
		{"empty", "", nil, ErrMalformed},
		{"not a header", "no colon here\r\n\r\nbody", nil, ErrMalformed},
	} {
		ps, err := MessageParts([]byte(c.raw))
		var want strings.Builder
		for _, p := range c.want {
			want.WriteString(p.String())
		}
		if !errors.Is(err, c.err) || (err == nil) != (c.err == nil) || describeParts(ps) != want.String() {
			t.Errorf("%s: MessageParts(%q) = %v\n%s\nwant %v\n%s", c.name, c.raw, err, describeParts(ps), c.err, want.String())
		}
	}
}

// TestMessagePartsDamage: damage in one place does not hide the calendar
// parts elsewhere.
func TestMessagePartsDamage(t *testing.T) {
	const cal = "Content-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR\r\n"
	for name, raw := range map[string]string{
		"no closing delimiter":           "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + cal,
		"a part header that is broken":   "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nnot a header line\r\n\r\nx\r\n--b\r\n" + cal + "--b--\r\n",
		"stray text between parts":       "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--junk\r\nmore junk\r\n--b\r\n" + cal + "--b--\r\n",
		"a branch that never closes":     "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nx\r\n--o\r\n" + cal + "--o--\r\n",
		"a branch with a broken header":  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n broken\r\n\r\n--o\r\n" + cal + "--o--\r\n",
		"a long line in the preamble":    "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + strings.Repeat("p", 10000) + "\r\n--b\r\n" + cal + "--b--\r\n",
		"the calendar before the damage": "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + cal + "--b\r\nbroken\r\n\r\n--b--\r\n",
	} {
		ps, err := MessageParts([]byte(raw))
		if err != nil || len(ps) != 1 || !bytes.HasPrefix(ps[0].Body, []byte("BEGIN:VCALENDAR")) {
			t.Errorf("%s: MessageParts = %v\n%s", name, err, describeParts(ps))
		}
	}
}

// TestMessagePartsBounds: parts, nesting and part size are bounded.
func TestMessagePartsBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 2 * maxParts {
		b.WriteString("--b\r\nContent-Type: text/calendar\r\n\r\nX\r\n")
	}
	b.WriteString("--b--\r\n")
	if ps, _ := MessageParts([]byte(b.String())); len(ps) == 0 || len(ps) >= maxParts {
		t.Errorf("%d calendar parts: %d found, want fewer than %d", 2*maxParts, len(ps), maxParts)
	}

	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 20 * maxParts {
		b.WriteString("--b\r\nbroken\r\n\r\n")
	}
	b.WriteString("--b\r\nContent-Type: text/calendar\r\n\r\nX\r\n--b--\r\n")
	if ps, err := MessageParts([]byte(b.String())); err != ErrNoCalendar {
		t.Errorf("a calendar after %d broken parts: %v, %d parts; want ErrNoCalendar", 20*maxParts, err, len(ps))
	}

	nested := func(depth int) []byte {
		var b strings.Builder
		for i := range depth {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
		b.WriteString("Content-Type: text/calendar\r\n\r\nX\r\n")
		for i := depth - 1; i >= 0; i-- {
			fmt.Fprintf(&b, "--b%d--\r\n", i)
		}
		return []byte(b.String())
	}
	if ps, err := MessageParts(nested(maxDepth)); err != nil || len(ps) != 1 || string(ps[0].Body) != "X" {
		t.Errorf("a calendar %d levels deep: %v\n%s", maxDepth, err, describeParts(ps))
	}
	if _, err := MessageParts(nested(maxDepth + 1)); err != ErrNoCalendar {
		t.Errorf("a calendar %d levels deep: %v, want ErrNoCalendar", maxDepth+1, err)
	}

	big := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\n" + strings.Repeat("x", MaxPayload+100) + "\r\n--b--\r\n"
	ps, err := MessageParts([]byte(big))
	if err != nil || len(ps) != 1 || len(ps[0].Body) != MaxPayload+1 {
		t.Fatalf("a part over MaxPayload: %v, %d parts", err, len(ps))
	}
	if _, err := PartObjects(ps[0]); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PartObjects of a part over MaxPayload: %v, want ErrTooLarge", err)
	}
}

// charsetCases are one text in each family of charsets clients write, as
// Python's codecs encode it.
var charsetCases = []struct {
	charset, hex, text string
}{
	{"ISO-8859-1", "436166e9204dfc6c6c6572", "Café Müller"},
	{"latin1", "436166e9", "Café"},
	{"ISO-8859-2", "a3f364bc2c205a61bff3b3e6", "Łódź, Zażółć"},
	{"ISO-8859-5", "bfe0d8d2d5e2", "Привет"},
	{"ISO-8859-7", "cae1ebe7ecddf1e1", "Καλημέρα"},
	{"ISO-8859-15", "50726978203520a4", "Prix 5 €"},
	{"windows-1250", "a3f3649f", "Łódź"},
	{"Windows-1251", "cff0e8e2e5f2", "Привет"},
	{"windows-1252", "436166e9209371756f7465649420962080", "Café “quoted” – €"},
	{"cp1252", "80", "€"},
	{"windows-1253", "cae1ebe7ecddf1e1", "Καλημέρα"},
	{"KOI8-R", "f0d2c9d7c5d4", "Привет"},
	{"koi8-u", "f0d2c9d7a6d4", "Привіт"},
	{"Shift_JIS", "89ef8b638eba", "会議室"},
	{"EUC-JP", "b2f1b5c4bcbc", "会議室"},
	{"ISO-2022-JP", "1b2442327135443c3c1b2842", "会議室"},
	{"GB18030", "bbe1d2e9cad2", "会议室"},
	{"GBK", "bbe1d2e9cad2", "会议室"},
	{"gb2312", "bbe1d2e9cad2", "会议室"},
	{"Big5", "b77cc4b3abc7", "會議室"},
	{"EUC-KR", "c8b8c0c7bdc7", "회의실"},
	{"UTF-16", "fffe430061006600e90020001a4f708b", "Café 会議"},
	{"UTF-16LE", "430061006600e900", "Café"},
	{"UTF-16BE", "00430061006600e9", "Café"},
	{"UTF-8", "436166c3a9", "Café"},
	{"", "436166c3a9", "Café"},
}

func TestToUTF8(t *testing.T) {
	for _, c := range charsetCases {
		in, _ := hex.DecodeString(c.hex)
		got, err := ToUTF8(c.charset, in)
		if err != nil || string(got) != c.text {
			t.Errorf("ToUTF8(%q, %x) = %q, %v; want %q", c.charset, in, got, err, c.text)
		}
	}
	for _, c := range []struct{ charset, in, want string }{
		{"utf-8", "a\xffb", "a\uFFFDb"},
		{"us-ascii", "plain", "plain"},
		// Valid UTF-8 labelled with a charset that writes ASCII as
		// ASCII is mislabelled UTF-8.
		{"iso-8859-1", "Café", "Café"},
		{"windows-1252", "Café", "Café"},
		// Charsets that do not write ASCII as ASCII are converted even
		// when the text is valid UTF-8.
		{"iso-2022-jp", "A\x1b$B2q5D<<\x1b(BB", "A会議室B"},
		{"utf-16le", "A\x00B\x00", "AB"},
	} {
		got, err := ToUTF8(c.charset, []byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("ToUTF8(%q, %q) = %q, %v; want %q", c.charset, c.in, got, err, c.want)
		}
	}
	for _, cs := range []string{"x-unknown", "unknown-8bit", "utf-7", "iso-2022-kr", "\"utf-8\""} {
		out, err := ToUTF8(cs, []byte("BEGIN:VCALENDAR"))
		if !errors.Is(err, ErrCharset) || !errors.Is(err, ErrUnsupported) || out != nil {
			t.Errorf("ToUTF8(%q) = %q, %v; want ErrCharset", cs, out, err)
		}
	}
}

// encodeAs writes ASCII text in a charset's own form: the UTF-16 ones
// need every character in two octets, the others write ASCII as ASCII.
func encodeAs(charset, s string) []byte {
	var order binary.AppendByteOrder
	switch strings.ToLower(charset) {
	case "utf-16", "utf-16le":
		order = binary.LittleEndian
	case "utf-16be":
		order = binary.BigEndian
	default:
		return []byte(s)
	}
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return b
}

// TestPartObjectsCharsets reads a calendar in each charset family through
// the whole path from a stored message: the SUMMARY comes out in UTF-8.
func TestPartObjectsCharsets(t *testing.T) {
	for _, c := range charsetCases {
		summary, _ := hex.DecodeString(c.hex)
		ics := encodeAs(c.charset, "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:c1\r\nDTSTART:20250303T080000Z\r\nSUMMARY:")
		if bytes.HasPrefix(summary, []byte{0xff, 0xfe}) {
			// The byte order mark starts the text, not the summary.
			ics = append(append([]byte{0xff, 0xfe}, ics...), summary[2:]...)
		} else {
			ics = append(ics, summary...)
		}
		ics = append(ics, encodeAs(c.charset, "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")...)
		msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar; charset=\"" + c.charset + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64Lines(ics) + "--b--\r\n"
		parts, err := MessageParts([]byte(msg))
		if err != nil || len(parts) != 1 {
			t.Errorf("%s: MessageParts = %d parts, %v", c.charset, len(parts), err)
			continue
		}
		objs, err := PartObjects(parts[0])
		if err != nil || len(objs) != 1 {
			t.Errorf("%s: PartObjects = %d, %v", c.charset, len(objs), err)
			continue
		}
		if got := Text(objs[0].Master.Props.Get(ical.PropSummary)); got != c.text {
			t.Errorf("%s: SUMMARY = %q, want %q", c.charset, got, c.text)
		}
	}
}

// TestPartObjectsUnknownCharset: a part in a charset fbpub does not know
// is ErrCharset (counted as unsupported), and the message's other
// calendar part is still read.
func TestPartObjectsUnknownCharset(t *testing.T) {
	ics := "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:%s\r\nDTSTART:20250303T080000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/calendar; charset=x-private\r\n\r\n" + fmt.Sprintf(ics, "unknown") + "\r\n" +
		"--b\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\n" + fmt.Sprintf(ics, "known") + "\r\n--b--\r\n"
	parts, err := MessageParts([]byte(msg))
	if err != nil || len(parts) != 2 {
		t.Fatalf("MessageParts = %d parts, %v", len(parts), err)
	}
	if objs, err := PartObjects(parts[0]); !errors.Is(err, ErrCharset) || !errors.Is(err, ErrUnsupported) || objs != nil {
		t.Errorf("PartObjects of a part in x-private = %d, %v; want ErrCharset", len(objs), err)
	} else if strings.Contains(err.Error(), "VCALENDAR") {
		t.Errorf("the error quotes the payload: %v", err)
	}
	if objs, err := PartObjects(parts[1]); err != nil || len(objs) != 1 || objs[0].UID != "known" {
		t.Errorf("PartObjects of the UTF-8 part = %d, %v", len(objs), err)
	}
}

// TestXMLCharsets: an xCal document declared in another encoding is
// converted; one declared in an encoding fbpub does not know is ErrCharset.
func TestXMLCharsets(t *testing.T) {
	cals, err := Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x1\r\nDTSTART:20250303T080000Z\r\nSUMMARY:Caf\u00e9\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var x bytes.Buffer
	if err := EncodeXCal(&x, cals[0].Component); err != nil {
		t.Fatal(err)
	}
	latin1 := bytes.Replace(bytes.ReplaceAll(x.Bytes(), []byte("Caf\u00e9"), []byte("Caf\xe9")), []byte(`encoding="UTF-8"`), []byte(`encoding="ISO-8859-1"`), 1)
	if bytes.Equal(latin1, x.Bytes()) || !bytes.Contains(latin1, []byte("Caf\xe9")) {
		t.Fatalf("the test's xCal is not what it expects:\n%s", x.Bytes())
	}
	objs, err := PartObjects(Part{MediaType: "application/calendar+xml", Body: latin1})
	if err != nil || len(objs) != 1 || Text(objs[0].Master.Props.Get(ical.PropSummary)) != "Café" {
		t.Errorf("xCal in ISO-8859-1: %d objects, %v, summary %q", len(objs), err, Text(objs[0].Master.Props.Get(ical.PropSummary)))
	}
	damaged := bytes.ReplaceAll(x.Bytes(), []byte("Caf\u00e9"), []byte("Caf\xe9"))
	objs, err = PartObjects(Part{MediaType: "application/calendar+xml", Body: damaged})
	if err != nil || len(objs) != 1 || Text(objs[0].Master.Props.Get(ical.PropSummary)) != "Caf\uFFFD" {
		t.Errorf("xCal in UTF-8 with an invalid octet: %d objects, %v", len(objs), err)
	}
	objs, err = PartObjects(Part{MediaType: "application/calendar+xml", Params: map[string]string{"charset": "iso-8859-1"}, Body: damaged})
	if err != nil || len(objs) != 1 || Text(objs[0].Master.Props.Get(ical.PropSummary)) != "Café" {
		t.Errorf("xCal in the MIME charset ISO-8859-1: %d objects, %v", len(objs), err)
	}
	unknown := bytes.Replace(x.Bytes(), []byte(`encoding="UTF-8"`), []byte(`encoding="x-private"`), 1)
	if _, err := PartObjects(Part{MediaType: "application/calendar+xml", Body: unknown}); !errors.Is(err, ErrCharset) {
		t.Errorf("xCal in x-private: %v, want ErrCharset", err)
	}
}

func base64Lines(b []byte) string {
	var s strings.Builder
	enc := make([]byte, 0, 80)
	for len(b) > 0 {
		n := min(len(b), 57)
		enc = enc[:0]
		enc = base64.StdEncoding.AppendEncode(enc, b[:n])
		s.Write(enc)
		s.WriteString("\r\n")
		b = b[n:]
	}
	return s.String()
}

// FuzzMessageParts: MessageParts never panics, returns only calendar
// parts, fewer than maxParts, none over MaxPayload+1 octets, and an
// error exactly when it returns none.
func FuzzMessageParts(f *testing.F) {
	files, _ := filepath.Glob("testdata/corpus/*.eml")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/calendar\n\nX\n--b--\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ps, err := MessageParts(raw)
		if (err == nil) != (len(ps) > 0) {
			t.Fatalf("%d parts and err %v", len(ps), err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoCalendar) {
			t.Fatalf("err %v is not a category", err)
		}
		if len(ps) >= maxParts {
			t.Fatalf("%d parts", len(ps))
		}
		for _, p := range ps {
			if !IsCalendarType(p.MediaType) || len(p.Body) > MaxPayload+1 || p.Params == nil {
				t.Fatalf("part %s %v of %d octets", p.MediaType, p.Params, len(p.Body))
			}
		}
	})
}
