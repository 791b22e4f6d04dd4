package tz

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-ical"
)

// mustIANA loads an IANA zone for a test.
func mustIANA(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time.LoadLocation(%q): %v", name, err)
	}
	return loc
}

// decodeCalendar parses an iCalendar text with go-ical, recovering from its
// panics on malformed input.
func decodeCalendar(text string) (cal *ical.Calendar, err error) {
	defer func() {
		if p := recover(); p != nil {
			cal, err = nil, fmt.Errorf("go-ical panicked: %v", p)
		}
	}()
	return ical.NewDecoder(strings.NewReader(text)).Decode()
}

// vtimezones returns the VTIMEZONE components of a calendar.
func vtimezones(cal *ical.Calendar) []*ical.Component {
	var out []*ical.Component
	for _, c := range cal.Children {
		if c.Name == ical.CompTimezone {
			out = append(out, c)
		}
	}
	return out
}

// loadTestdata parses testdata/name and returns a resolver for its VTIMEZONEs.
func loadTestdata(t testing.TB, name string, def *time.Location) *Resolver {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	cal, err := decodeCalendar(string(b))
	if err != nil {
		t.Fatalf("decoding %s: %v", name, err)
	}
	return NewResolver(vtimezones(cal), def)
}

func TestWindowsToIANA(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"W. Europe Standard Time", "Europe/Berlin", true},
		{"Eastern Standard Time", "America/New_York", true},
		{"GMT Standard Time", "Europe/London", true},
		{"Tokyo Standard Time", "Asia/Tokyo", true},
		{"AUS Eastern Standard Time", "Australia/Sydney", true},
		{"India Standard Time", "Asia/Calcutta", true}, // CLDR keeps the old name
		{"UTC", "Etc/UTC", true},
		{"Pacific Standard Time", "America/Los_Angeles", true},
		{`"W. Europe Standard Time"`, "Europe/Berlin", true},
		{`  'Eastern Standard Time' `, "America/New_York", true},
		{"w. europe standard time", "Europe/Berlin", true},
		{"tzone://Microsoft/Utc", "Etc/UTC", true},
		{"Europe/Berlin", "", false},
		{"Custom Zone 1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := WindowsToIANA(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("WindowsToIANA(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestWindowsTableLoads checks that every zone of the generated table is in
// the embedded IANA database.
func TestWindowsTableLoads(t *testing.T) {
	if len(windowsZones) < 100 {
		t.Fatalf("windowsZones has %d entries; regenerate with go generate", len(windowsZones))
	}
	for win, iana := range windowsZones {
		if _, ok := LoadIANA(iana); !ok {
			t.Errorf("WindowsToIANA(%q) = %q, which LoadIANA does not know", win, iana)
		}
	}
}

func TestResolveNames(t *testing.T) {
	def := mustIANA(t, "Europe/Paris")
	r := NewResolver(nil, def)
	tests := []struct {
		tzid    string
		wantLoc string // time.Location.String()
		wantSrc Source
	}{
		{"Europe/Berlin", "Europe/Berlin", IANA},
		{"America/New_York", "America/New_York", IANA},
		{"UTC", "UTC", IANA},
		{"Etc/GMT+5", "Etc/GMT+5", IANA},
		{` "Europe/Berlin" `, "Europe/Berlin", IANA},
		{"/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin", IANA},
		{"/mozilla.org/20070129_1/America/Indiana/Indianapolis", "America/Indiana/Indianapolis", IANA},
		{"/citadel.org/20190914_1/Europe/Berlin", "Europe/Berlin", IANA},
		{"/softwarestudio.org/Olson_20011030_5/America/New_York", "America/New_York", IANA},
		{"/freeassociation.sourceforge.net/Tzfile/Europe/London", "Europe/London", IANA},
		{"/example.com/UTC", "UTC", IANA},
		{"W. Europe Standard Time", "Europe/Berlin", Windows},
		{`"W. Europe Standard Time"`, "Europe/Berlin", Windows},
		{"Eastern Standard Time", "America/New_York", Windows},
		{"GMT Standard Time", "Europe/London", Windows},
		{"Tokyo Standard Time", "Asia/Tokyo", Windows},
		{"AUS Eastern Standard Time", "Australia/Sydney", Windows},
		{"India Standard Time", "Asia/Calcutta", Windows},
		{"tzone://Microsoft/Utc", "Etc/UTC", Windows},
		{"Foo/EST", "Europe/Paris", Default}, // one-segment suffix needs a "/" prefix
		{"Local", "Europe/Paris", Default},
		{"../../etc/passwd", "Europe/Paris", Default},
		{"/etc/localtime", "Europe/Paris", Default},
		{"/usr/share/zoneinfo/right/Europe/Berlin", "Europe/Berlin", IANA},
		{"posixrules", "Europe/Paris", Default},
		{"Custom Zone 1", "Europe/Paris", Default},
		{"", "Europe/Paris", Default},
		{strings.Repeat("a/", 500) + "Europe/Berlin", "Europe/Paris", Default},
	}
	for _, tt := range tests {
		loc, src := r.Resolve(tt.tzid)
		if loc.String() != tt.wantLoc || src != tt.wantSrc {
			t.Errorf("Resolve(%q) = %s, %v; want %s, %v", tt.tzid, loc, src, tt.wantLoc, tt.wantSrc)
		}
	}
}

func TestResolveNilDefault(t *testing.T) {
	loc, src := NewResolver(nil, nil).Resolve("No Such Zone")
	if loc != time.UTC || src != Default {
		t.Errorf("NewResolver(nil, nil).Resolve(%q) = %s, %v; want UTC, Default", "No Such Zone", loc, src)
	}
}

// TestWindowsOffsets checks Windows names against instants around real
// transitions, including the southern hemisphere.
func TestWindowsOffsets(t *testing.T) {
	r := NewResolver(nil, nil)
	tests := []struct {
		tzid string
		at   time.Time
		want int // offset in seconds
	}{
		{"W. Europe Standard Time", time.Date(2025, 3, 30, 0, 59, 0, 0, time.UTC), 3600},
		{"W. Europe Standard Time", time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC), 7200},
		{"Eastern Standard Time", time.Date(2025, 3, 9, 6, 59, 0, 0, time.UTC), -5 * 3600},
		{"Eastern Standard Time", time.Date(2025, 3, 9, 7, 0, 0, 0, time.UTC), -4 * 3600},
		{"GMT Standard Time", time.Date(2025, 10, 26, 0, 59, 0, 0, time.UTC), 3600},
		{"GMT Standard Time", time.Date(2025, 10, 26, 1, 0, 0, 0, time.UTC), 0},
		{"AUS Eastern Standard Time", time.Date(2025, 4, 5, 15, 59, 0, 0, time.UTC), 11 * 3600},
		{"AUS Eastern Standard Time", time.Date(2025, 4, 5, 16, 0, 0, 0, time.UTC), 10 * 3600},
		{"AUS Eastern Standard Time", time.Date(2025, 10, 4, 15, 59, 0, 0, time.UTC), 10 * 3600},
		{"AUS Eastern Standard Time", time.Date(2025, 10, 4, 16, 0, 0, 0, time.UTC), 11 * 3600},
		{"Tokyo Standard Time", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), 9 * 3600},
		{"India Standard Time", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), 5*3600 + 1800},
		{"UTC", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), 0},
		// Windows names whose representative zone CLDR changed after
		// tzdata 2021a: Chihuahua left the Pacific-Mexico offset in 2022
		// (Windows kept the name for Mazatlán's UTC-7), and Almaty moved
		// to UTC+5 in 2024 (the name stays with Bishkek's UTC+6).
		{"Mountain Standard Time (Mexico)", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), -7 * 3600},
		{"Central Asia Standard Time", time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), 6 * 3600},
	}
	for _, tt := range tests {
		loc, _ := r.Resolve(tt.tzid)
		if _, off := tt.at.In(loc).Zone(); off != tt.want {
			t.Errorf("Resolve(%q): %v.In(loc) offset = %d, want %d", tt.tzid, tt.at, off, tt.want)
		}
	}
}

func TestLoadIANACached(t *testing.T) {
	a, ok := LoadIANA("Europe/Berlin")
	if !ok {
		t.Fatal(`LoadIANA("Europe/Berlin") failed`)
	}
	b, _ := LoadIANA("Europe/Berlin")
	if a != b {
		t.Errorf(`LoadIANA("Europe/Berlin") returned different *time.Location values`)
	}
	for _, name := range []string{"", "Local", "Nowhere/Special", "Europe/../Europe/Berlin", "Europe//Berlin", "/Europe/Berlin"} {
		if loc, ok := LoadIANA(name); ok || loc != nil {
			t.Errorf("LoadIANA(%q) = %v, %v; want nil, false", name, loc, ok)
		}
	}
}

func TestSourceString(t *testing.T) {
	for s, want := range map[Source]string{Default: "Default", IANA: "IANA", Windows: "Windows", VTimezone: "VTimezone", Source(9): "Source(9)"} {
		if got := s.String(); got != want {
			t.Errorf("Source(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestResolveConcurrent(t *testing.T) {
	r := loadTestdata(t, "outlook_custom_weurope.ics", nil)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range []string{"Custom Zone 1", "W. Europe Standard Time", "Europe/Berlin", "nope"} {
				loc, _ := r.Resolve(id)
				_ = time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC).In(loc).String()
			}
		}()
	}
	wg.Wait()
	a, _ := r.Resolve("Custom Zone 1")
	b, _ := r.Resolve("Custom Zone 1")
	if a != b {
		t.Errorf(`Resolve("Custom Zone 1") compiled twice`)
	}
}

func BenchmarkResolveIANA(b *testing.B) {
	r := NewResolver(nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		r.Resolve("Europe/Berlin")
	}
}

func BenchmarkResolveWindows(b *testing.B) {
	r := NewResolver(nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		r.Resolve("W. Europe Standard Time")
	}
}

func BenchmarkCompileOutlook(b *testing.B) {
	r := loadTestdata(b, "outlook_custom_weurope.ics", nil)
	c := r.vtz["Custom Zone 1"].comp
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := compileVTimezone("Custom Zone 1", c); err != nil {
			b.Fatal(err)
		}
	}
}
