package privacy

import (
	"fmt"
	"maps"
	"slices"
	"testing"
)

// clone returns a deep copy of r that can be changed without touching r.
func (r *rules) clone() *rules {
	c := *r
	copyKeeps := func(m map[string]keep) map[string]keep {
		out := make(map[string]keep, len(m))
		for name, k := range m {
			k.params = maps.Clone(k.params)
			out[name] = k
		}
		return out
	}
	c.props, c.observance = copyKeeps(r.props), copyKeeps(r.observance)
	return &c
}

// acceptAll is a value check knocked out: everything passes as written.
func acceptAll(v string) (string, bool) { return v, true }

// mutants returns std with each of its rules knocked out in turn, by name:
// every allow-listed property and parameter dropped, every check of a
// value made to accept anything, every switch turned off.
func mutants() map[string]*rules {
	out := map[string]*rules{}
	for _, list := range []struct {
		name string
		get  func(*rules) map[string]keep
	}{
		{"event", func(r *rules) map[string]keep { return r.props }},
		{"observance", func(r *rules) map[string]keep { return r.observance }},
	} {
		for _, prop := range slices.Sorted(maps.Keys(list.get(std))) {
			m := std.clone()
			delete(list.get(m), prop)
			out[fmt.Sprintf("%s property %s dropped", list.name, prop)] = m

			m = std.clone()
			k := list.get(m)[prop]
			k.value = acceptAll
			list.get(m)[prop] = k
			out[fmt.Sprintf("%s property %s: any value", list.name, prop)] = m

			for _, param := range slices.Sorted(maps.Keys(list.get(std)[prop].params)) {
				m = std.clone()
				delete(list.get(m)[prop].params, param)
				out[fmt.Sprintf("%s property %s: parameter %s dropped", list.name, prop, param)] = m
				if list.get(std)[prop].params[param] != nil {
					m = std.clone()
					list.get(m)[prop].params[param] = acceptAll
					out[fmt.Sprintf("%s property %s: any %s", list.name, prop, param)] = m
				}
			}
		}
	}
	for name, off := range map[string]func(*rules){
		"hashUID":       func(r *rules) { r.hashUID = false },
		"busyTitle":     func(r *rules) { r.busyTitle = false },
		"classMark":     func(r *rules) { r.classMark = false },
		"neutralTZID":   func(r *rules) { r.neutralTZID = false },
		"stripAlarms":   func(r *rules) { r.stripAlarms = false },
		"seriesClass":   func(r *rules) { r.seriesClass = false },
		"orphanPrivate": func(r *rules) { r.orphanPrivate = false },
		"futureSeries":  func(r *rules) { r.futureSeries = false },
		"strictest":     func(r *rules) { r.strictest = false },
	} {
		m := std.clone()
		off(m)
		out["rule "+name+" off"] = m
	}
	return out
}

// TestMutants proves that the tables of privacy_test.go notice a rule
// knocked out: each mutant of std fails at least one case. A mutant that
// passes them all is a rule no test holds in place.
func TestMutants(t *testing.T) {
	ms := mutants()
	if len(ms) < 40 {
		t.Fatalf("only %d mutants: the rules are not all knocked out", len(ms))
	}
	for _, name := range slices.Sorted(maps.Keys(ms)) {
		r := ms[name]
		fails := len(checkEvents(r, true)) + len(checkSeries(r)) + len(checkZones(r))
		if fails == 0 {
			t.Errorf("%s: every table case still passes", name)
		}
	}
}
