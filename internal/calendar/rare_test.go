package calendar

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/teambition/rrule-go"
)

// neverRules never produce an occurrence: rrule-go steps through every
// period, or every day, from the start to the year 9999 to find that out,
// in one call (0.01 to 0.35 s, BenchmarkScan), whatever the rule's UNTIL.
var neverRules = []string{
	"FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
	"FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31;UNTIL=20250401T000000Z",
	"FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=30",
	"FREQ=MONTHLY;BYDAY=2TU;BYMONTHDAY=28",
	"FREQ=YEARLY;BYDAY=2TU;BYMONTHDAY=28",
	"FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=31",
}

func neverObjects(t testing.TB, rule string, n int) []*Object {
	var b strings.Builder
	b.WriteString("BEGIN:VCALENDAR\n")
	for i := range n {
		fmt.Fprintf(&b, "BEGIN:VEVENT\nUID:never%d\nDTSTART:20250101T090000Z\nDURATION:PT1H\nRRULE:%s\nEND:VEVENT\n", i, rule)
	}
	b.WriteString("END:VCALENDAR\n")
	return mustObjects(t, b.String())
}

// TestRareDaysAreCharged: the calls in which rrule-go steps through years
// of periods without finding an occurrence are charged to the budget by
// the periods they went through, so that one answer makes few of them,
// however many such events a folder holds; the rest count busy. Each
// event that was expanded has, correctly, no occurrence in the window.
func TestRareDaysAreCharged(t *testing.T) {
	start, end := mustTime(t, "20250301T000000Z"), mustTime(t, "20250608T000000Z")
	for _, rule := range neverRules {
		const n = 40
		budget := NewBudget(200_000)
		opts := &Options{Limits: Limits{Budget: budget}}
		expanded, truncated := 0, 0
		for _, o := range neverObjects(t, rule, n) {
			insts, err := o.Instances(start, end, opts)
			var te *TruncatedError
			switch {
			case errors.As(err, &te):
				truncated++
				if len(te.Unexpanded) != 1 || !te.Unexpanded[0].Start.Equal(start) || !te.Unexpanded[0].End.Equal(end) {
					t.Errorf("%s: unexpanded %v, want the whole window", rule, te.Unexpanded)
				}
			case err != nil:
				t.Fatalf("%s: %v", rule, err)
			default:
				expanded++
			}
			if len(insts) != 0 {
				t.Errorf("%s: %d instances in the window, want none", rule, len(insts))
			}
		}
		// One scan from 2025 to the year 9999 of each shape, in steps
		// (the days, or periods, it goes through): the budget pays for
		// this many of them, and one more starts before it is known to be
		// spent.
		opt, err := rrule.StrToROption(strings.Split(rule, ";UNTIL")[0])
		if err != nil {
			t.Fatal(err)
		}
		scan := scanSteps(opt, mustTime(t, "20250228T090000Z"), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
		if limit := int(200_000/scan) + 1; expanded > limit || expanded == 0 {
			t.Errorf("%s: %d of %d events expanded, want 1 to %d (a scan is %d steps)", rule, expanded, n, limit, scan)
		}
		if expanded+truncated != n || !budget.Exhausted() {
			t.Errorf("%s: %d expanded, %d truncated, budget exhausted %v", rule, expanded, truncated, budget.Exhausted())
		}
	}
}

// TestSlowTimeLoopCountsBusy: a MINUTELY or SECONDLY rule that filters
// days and whose time-of-day loop would take thousands of steps for every
// day it skips is not expanded and counts busy; those that take a few
// steps a day, as a pomodoro every 30 minutes in working hours does, are
// expanded as before.
func TestSlowTimeLoopCountsBusy(t *testing.T) {
	start, end := mustTime(t, "20250303T000000Z"), mustTime(t, "20250305T000000Z")
	for _, tt := range []struct {
		rule string
		want int // instances; -1: truncated, busy
	}{
		{"FREQ=SECONDLY;BYHOUR=23;BYMONTH=2;BYMONTHDAY=30", -1},
		{"FREQ=MINUTELY;BYHOUR=23;BYDAY=MO", -1},
		{"FREQ=MINUTELY;INTERVAL=7;BYHOUR=9;BYDAY=MO", -1}, // the lattice moves from day to day
		{"FREQ=SECONDLY;BYSECOND=0;BYMINUTE=30;BYHOUR=1;BYMONTHDAY=3", -1},
		{"FREQ=SECONDLY;BYSECOND=0;BYMINUTE=0;BYMONTHDAY=3", 15}, // a skipped day costs one step: 00:00:00 matches
		{"FREQ=MINUTELY;INTERVAL=30;BYHOUR=9,10,11,14,15,16;BYDAY=MO,TU,WE,TH,FR", 24},
		{"FREQ=MINUTELY;INTERVAL=15;BYDAY=MO", 4 * 15},           // from 09:00, no filter on the time of day
		{"FREQ=HOURLY;BYHOUR=23;BYMONTHDAY=3", 2},                // DTSTART, 23:00
		{"FREQ=MINUTELY;BYHOUR=9;BYMINUTE=0,10,20,30,40,50", 12}, // no filter on days
	} {
		o := mustObjects(t, "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20250303T090000Z\nDURATION:PT1M\nRRULE:"+tt.rule+"\nEND:VEVENT\nEND:VCALENDAR\n")[0]
		insts, err := o.Instances(start, end, &Options{Limits: Limits{Budget: NewBudget(200_000)}})
		var te *TruncatedError
		switch {
		case tt.want < 0 && !errors.As(err, &te):
			t.Errorf("%s: err %v, want a truncation", tt.rule, err)
		case tt.want < 0 && (len(te.Unexpanded) != 1 || !te.Unexpanded[0].Start.Equal(mustTime(t, "20250303T090000Z"))):
			t.Errorf("%s: unexpanded %v, want from the series' start", tt.rule, te.Unexpanded)
		case tt.want >= 0 && (err != nil || len(insts) != tt.want):
			t.Errorf("%s: %d instances, err %v; want %d", tt.rule, len(insts), err, tt.want)
		}
	}
}

// TestUntilAsRRuleGo: fbpub applies UNTIL itself (see rrule); the
// occurrences are those rrule-go gives when it applies UNTIL, for rules of
// every frequency ending inside, before and after the window, in zones
// with DST, BYSETPOS included.
func TestUntilAsRRuleGo(t *testing.T) {
	start, end := mustTime(t, "20250320T000000Z"), mustTime(t, "20250410T000000Z")
	rules := []string{
		"FREQ=DAILY;UNTIL=20250330T010000Z", "FREQ=DAILY;UNTIL=20250330T005959Z", "FREQ=WEEKLY;BYDAY=MO,SU;UNTIL=20250406T000000Z",
		"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;UNTIL=20250331T070000Z", "FREQ=HOURLY;INTERVAL=5;UNTIL=20250322T120000Z",
		"FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;UNTIL=20250330T080000Z", "FREQ=DAILY;UNTIL=20250301T000000Z", "FREQ=DAILY;UNTIL=20260101T000000Z",
		"FREQ=MINUTELY;INTERVAL=90;BYDAY=SU;UNTIL=20250323T120000Z",
	}
	for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		ds := time.Date(2025, 3, 2, 9, 30, 0, 0, loc)
		for _, rule := range rules {
			o := mustObjects(t, fmt.Sprintf("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:u\nDTSTART;TZID=%s:20250302T093000\nDURATION:PT10M\nRRULE:%s\nEND:VEVENT\nEND:VCALENDAR\n", zone, rule))[0]
			got, err := o.Instances(start, end, nil)
			if err != nil {
				t.Fatalf("%s in %s: %v", rule, zone, err)
			}
			opt, err := rrule.StrToROptionInLocation(rule, loc)
			if err != nil {
				t.Fatal(err)
			}
			opt.Dtstart = ds
			r, err := rrule.NewRRule(*opt)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range r.Between(start.Add(-10*time.Minute), end, false) {
				want = append(want, w.UTC().Format("20060102T150405Z"))
			}
			if fmt.Sprint(startsOf(got)) != fmt.Sprint(want) {
				t.Errorf("%s in %s:\n got %v\nwant %v", rule, zone, startsOf(got), want)
			}
		}
	}
}
