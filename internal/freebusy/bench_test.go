package freebusy

import (
	"fmt"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
)

// benchObjects returns n events as fbpub holds a folder of n messages:
// one message (one calendar.Objects call) per event, every tenth a weekly
// series, spread over 60 days from start. With split, each series also
// has an override of its second instance in a message of its own.
func benchObjects(b *testing.B, n int, start time.Time, split bool) []*calendar.Object {
	b.Helper()
	var objs []*calendar.Object
	add := func(ics string) {
		cals, err := calendar.Decode([]byte(ics))
		if err != nil {
			b.Fatal(err)
		}
		objs = append(objs, calendar.Objects(cals)...)
	}
	for i := range n {
		day := start.AddDate(0, 0, i%60).Add(time.Duration(6+i%12) * time.Hour)
		rule := ""
		if i%10 == 0 {
			rule = "RRULE:FREQ=WEEKLY;COUNT=20\r\n"
		}
		add(fmt.Sprintf("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bench-%d\r\nDTSTART:%s\r\nDURATION:PT1H\r\n%sSUMMARY:Bench %d\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
			i, day.Format("20060102T150405Z"), rule, i))
		if split && rule != "" {
			rid := day.AddDate(0, 0, 7)
			add(fmt.Sprintf("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:bench-%d\r\nRECURRENCE-ID:%s\r\nDTSTART:%s\r\nDURATION:PT1H\r\nSUMMARY:Moved %d\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
				i, rid.Format("20060102T150405Z"), rid.Add(3*time.Hour).Format("20060102T150405Z"), i))
		}
	}
	return objs
}

// BenchmarkCompute10k computes the free/busy of a folder of 10,000 events
// over 60 days, with and without the occurrences the extended view needs:
// no two messages sharing a UID, and ("split") each of the 1,000 series
// with an override in a message of its own, which Compute unites with it.
func BenchmarkCompute10k(b *testing.B) {
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	w := Window{start, start.AddDate(0, 0, 60)}
	for _, split := range []bool{false, true} {
		objs := benchObjects(b, 10000, start, split)
		for _, occ := range []bool{false, true} {
			name := map[bool]string{false: "vfb", true: "xfb"}[occ]
			if split {
				name += "-split"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					Compute(objs, w, &Options{Occurrences: occ})
				}
			})
		}
	}
}

// BenchmarkHostile computes the free/busy of 20 and 5,000 (upload.max_events)
// events that recur every second, over 9 days: the cost of one answer is
// that of the budget (steps/op), whatever the number of events.
func BenchmarkHostile(b *testing.B) {
	w := Window{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)}
	for _, n := range []int{20, 5000} {
		objs := hostile(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			var steps int
			for b.Loop() {
				steps = Compute(objs, w, nil).Steps
			}
			b.ReportMetric(float64(steps), "steps/op")
		})
	}
}
