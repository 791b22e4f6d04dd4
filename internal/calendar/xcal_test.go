package calendar

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"
)

// TestXCalRoundTrip writes every calendar of the corpus as xCal (Kolab
// format 3) and reads it back: every object must expand to the same
// occurrences, with the same summary, over two years.
func TestXCalRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("testdata/corpus/*.ics")
	if len(files) < 30 {
		t.Fatalf("only %d corpus calendars", len(files))
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(3, 0, 0)
	opts := &Options{Zone: time.UTC}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cals, err := Decode(data)
		if err != nil {
			continue // the corpus has broken calendars on purpose
		}
		for _, cal := range cals {
			var x bytes.Buffer
			if err := EncodeXCal(&x, cal.Component); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			back, err := PartObjects(Part{MediaType: "application/calendar+xml", Body: x.Bytes()})
			if err != nil {
				t.Errorf("%s: reading the xCal back: %v\n%s", f, err, x.String())
				continue
			}
			orig := Objects([]*ical.Calendar{cal})
			if len(back) != len(orig) {
				t.Errorf("%s: %d objects, %d after the round trip", f, len(orig), len(back))
				continue
			}
			for i := range orig {
				a, errA := orig[i].Instances(start, end, opts)
				b, errB := back[i].Instances(start, end, opts)
				if (errA == nil) != (errB == nil) || describe(a) != describe(b) {
					t.Errorf("%s: object %s differs after the round trip:\n%v (%v)\n%v (%v)\nxCal:\n%s", filepath.Base(f), orig[i].UID, describe(a), errA, describe(b), errB, x.String())
				}
				checked++
			}
		}
	}
	t.Logf("%d objects round-tripped", checked)
}

func describe(in []Instance) string {
	var b strings.Builder
	for _, i := range in {
		s := ""
		if p := i.Event.Props.Get("SUMMARY"); p != nil {
			// Unescaped by hand: go-ical's Text stops at an unescaped comma,
			// which some producers write and xCal does not need.
			s = unescapeText(p.Value)
		}
		fmt.Fprintf(&b, "%s/%s %q %v; ", i.Start.UTC().Format(time.RFC3339), i.End.UTC().Format(time.RFC3339), s, i.AllDay)
	}
	return b.String()
}

// TestXCalLineEnds: xCal written for a message has no bare LF, even for
// values with line breaks: IMAP servers refuse bare LF in messages.
func TestXCalLineEnds(t *testing.T) {
	cals, err := Decode([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20250101T100000Z\r\nDESCRIPTION:one\\ntwo\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	var x bytes.Buffer
	if err := EncodeXCal(&x, cals[0].Component); err != nil {
		t.Fatal(err)
	}
	if n, crlf := bytes.Count(x.Bytes(), []byte("\n")), bytes.Count(x.Bytes(), []byte("\r\n")); n != crlf {
		t.Errorf("%d LF, only %d of them in CRLF:\n%q", n, crlf, x.String())
	}
	back, err := PartObjects(Part{MediaType: "application/calendar+xml", Body: x.Bytes()})
	if err != nil || Text(back[0].Master.Props.Get("DESCRIPTION")) != "one\ntwo" {
		t.Errorf("read back: %v %v", back, err)
	}
}
