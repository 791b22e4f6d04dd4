package freebusy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/oracle"
)

// corpusDir holds calendars as real clients write them, with a manifest of
// the owner, zone and windows to check each one in.
const corpusDir = "../calendar/testdata/corpus"

type corpusCase struct {
	File        string      `json:"file"`
	Oracle      string      `json:"oracle"`
	Producer    string      `json:"producer"`
	TZ          string      `json:"tz"`
	Owner       string      `json:"owner"`
	Windows     [][2]string `json:"windows"`
	Notes       string      `json:"notes"`
	OracleWrong string      `json:"oracle_wrong"`
}

// handChecked replaces the oracle where ical.js is wrong in a way busy.mjs
// does not correct even in its "rfc" mode. Each entry was worked out by
// hand from RFC 5545; the manifest's oracle_wrong says why.
var handChecked = map[string][][]string{
	// BYWEEKNO=12,14;BYDAY=MO,WE: ISO weeks 12 and 14 only (§3.3.10).
	"89-byweekno.ics": {
		{"BUSY 2025-03-17T08:00:00Z 2025-03-17T11:00:00Z", "BUSY 2025-03-19T08:00:00Z 2025-03-19T11:00:00Z", "BUSY 2025-03-31T07:00:00Z 2025-03-31T10:00:00Z"},
		{"BUSY 2025-04-02T07:00:00Z 2025-04-02T10:00:00Z"},
		{"BUSY 2026-03-16T08:00:00Z 2026-03-16T11:00:00Z", "BUSY 2026-03-18T08:00:00Z 2026-03-18T11:00:00Z", "BUSY 2026-03-30T07:00:00Z 2026-03-30T10:00:00Z", "BUSY 2026-04-01T07:00:00Z 2026-04-01T10:00:00Z"},
	},
}

// corpusObjects reads a corpus file as fbpub reads it from IMAP: a whole
// message, or an iCalendar text.
func corpusObjects(t *testing.T, file string) []*calendar.Object {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(corpusDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(file, ".eml") {
		parts, err := calendar.MessageParts(data)
		if err != nil {
			t.Fatalf("%s: MessageParts: %v", file, err)
		}
		var objs []*calendar.Object
		for _, p := range parts {
			o, err := calendar.PartObjects(p)
			if err != nil {
				t.Fatalf("%s: PartObjects: %v", file, err)
			}
			objs = append(objs, o...)
		}
		return objs
	}
	cals, err := calendar.Decode(data)
	if err != nil {
		t.Fatalf("%s: Decode: %v", file, err)
	}
	return calendar.Objects(cals)
}

// corpusMessages reads a corpus calendar with several VCALENDARs as if
// each were a message of its own, as one folder stores a series and its
// overrides apart; nil for a file with fewer than two.
func corpusMessages(t *testing.T, file string) []*calendar.Object {
	t.Helper()
	if !strings.HasSuffix(file, ".ics") {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(corpusDir, file))
	if err != nil {
		t.Fatal(err)
	}
	cals, err := calendar.Decode(data)
	if err != nil || len(cals) < 2 {
		return nil
	}
	var objs []*calendar.Object
	for _, c := range cals {
		objs = append(objs, calendar.Objects([]*ical.Calendar{c})...)
	}
	return objs
}

func fmtPeriods(ps []Period) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s %s %s", p.Type, p.Start.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339)))
	}
	return out
}

// TestCorpusAgainstICalJS expands every corpus calendar with fbpub and with
// ical.js over every window of its manifest entry; every busy period must
// agree. A calendar of several VCALENDARs is computed twice: as one
// message, and as one message per VCALENDAR (the oracle reads each
// VCALENDAR as a message of its own either way).
func TestCorpusAgainstICalJS(t *testing.T) {
	var cases []corpusCase
	b, err := os.ReadFile(filepath.Join(corpusDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("corpus has %d cases, want at least 40", len(cases))
	}
	o := oracle.StartBusy(t)
	for _, c := range cases {
		t.Run(c.File, func(t *testing.T) {
			objs := corpusObjects(t, c.File)
			split := corpusMessages(t, c.File)
			oracleICS, err := os.ReadFile(filepath.Join(corpusDir, c.Oracle))
			if err != nil {
				t.Fatal(err)
			}
			// Each window twice: in the owner's zone of the manifest, and in
			// a zone far from every producer's, so that a TZID fbpub fails
			// to resolve cannot hide behind a default that happens to match.
			for _, zone := range []string{c.TZ, "Pacific/Auckland"} {
				loc, err := time.LoadLocation(zone)
				if err != nil {
					t.Fatal(err)
				}
				for i, win := range c.Windows {
					w := Window{mustTime(t, win[0]), mustTime(t, win[1])}
					opts := &Options{Owner: c.Owner, Expand: &calendar.Options{Zone: loc}}
					got := fmtPeriods(Compute(objs, w, opts).Periods)
					var gotSplit []string
					if split != nil {
						gotSplit = fmtPeriods(Compute(split, w, opts).Periods)
					}
					var want []string
					if hc, ok := handChecked[c.File]; ok {
						if zone != c.TZ {
							continue // worked out by hand for the manifest's zone only
						}
						want = hc[i]
					} else {
						a := o.Ask(t, oracle.Request{ICS: string(oracleICS), Start: win[0], End: win[1],
							TZ: zone, Owner: c.Owner, Mode: "rfc", MaxInstances: 100000})
						if a.Error != "" {
							t.Fatalf("oracle error: %s", a.Error)
						}
						want = a.Lines()
					}
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Errorf("window %s – %s, owner zone %s (%s):\nfbpub:\n  %s\nical.js:\n  %s\nnotes: %s %s", win[0], win[1], zone, c.Producer,
							strings.Join(got, "\n  "), strings.Join(want, "\n  "), c.Notes, c.OracleWrong)
					}
					if split != nil && strings.Join(gotSplit, "\n") != strings.Join(want, "\n") {
						t.Errorf("window %s – %s, owner zone %s, one message per VCALENDAR:\nfbpub:\n  %s\nical.js:\n  %s\nnotes: %s %s", win[0], win[1], zone,
							strings.Join(gotSplit, "\n  "), strings.Join(want, "\n  "), c.Notes, c.OracleWrong)
					}
				}
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
