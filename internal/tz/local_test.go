package tz

import (
	"testing"
	"time"
)

func TestLocalTime(t *testing.T) {
	berlin := mustIANA(t, "Europe/Berlin")
	ny := mustIANA(t, "America/New_York")
	sydney := mustIANA(t, "Australia/Sydney")
	custom := loadTestdata(t, "outlook_custom_weurope.ics", nil)
	customBerlin, src := custom.Resolve("Custom Zone 1")
	if src != VTimezone {
		t.Fatalf(`Resolve("Custom Zone 1") source = %v, want VTimezone`, src)
	}
	utc := func(y, mo, d, h, mi int) time.Time { return time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC) }
	tests := []struct {
		name               string
		y, mo, d, h, mi, s int
		loc                *time.Location
		want               time.Time // RFC 5545
		wantDate           time.Time // what time.Date returns (Go 1.26)
	}{
		{"Berlin ordinary", 2025, 7, 1, 12, 0, 0, berlin, utc(2025, 7, 1, 10, 0), utc(2025, 7, 1, 10, 0)},
		{"Berlin gap: offset before", 2025, 3, 30, 2, 30, 0, berlin, utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 1, 30)},
		{"Berlin gap start", 2025, 3, 30, 2, 0, 0, berlin, utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 1, 0)},
		{"Berlin after gap", 2025, 3, 30, 3, 0, 0, berlin, utc(2025, 3, 30, 1, 0), utc(2025, 3, 30, 1, 0)},
		{"Berlin repeated: first", 2025, 10, 26, 2, 30, 0, berlin, utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30)},
		{"Berlin repeated start", 2025, 10, 26, 2, 0, 0, berlin, utc(2025, 10, 26, 0, 0), utc(2025, 10, 26, 1, 0)},
		{"Berlin after repeat", 2025, 10, 26, 3, 0, 0, berlin, utc(2025, 10, 26, 2, 0), utc(2025, 10, 26, 2, 0)},
		{"New York ordinary", 2025, 7, 1, 12, 0, 0, ny, utc(2025, 7, 1, 16, 0), utc(2025, 7, 1, 16, 0)},
		{"New York gap: offset before", 2025, 3, 9, 2, 30, 0, ny, utc(2025, 3, 9, 7, 30), utc(2025, 3, 9, 6, 30)},
		{"New York repeated: first", 2025, 11, 2, 1, 30, 0, ny, utc(2025, 11, 2, 5, 30), utc(2025, 11, 2, 5, 30)},
		{"New York after repeat", 2025, 11, 2, 2, 0, 0, ny, utc(2025, 11, 2, 7, 0), utc(2025, 11, 2, 7, 0)},
		{"Sydney gap", 2025, 10, 5, 2, 30, 0, sydney, utc(2025, 10, 4, 16, 30), utc(2025, 10, 4, 16, 30)},
		{"Sydney repeated", 2025, 4, 6, 2, 30, 0, sydney, utc(2025, 4, 5, 15, 30), utc(2025, 4, 5, 16, 30)},
		{"VTIMEZONE gap", 2025, 3, 30, 2, 30, 0, customBerlin, utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 1, 30)},
		{"VTIMEZONE repeated", 2025, 10, 26, 2, 30, 0, customBerlin, utc(2025, 10, 26, 0, 30), utc(2025, 10, 26, 1, 30)},
		// 2040 is a leap year served by Berlin's TZ footer rule (golang/go#81583).
		{"Berlin 2040-12-31", 2040, 12, 31, 12, 0, 0, berlin, utc(2040, 12, 31, 11, 0), utc(2040, 12, 31, 11, 0)},
		{"Berlin 2040 repeated", 2040, 10, 28, 2, 30, 0, berlin, utc(2040, 10, 28, 0, 30), utc(2040, 10, 28, 1, 30)},
		{"UTC", 2025, 3, 30, 2, 30, 0, time.UTC, utc(2025, 3, 30, 2, 30), utc(2025, 3, 30, 2, 30)},
		{"nil means UTC", 2025, 3, 30, 2, 30, 0, nil, utc(2025, 3, 30, 2, 30), utc(2025, 3, 30, 2, 30)},
		{"normalized like time.Date", 2025, 1, 32, 25, 0, 0, berlin, utc(2025, 2, 2, 0, 0), utc(2025, 2, 2, 0, 0)},
	}
	for _, tt := range tests {
		got := LocalTime(tt.y, tt.mo, tt.d, tt.h, tt.mi, tt.s, tt.loc)
		if !got.Equal(tt.want) {
			t.Errorf("%s: LocalTime(%d, %d, %d, %d, %d, %d, %v) = %v, want %v",
				tt.name, tt.y, tt.mo, tt.d, tt.h, tt.mi, tt.s, tt.loc, got.UTC(), tt.want)
		}
		if tt.loc != nil && got.Location() != tt.loc {
			t.Errorf("%s: LocalTime(...).Location() = %v, want %v", tt.name, got.Location(), tt.loc)
		}
		// Document what time.Date does; if Go changes, this says where.
		loc := tt.loc
		if loc == nil {
			loc = time.UTC
		}
		if got := time.Date(tt.y, time.Month(tt.mo), tt.d, tt.h, tt.mi, tt.s, 0, loc); !got.Equal(tt.wantDate) {
			t.Errorf("%s: time.Date(%d, %d, %d, %d, %d, %d, 0, %v) = %v, want %v (documented Go behaviour changed?)",
				tt.name, tt.y, tt.mo, tt.d, tt.h, tt.mi, tt.s, loc, got.UTC(), tt.wantDate)
		}
	}
}

// TestLocalTimeRoundTrip checks that every existing local time of a day
// reads back as itself.
func TestLocalTimeRoundTrip(t *testing.T) {
	for _, name := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"} {
		loc := mustIANA(t, name)
		for u := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); u.Year() < 2026; u = u.Add(47 * time.Minute) {
			l := u.In(loc)
			got := LocalTime(l.Year(), int(l.Month()), l.Day(), l.Hour(), l.Minute(), l.Second(), loc)
			// got is the first occurrence of that reading, so it is u or, in a
			// repeated hour, earlier with the same reading.
			g := got.In(loc)
			if got.After(u) || g.Hour() != l.Hour() || g.Minute() != l.Minute() || g.Day() != l.Day() {
				t.Errorf("LocalTime(%s in %s) = %v, want %v or an earlier instant with the same reading", l.Format("2006-01-02 15:04"), name, g, l)
			}
		}
	}
}
