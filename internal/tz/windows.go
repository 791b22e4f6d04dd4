package tz

//go:generate go run gen_windows.go

import "strings"

// windowsZonesFold maps the lower-cased Windows names of windowsZones to
// their IANA zones, for clients that change the case.
var windowsZonesFold = func() map[string]string {
	m := make(map[string]string, len(windowsZones))
	for k, v := range windowsZones {
		m[strings.ToLower(k)] = v
	}
	return m
}()

// msTZonePrefix is how Exchange writes some TZIDs: "tzone://Microsoft/Utc".
const msTZonePrefix = "tzone://microsoft/"

// WindowsToIANA returns the IANA zone name for a Windows time zone name such
// as "W. Europe Standard Time", as CLDR's windowsZones maps it for territory
// 001 (the names are CLDR's, which keeps some older aliases such as
// "Asia/Calcutta"; all of them load with LoadIANA). Case, surrounding white
// space and quotes, and Exchange's "tzone://Microsoft/" prefix are ignored.
// It reports false for names that are not Windows zones.
func WindowsToIANA(name string) (string, bool) {
	name = normalizeTZID(name)
	if iana, ok := windowsZones[name]; ok {
		return iana, true
	}
	lower := strings.ToLower(name)
	lower = strings.TrimPrefix(lower, msTZonePrefix)
	iana, ok := windowsZonesFold[lower]
	return iana, ok
}
