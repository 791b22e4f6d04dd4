package calendar

import (
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

// An override is a VEVENT with a RECURRENCE-ID: it replaces one
// occurrence of the series, or, with RANGE=THISANDFUTURE, moves that
// occurrence and every later one and lends them its properties.

// override is an override with its parsed recurrence id.
type override struct {
	c   *ical.Component
	rid stamp
}

// future is a THISANDFUTURE override: from rid on, occurrences move by
// shift, last length and take event's properties.
type future struct {
	rid    time.Time
	shift  time.Duration
	length length
	event  *ical.Component
}

// overrideSet is what an object's overrides do to its series.
type overrideSet struct {
	// overridden holds the recurrence ids (Unix seconds) that overrides
	// replace.
	overridden map[int64]bool
	// futures are the THISANDFUTURE overrides, sorted by recurrence id.
	futures []future
	// maxShift is the largest move, either way, of a THISANDFUTURE
	// override.
	maxShift time.Duration
}

// latestOverrides keeps one override per instance: of two copies (the
// UID's messages may each hold one), the newer counts (Version; on a tie
// the later). An override whose RECURRENCE-ID does not parse is left out
// and reported.
func (p *timeParser) latestOverrides(overrides []*ical.Component) ([]override, []error) {
	var errs []error
	ovs := make([]override, 0, len(overrides))
	var at map[int64]int // index in ovs by recurrence id, when there are several
	if len(overrides) > 1 {
		at = make(map[int64]int, len(overrides))
	}
	for _, ov := range overrides {
		rid, err := p.prop(ov.Props.Get(ical.PropRecurrenceID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if at != nil {
			if i, dup := at[rid.t.Unix()]; dup {
				if VersionOf(ov).Compare(VersionOf(ovs[i].c)) >= 0 {
					ovs[i] = override{ov, rid}
				}
				continue
			}
			at[rid.t.Unix()] = len(ovs)
		}
		ovs = append(ovs, override{ov, rid})
	}
	return ovs, errs
}

// applyOverrides returns the occurrences the overrides ovs stand for that
// overlap [start, end) and are not excluded (exdates), and what they do
// to the series. An override that cannot be read is left out and
// reported.
func (p *timeParser) applyOverrides(ovs []override, exdates exclusions, start, end time.Time) ([]Instance, overrideSet, []error) {
	var out []Instance
	var errs []error
	set := overrideSet{overridden: map[int64]bool{}}
	for _, x := range ovs {
		ov, rid := x.c, x.rid
		inst, l, err := p.single(ov, rid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.overridden[rid.t.Unix()] = true
		if strings.EqualFold(ov.Props.Get(ical.PropRecurrenceID).Params.Get("RANGE"), "THISANDFUTURE") {
			shift := inst.Start.Sub(rid.t)
			set.futures = append(set.futures, future{rid: rid.t, shift: shift, length: l, event: ov})
			set.maxShift = max(set.maxShift, shift, -shift)
		}
		if exdates.excludes(rid) {
			continue
		}
		if overlaps(inst.Start, inst.End, start, end) {
			out = append(out, inst)
		}
	}
	slices.SortFunc(set.futures, func(a, b future) int { return a.rid.Compare(b.rid) })
	return out, set, errs
}

// single is the one occurrence an override stands for: its own DTSTART
// (else the recurrence id) and its own length.
func (p *timeParser) single(c *ical.Component, rid stamp) (Instance, length, error) {
	st := rid
	if ds := c.Props.Get(ical.PropDateTimeStart); ds != nil {
		var err error
		if st, err = p.prop(ds); err != nil {
			return Instance{}, length{}, err
		}
	}
	l, err := p.eventLength(c, st)
	if err != nil {
		return Instance{}, length{}, err
	}
	return Instance{Start: st.t, End: l.end(st.t), Event: c, RecurrenceID: rid.t, AllDay: st.allDay}, l, nil
}
