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
		a, err := p.availability(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !a.End.IsZero() && !a.End.After(a.Start) {
			continue // an empty span says nothing
		}
		if (!a.Start.IsZero() && !a.Start.Before(end)) || (!a.End.IsZero() && !a.End.After(start)) {
			continue // outside the window
		}
		var serr []error
		a.Available, serr = o.available(c, start, end, opts)
		errs = append(errs, serr...)
		out = append(out, a)
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}

// availability reads the VAVAILABILITY c's own properties: BUSYTYPE,
// PRIORITY and its span, without its AVAILABLE times. An error means its
// span cannot be read.
func (p *timeParser) availability(c *ical.Component) (Availability, error) {
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
	var err error
	a.Start, a.End, err = p.span(c)
	return a, err
}

// span reads the span of the VAVAILABILITY c: DTSTART, and DTEND or
// DURATION; or DTEND alone. A side it does not give is zero: unbounded.
func (p *timeParser) span(c *ical.Component) (start, end time.Time, err error) {
	ds := c.Props.Get(ical.PropDateTimeStart)
	if ds == nil {
		if de := c.Props.Get(ical.PropDateTimeEnd); de != nil {
			e, err := p.prop(de)
			if err != nil {
				return time.Time{}, time.Time{}, err
			}
			end = e.t
		}
		return time.Time{}, end, nil
	}
	st, err := p.prop(ds)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if c.Props.Get(ical.PropDateTimeEnd) != nil || c.Props.Get(ical.PropDuration) != nil {
		l, err := p.eventLength(c, st)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		end = l.end(st.t)
	}
	return st.t, end, nil
}

// available returns the AVAILABLE times of the VAVAILABILITY c that
// overlap [start, end), sorted by start, with the errors of the series
// that could not be expanded.
func (o *Object) available(c *ical.Component, start, end time.Time, opts *Options) ([]Span, []error) {
	var spans []Span
	var errs []error
	for _, s := range o.availableSeries(c) {
		insts, err := s.Instances(start, end, opts)
		if err != nil {
			errs = append(errs, err)
		}
		for _, in := range insts {
			if in.End.After(in.Start) {
				spans = append(spans, Span{Start: in.Start, End: in.End})
			}
		}
	}
	slices.SortFunc(spans, func(x, y Span) int { return x.Start.Compare(y.Start) })
	return spans, errs
}

// availableSeries groups the AVAILABLE components of c into series by
// UID: a master and its RECURRENCE-ID overrides, for Object.Instances,
// which reads only their properties. A second master of a UID is a
// series of its own.
func (o *Object) availableSeries(c *ical.Component) []*Object {
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
	return order
}
