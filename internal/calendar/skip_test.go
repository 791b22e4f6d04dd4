package calendar

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSkipAheadMatchesFullExpansion compares, for rules of every
// frequency with the BY… parts that depend on where a period lies (BYDAY
// with ordinals, BYMONTHDAY, BYSETPOS, BYWEEKNO, WKST), starts on a 31st,
// on 29 February, in a DST gap and in a repeated hour, and zones with
// whole-hour and half-hour DST, the occurrences found by expanding from a
// moved start (skipAhead) with those found by expanding from DTSTART.
func TestSkipAheadMatchesFullExpansion(t *testing.T) {
	type win struct{ start, end string }
	// Windows around the DST changes of the zones below, and whole
	// years for the rules whose periods are months or years.
	short := []win{{"20250327T000000Z", "20250408T000000Z"}, {"20251024T000000Z", "20251104T000000Z"}, {"20250307T000000Z", "20250311T000000Z"}}
	long := append([]win{{"20250101T000000Z", "20260101T000000Z"}, {"20280101T000000Z", "20290101T000000Z"}}, short...)
	// starts (local wall clock) by frequency: far enough back that
	// skipping matters, near enough that the full expansion is cheap.
	starts := map[string][]string{
		"YEARLY":   {"19950131T093000", "19960229T170000", "19970330T023000", "19981025T023000"},
		"MONTHLY":  {"20150131T093000", "20160229T170000", "20170326T023000", "20171029T023000"},
		"WEEKLY":   {"20200131T093000", "20200229T170000", "20200329T023000", "20201025T023000"},
		"DAILY":    {"20220131T093000", "20240229T170000", "20220327T023000", "20221030T023000"},
		"HOURLY":   {"20250101T023017", "20241231T234500"},
		"MINUTELY": {"20250301T023017", "20251020T120000"},
		"SECONDLY": {"20250326T220000", "20251023T230000"},
	}
	rules := []string{
		"FREQ=YEARLY", "FREQ=YEARLY;INTERVAL=3", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
		"FREQ=YEARLY;BYMONTH=10;BYDAY=1SU,-1SA;BYHOUR=2,3;BYMINUTE=30", "FREQ=YEARLY;BYWEEKNO=13,44;BYDAY=MO,SU",
		"FREQ=YEARLY;BYWEEKNO=1,53;WKST=SU", "FREQ=YEARLY;BYYEARDAY=1,89,-1,300", "FREQ=YEARLY;INTERVAL=2;BYMONTH=2;BYMONTHDAY=28,29",
		"FREQ=YEARLY;BYDAY=20MO,-3FR", "FREQ=YEARLY;BYMONTH=3,10;BYDAY=SU;BYSETPOS=-1",
		"FREQ=MONTHLY", "FREQ=MONTHLY;INTERVAL=5", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2,1",
		"FREQ=MONTHLY;BYMONTHDAY=-1,15,31", "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", "FREQ=MONTHLY;INTERVAL=7;BYMONTHDAY=30;BYHOUR=2;BYMINUTE=15",
		"FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,SU", "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA,SU;WKST=SU",
		"FREQ=WEEKLY;BYDAY=MO,WE,FR;BYSETPOS=1", "FREQ=WEEKLY;INTERVAL=5;BYDAY=TU,SU;BYSETPOS=-1;WKST=MO", "FREQ=WEEKLY;BYHOUR=2,14;BYMINUTE=0,30",
		"FREQ=DAILY", "FREQ=DAILY;INTERVAL=9", "FREQ=DAILY;BYDAY=SU;BYHOUR=1,2,3", "FREQ=DAILY;INTERVAL=4;BYMONTHDAY=1,31,-2",
		"FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "FREQ=DAILY;BYHOUR=8,17;BYMINUTE=0;BYSETPOS=2",
		"FREQ=HOURLY", "FREQ=HOURLY;INTERVAL=5", "FREQ=HOURLY;INTERVAL=7;BYDAY=SU,MO", "FREQ=HOURLY;INTERVAL=25;BYMINUTE=0,45",
		"FREQ=HOURLY;BYHOUR=1,2,3;BYMONTHDAY=30,31", "FREQ=HOURLY;INTERVAL=2;BYHOUR=0,2,14",
		"FREQ=MINUTELY;INTERVAL=17", "FREQ=MINUTELY;INTERVAL=10;BYHOUR=2,3", "FREQ=MINUTELY;INTERVAL=90;BYDAY=SU",
		"FREQ=SECONDLY;INTERVAL=61", "FREQ=SECONDLY;INTERVAL=7;BYMINUTE=30;BYHOUR=2", "FREQ=SECONDLY;INTERVAL=3600;BYDAY=SU",
	}
	zones := []string{"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"}
	moved := 0
	for _, rule := range rules {
		freq := strings.TrimPrefix(strings.Split(rule, ";")[0], "FREQ=")
		wins := short
		if freq == "YEARLY" || freq == "MONTHLY" || freq == "WEEKLY" || freq == "DAILY" {
			wins = long
		}
		for _, zone := range zones {
			for _, ds := range starts[freq] {
				ics := fmt.Sprintf("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:s\nDTSTART;TZID=%s:%s\nDURATION:PT20M\nRRULE:%s\nEND:VEVENT\nEND:VCALENDAR\n", zone, ds, rule)
				if zone == "UTC" {
					ics = strings.Replace(ics, "DTSTART;TZID=UTC:"+ds, "DTSTART:"+ds+"Z", 1)
				}
				o := mustObjects(t, ics)[0]
				for _, w := range wins {
					start, end := mustTime(t, w.start), mustTime(t, w.end)
					full, budget := NewBudget(1<<30), NewBudget(1<<30)
					want, errW := o.Instances(start, end, &Options{Limits: Limits{PerEvent: 1 << 30, Budget: full}, noSkip: true})
					got, errG := o.Instances(start, end, &Options{Limits: Limits{PerEvent: 1 << 30, Budget: budget}})
					if fmt.Sprint(errW) != fmt.Sprint(errG) {
						t.Fatalf("%s from %s in %s: errors %v, %v", rule, ds, zone, errW, errG)
					}
					if errW != nil {
						continue // a rule that cannot start at this time of day
					}
					if !sameInstances(got, want) {
						t.Errorf("%s from %s in %s, window %s: skipping ahead gives\n%v\nwant\n%v", rule, ds, zone, w.start, startsOf(got), startsOf(want))
					}
					if budget.Used() < full.Used()/2 {
						moved++
					}
				}
			}
		}
	}
	if moved == 0 {
		t.Errorf("no expansion skipped ahead")
	}
}

// TestSkipAheadRandomRules is TestSkipAheadMatchesFullExpansion for
// rules drawn at random (with a fixed seed) from the parts it lists.
func TestSkipAheadRandomRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	zones := []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"}
	freqs := []struct {
		freq, start string
	}{
		{"YEARLY", "19990228T023000"}, {"MONTHLY", "20180131T023000"}, {"WEEKLY", "20210330T023000"},
		{"DAILY", "20230330T023000"}, {"HOURLY", "20250201T013000"}, {"MINUTELY", "20250325T013000"},
	}
	start, end := mustTime(t, "20250327T000000Z"), mustTime(t, "20250408T000000Z")
	for i := 0; i < 200; i++ {
		f := freqs[rng.IntN(len(freqs))]
		parts := []string{"FREQ=" + f.freq, "INTERVAL=" + pick("1", "2", "3", "5", "7", "13", "25")}
		if rng.IntN(2) == 0 {
			parts = append(parts, "BYDAY="+pick("MO", "SU", "SA,SU", "MO,TU,WE,TH,FR", "-1SU", "1MO,-1FR", "2TU"))
		}
		if rng.IntN(3) == 0 {
			parts = append(parts, "BYMONTHDAY="+pick("1", "-1", "15,30", "28,29,31"))
		}
		if rng.IntN(3) == 0 {
			parts = append(parts, "BYMONTH="+pick("3", "3,4", "1,3,5,7,9,11"))
		}
		if rng.IntN(3) == 0 && f.freq != "HOURLY" && f.freq != "MINUTELY" {
			parts = append(parts, "BYHOUR="+pick("2", "2,3", "0,12,23"))
		}
		if rng.IntN(4) == 0 {
			parts = append(parts, "BYSETPOS="+pick("1", "-1", "2,-2"))
		}
		if rng.IntN(4) == 0 {
			parts = append(parts, "WKST="+pick("SU", "TH"))
		}
		rule := strings.Join(parts, ";")
		zone := zones[rng.IntN(len(zones))]
		o := mustObjects(t, fmt.Sprintf("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:r\nDTSTART;TZID=%s:%s\nDURATION:PT1H\nRRULE:%s\nEND:VEVENT\nEND:VCALENDAR\n", zone, f.start, rule))[0]
		want, errW := o.Instances(start, end, &Options{Limits: Limits{PerEvent: 1 << 30}, noSkip: true})
		got, errG := o.Instances(start, end, &Options{Limits: Limits{PerEvent: 1 << 30}})
		if fmt.Sprint(errW) != fmt.Sprint(errG) {
			t.Fatalf("%s in %s: errors %v, %v", rule, zone, errW, errG)
		}
		if !sameInstances(got, want) {
			t.Errorf("%s in %s: skipping ahead gives\n%v\nwant\n%v", rule, zone, startsOf(got), startsOf(want))
		}
	}
}

func sameInstances(a, b []Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) || !a[i].RecurrenceID.Equal(b[i].RecurrenceID) {
			return false
		}
	}
	return true
}

func startsOf(in []Instance) []string {
	var s []string
	for _, i := range in {
		s = append(s, i.Start.UTC().Format("20060102T150405Z"))
	}
	return s
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("20060102T150405Z", s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOldSeriesStillBusy is D3: an HOURLY series begun in 2010 has its
// 100,000th occurrence on 29 May 2021; a window after that must still
// find its occurrences, in a number of steps that does not grow with the
// age of the series.
func TestOldSeriesStillBusy(t *testing.T) {
	tests := []struct {
		dtstart, rule, day string
		want               int
	}{
		{"20100101T000000Z", "FREQ=HOURLY", "20210530T000000Z", 24},
		{"20100101T000000Z", "FREQ=HOURLY", "20261208T000000Z", 24},
		{"20240101T000000Z", "FREQ=MINUTELY;INTERVAL=10", "20261201T000000Z", 144},
		{"20000101T000000Z", "FREQ=SECONDLY;INTERVAL=60", "20261208T000000Z", 1440},
		{"15830101T000000Z", "FREQ=DAILY", "20261208T000000Z", 1},
		{"17000228T090000Z", "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=8", "20261208T000000Z", 1},
	}
	for _, tt := range tests {
		o := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:o\nDTSTART:"+tt.dtstart+"\nDURATION:PT1S\nRRULE:"+tt.rule+"\nEND:VEVENT\nEND:VCALENDAR\n")[0]
		start := mustTime(t, tt.day)
		b := NewBudget(1 << 30)
		insts, err := o.Instances(start, start.AddDate(0, 0, 1), &Options{Limits: Limits{Budget: b}})
		if err != nil || len(insts) != tt.want {
			t.Errorf("%s from %s on %s: %d instances, %v; want %d", tt.rule, tt.dtstart, tt.day, len(insts), err, tt.want)
		}
		// The window, the day either side of it that series looks at,
		// the three hours of skipAhead's slack, and a few periods more.
		if max := 3*tt.want + tt.want/8 + 10; b.Used() > max {
			t.Errorf("%s from %s on %s: %d steps, want at most %d", tt.rule, tt.dtstart, tt.day, b.Used(), max)
		}
	}
}

// TestCountRuleFailsClosed: a rule with COUNT is expanded from DTSTART
// (COUNT counts from there); when the limit stops it before the window,
// the error says the whole window is unexpanded.
func TestCountRuleFailsClosed(t *testing.T) {
	o := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:c\nDTSTART:20100101T000000Z\nDURATION:PT30M\nRRULE:FREQ=HOURLY;COUNT=1000000\nEND:VEVENT\nEND:VCALENDAR\n")[0]
	start, end := mustTime(t, "20250301T000000Z"), mustTime(t, "20250302T000000Z")
	insts, err := o.Instances(start, end, &Options{Limits: Limits{PerEvent: 1000}})
	var te *TruncatedError
	if len(insts) != 0 || !errors.As(err, &te) || !errors.Is(err, ErrTruncated) {
		t.Fatalf("Instances = %d, %v; want none and a *TruncatedError", len(insts), err)
	}
	if len(te.Unexpanded) != 1 || !te.Unexpanded[0].Start.Equal(start) || !te.Unexpanded[0].End.Equal(end) || te.Unexpanded[0].Event != o.Master {
		t.Errorf("Unexpanded = %+v, want the whole window with the master", te.Unexpanded)
	}
	// Within the window, the unexpanded span starts at the last
	// occurrence found.
	insts, err = o.Instances(start, end, &Options{Limits: Limits{PerEvent: hoursSince2010(start) + 5}})
	if !errors.As(err, &te) || len(insts) != 5 {
		t.Fatalf("Instances = %d, %v; want 5 and a *TruncatedError", len(insts), err)
	}
	if want := mustTime(t, "20250301T040000Z"); !te.Unexpanded[0].Start.Equal(want) {
		t.Errorf("Unexpanded from %v, want %v", te.Unexpanded[0].Start, want)
	}
}

// hoursSince2010 is the number of hours from 2010-01-01 to t.
func hoursSince2010(t time.Time) int {
	return int(t.Sub(time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Hour)
}
