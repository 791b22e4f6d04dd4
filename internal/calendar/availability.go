package calendar

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/tz"
)

// The components of RFC 7953 (Calendar Availability).
const (
	CompAvailability = "VAVAILABILITY"
	CompAvailable    = "AVAILABLE"
	// PropBusyType is VAVAILABILITY's BUSYTYPE: what its time outside
	// AVAILABLE periods counts as.
	PropBusyType = "BUSYTYPE"
)

// Availability is one VAVAILABILITY component read for a window: the span
// it speaks for, and its AVAILABLE times in that window. Within the span,
// time outside Available is busy as BusyType says; outside the span the
// component says nothing.
type Availability struct {
	// Start and End bound the component's span (DTSTART, DTEND or
	// DURATION); a zero Start or End leaves that side unbounded.
	Start, End time.Time
	// BusyType is BUSYTYPE in upper case: "BUSY-UNAVAILABLE" (the
	// default), "BUSY" or "BUSY-TENTATIVE".
	BusyType string
	// Priority is PRIORITY: 1 is the highest, 9 the lowest; 0 (or none)
	// is undefined, below 9.
	Priority int
	// Available are the AVAILABLE occurrences that overlap the window,
	// sorted by start, not clipped.
	Available []Span
}

// Span is a stretch of time, [Start, End).
type Span struct {
	Start, End time.Time
}

// Availabilities reads the VAVAILABILITY components of o for the window
// [start, end). AVAILABLE components are expanded as events are (RRULE,
// RDATE, EXDATE, RECURRENCE-ID overrides, time zones as opts says); those
// that share a UID within one VAVAILABILITY are one series. A component
// whose own times cannot be read is left out; an AVAILABLE that cannot be
// read adds no available time. Either is reported in the joined error,
// alongside what could be read.
func (o *Object) Availabilities(start, end time.Time, opts *Options) ([]Availability, error) {
	var out []Availability
	var errs []error
	p := &timeParser{def: opts.zone(), zones: tz.NewResolver(o.Timezones, opts.zone())}
	for _, c := range o.Availability {
		a := Availability{BusyType: "BUSY-UNAVAILABLE"}
		if bt := c.Props.Get(PropBusyType); bt != nil {
			switch v := strings.ToUpper(strings.TrimSpace(bt.Value)); v {
			case "BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE":
				a.BusyType = v
			}
		}
		if pr := c.Props.Get(ical.PropPriority); pr != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(pr.Value)); err == nil && n >= 0 && n <= 9 {
				a.Priority = n
			}
		}
		if ds := c.Props.Get(ical.PropDateTimeStart); ds != nil {
			st, err := p.prop(ds)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			a.Start = st.t
			if c.Props.Get(ical.PropDateTimeEnd) != nil || c.Props.Get(ical.PropDuration) != nil {
				l, err := p.eventLength(c, st)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				a.End = l.end(st.t)
			}
		} else if de := c.Props.Get(ical.PropDateTimeEnd); de != nil {
			e, err := p.prop(de)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			a.End = e.t
		}
		if !a.End.IsZero() && !a.End.After(a.Start) {
			continue // an empty span says nothing
		}
		if (!a.Start.IsZero() && !a.Start.Before(end)) || (!a.End.IsZero() && !a.End.After(start)) {
			continue // outside the window
		}
		// AVAILABLE components grouped into series by UID: a master and
		// its RECURRENCE-ID overrides, expanded by Object.Instances, which
		// reads only their properties.
		series := map[string]*Object{}
		var order []*Object
		for _, av := range c.Children {
			if av.Name != CompAvailable {
				continue
			}
			uid := uidOf(av)
			s := series[uid]
			if s == nil {
				s = &Object{UID: uid, Timezones: o.Timezones}
				series[uid] = s
				order = append(order, s)
			}
			if av.Props.Get(ical.PropRecurrenceID) != nil {
				s.Overrides = append(s.Overrides, av)
			} else if s.Master == nil {
				s.Master = av
			} else {
				order = append(order, &Object{UID: uid, Master: av, Timezones: o.Timezones})
			}
		}
		for _, s := range order {
			insts, err := s.Instances(start, end, opts)
			if err != nil {
				errs = append(errs, err)
			}
			for _, in := range insts {
				if in.End.After(in.Start) {
					a.Available = append(a.Available, Span{Start: in.Start, End: in.End})
				}
			}
		}
		slices.SortFunc(a.Available, func(x, y Span) int { return x.Start.Compare(y.Start) })
		out = append(out, a)
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}
