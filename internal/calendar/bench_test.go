package calendar

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/teambition/rrule-go"
)

// BenchmarkParse measures parse throughput (MB/s) over the corpus: MIME
// walking, transfer decoding, charset conversion, iCalendar, xCal and
// Kolab 2 decoding, grouping into objects.
func BenchmarkParse(b *testing.B) {
	files, _ := filepath.Glob("testdata/corpus/*.*")
	var inputs [][]byte
	var total int64
	for _, f := range files {
		if strings.HasSuffix(f, ".json") || strings.HasSuffix(f, ".oracle.ics") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		inputs = append(inputs, data)
		total += int64(len(data))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range inputs {
			if parts, err := MessageParts(data); err == nil && !strings.HasPrefix(string(data), "BEGIN:VCALENDAR") {
				for _, p := range parts {
					PartObjects(p)
				}
				continue
			}
			if cals, err := Decode(data); err == nil {
				Objects(cals)
			}
		}
	}
}

// yearOfEvents builds n recurring events of the kinds people keep: daily
// stand-ups, weekly meetings with exceptions, monthly "last Friday"
// reviews, yearly birthdays, some with a moved instance.
func yearOfEvents(n int) []*Object {
	var b strings.Builder
	rules := []string{
		"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
		"FREQ=WEEKLY;BYDAY=MO,TH",
		"FREQ=WEEKLY;INTERVAL=2;BYDAY=WE",
		"FREQ=MONTHLY;BYDAY=-1FR",
		"FREQ=MONTHLY;BYMONTHDAY=15",
		"FREQ=YEARLY",
		"FREQ=DAILY;COUNT=200",
		"FREQ=WEEKLY;UNTIL=20251201T000000Z",
	}
	b.WriteString("BEGIN:VCALENDAR\r\n")
	for i := 0; i < n; i++ {
		start := time.Date(2024, 1, 1+i%28, 8+i%10, 0, 0, 0, time.UTC)
		fmt.Fprintf(&b, "BEGIN:VEVENT\r\nUID:ev-%d\r\nDTSTART;TZID=Europe/Berlin:%s\r\nDTEND;TZID=Europe/Berlin:%s\r\nRRULE:%s\r\n",
			i, start.Format("20060102T150405"), start.Add(45*time.Minute).Format("20060102T150405"), rules[i%len(rules)])
		if i%3 == 0 {
			fmt.Fprintf(&b, "EXDATE;TZID=Europe/Berlin:%s\r\n", start.AddDate(0, 3, 0).Format("20060102T150405"))
		}
		b.WriteString("END:VEVENT\r\n")
		if i%5 == 0 {
			rid := start.AddDate(0, 6, 7)
			fmt.Fprintf(&b, "BEGIN:VEVENT\r\nUID:ev-%d\r\nRECURRENCE-ID;TZID=Europe/Berlin:%s\r\nDTSTART;TZID=Europe/Berlin:%s\r\nDTEND;TZID=Europe/Berlin:%s\r\nEND:VEVENT\r\n",
				i, rid.Format("20060102T150405"), rid.Add(2*time.Hour).Format("20060102T150405"), rid.Add(3*time.Hour).Format("20060102T150405"))
		}
	}
	b.WriteString("END:VCALENDAR\r\n")
	cals, err := Decode([]byte(b.String()))
	if err != nil {
		panic(err)
	}
	return Objects(cals)
}

var benchYear = [2]time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}

// BenchmarkExpandYear expands a year of 1,000 mixed recurring events.
func BenchmarkExpandYear(b *testing.B) {
	objs := yearOfEvents(1000)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = 0
		for _, o := range objs {
			insts, err := o.Instances(benchYear[0], benchYear[1], &Options{Zone: berlin})
			if err != nil {
				b.Fatal(err)
			}
			n += len(insts)
		}
	}
	b.ReportMetric(float64(n), "instances")
}

// BenchmarkExpandYearBaseline is the floor under BenchmarkExpandYear:
// rrule-go alone iterating the same rules over the same year, with no
// time zone work, exceptions, overrides or lengths. The ratio of the two
// is what fbpub's own expansion costs.
func BenchmarkExpandYearBaseline(b *testing.B) {
	objs := yearOfEvents(1000)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	type rule struct {
		opt *rrule.ROption
	}
	var rules []rule
	for _, o := range objs {
		p := o.Master.Props.Get("DTSTART")
		start, _ := time.ParseInLocation("20060102T150405", p.Value, berlin)
		opt, err := rrule.StrToROptionInLocation(o.Master.Props.Get("RRULE").Value, berlin)
		if err != nil {
			b.Fatal(err)
		}
		opt.Dtstart = start
		rules = append(rules, rule{opt})
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n = 0
		for _, r := range rules {
			rr, _ := rrule.NewRRule(*r.opt)
			next := rr.Iterator()
			for {
				t, ok := next()
				if !ok || !t.Before(benchYear[1]) {
					break
				}
				if !t.Before(benchYear[0]) {
					n++
				}
			}
		}
	}
	b.ReportMetric(float64(n), "instances")
}

// BenchmarkEncodeEvent encodes one typical VEVENT, as a cold read does for
// every message (the owner's view of its events).
func BenchmarkEncodeEvent(b *testing.B) {
	cals, err := Decode([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20250101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20250312T100000\r\nDTEND;TZID=Europe/Berlin:20250312T110000\r\nRRULE:FREQ=WEEKLY;BYDAY=WE\r\nSUMMARY:Team sync\r\nLOCATION:Room 4.12\r\nDESCRIPTION:Weekly\\, agenda in the doc.\r\nORGANIZER;CN=Jana:mailto:jana@example.org\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:jana@example.org\r\nSEQUENCE:0\r\nSTATUS:CONFIRMED\r\nTRANSP:OPAQUE\r\nCREATED:20250301T101000Z\r\nLAST-MODIFIED:20250301T101112Z\r\nX-MOZ-GENERATION:3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	if err != nil {
		b.Fatal(err)
	}
	ev := cals[0].Children[0]
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		NewEncoder(&buf).Encode(ev)
	}
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
					u, err := ToUTF8(p.Params["charset"], p.Body)
					if err != nil {
						b.Fatal(err)
					}
					out = append(out, u)
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
		if _, err := Decode(in); err != nil {
			b.Fatalf("corpus input %d does not decode: %v", i, err)
		}
	}
	return out
}

// BenchmarkDecode decodes one typical event, and every iCalendar payload
// of the corpus.
func BenchmarkDecode(b *testing.B) {
	b.Run("event", func(b *testing.B) {
		data := []byte(smallEvent)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if cals, err := Decode(data); err != nil || len(cals) != 1 {
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
				if _, err := Decode(in); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// BenchmarkScan expands one event whose rule never produces an occurrence,
// so that rrule-go steps through every period (or day) to the year 9999
// in one call, and reports the CPU time per budget step that scanSteps
// charges for it: the cost of a step should stay near that of an
// occurrence (1 to 3 µs, BenchmarkHostile in internal/freebusy) for every
// shape, or the budget no longer bounds an answer's CPU time. The first
// sub-benchmark is that baseline, measured in the same run: 200,000
// occurrences of a FREQ=SECONDLY rule, a step each.
func BenchmarkScan(b *testing.B) {
	start, end := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 8, 0, 0, 0, 0, time.UTC)
	secondly := neverObjects(b, "FREQ=SECONDLY", 1)[0]
	b.Run("baseline FREQ=SECONDLY", func(b *testing.B) {
		for b.Loop() {
			secondly.Instances(start, end, &Options{Limits: Limits{Budget: NewBudget(200_000)}})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200_000, "ns/step")
	})
	rules := append(neverRules[:len(neverRules):len(neverRules)],
		"FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYDAY=2TU,3WE;BYMONTHDAY=28",
		"FREQ=MINUTELY;INTERVAL=30;BYHOUR=9,10,11,14,15,16;BYMONTH=2;BYMONTHDAY=30")
	for _, rule := range rules {
		o := neverObjects(b, rule, 1)[0]
		b.Run(rule, func(b *testing.B) {
			var steps int
			for b.Loop() {
				budget := NewBudget(1 << 40)
				if _, err := o.Instances(start, end, &Options{Limits: Limits{Budget: budget}}); err != nil {
					b.Fatal(err)
				}
				steps = budget.Used()
			}
			b.ReportMetric(float64(steps), "steps/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(steps), "ns/step")
		})
	}
}
