// Package freebusy turns calendar instances into the busy periods a
// VFREEBUSY publishes (RFC 5545 §3.6.4), and writes that VFREEBUSY.
//
// It decides which occurrences make someone busy and how (the counting
// rules), and nothing about where events come from or who may see them.
package freebusy

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/calendar"
)

// Type is an RFC 5545 FBTYPE.
type Type string

// The FBTYPE values fbpub publishes.
const (
	Busy            Type = "BUSY"
	BusyTentative   Type = "BUSY-TENTATIVE"
	BusyUnavailable Type = "BUSY-UNAVAILABLE"
	Free            Type = "FREE"
)

// Period is one busy period in UTC.
type Period struct {
	Start, End time.Time
	Type       Type
}

// Window is the span a VFREEBUSY covers: [Start, End).
type Window struct {
	Start, End time.Time
}

// Options configure Compute. A nil *Options means defaults.
type Options struct {
	// Owner is the calendar user's address ("mailto:alice@example.org"),
	// used for the PARTSTAT rule: when the owner is an ATTENDEE, a DECLINED
	// answer frees the time and NEEDS-ACTION makes it tentative. Empty
	// disables the rule.
	Owner string
	// Expand is passed to the expansion of every object.
	Expand *calendar.Options
	// Occurrences asks Compute to keep, besides the merged periods, every
	// busy occurrence on its own with the event it came from (Result.
	// Occurrences): what the extended free/busy view annotates.
	Occurrences bool
}

// Occurrence is one busy occurrence of an event, clipped to the window,
// or one period of a published VFREEBUSY (Event nil).
type Occurrence struct {
	Period
	// Object is the object (of one message) that Event, or the VFREEBUSY,
	// is stored in: one of the objects given to Compute, also when the
	// occurrence belongs to a series stored in another.
	Object *calendar.Object
	// Event is the VEVENT whose properties apply (the master, or the
	// override of this occurrence); shared with Object, not to be
	// modified.
	Event *ical.Component
}

// DefaultBudget bounds the occurrences one Compute generates across all
// its objects (stepped-over ones included), unless Options.Expand brings
// its own budget. Series are expanded from near the window, so a step is
// an occurrence in the window or within a day of it: 200,000 are 500
// daily series over the longest window (366 days), or 2,000 over the
// default one (98 days), and take 0.3 to 0.6 s of one core when every
// step is an occurrence of its own (BenchmarkHostile, whatever the
// number of events; TestHostileFolderIsBoundedAndBusy counts the steps);
// 2,000,000 took 6 to 10 s. The periods rrule-go steps through between
// occurrences of a rule whose days are rare, or never come, count too
// (calendar.BenchmarkScan: 0.5 to 1.6 µs of CPU a step). What the budget
// does not reach counts busy.
const DefaultBudget = 200_000

// Result is what Compute found.
type Result struct {
	Periods []Period
	// Occurrences are the busy occurrences, unmerged, ordered by start,
	// when Options.Occurrences asked for them.
	Occurrences []Occurrence
	// Truncated counts objects whose expansion hit a limit (the
	// per-event limit or the budget) before the end of the window. What
	// they could not expand counts busy (see Compute).
	Truncated int
	// Steps is the number of recurrence steps the expansion took, out of
	// the budget.
	Steps int
	// Errors counts objects that had unusable parts (bad dates or rules);
	// what could be read of them still counts.
	Errors int
}

// Compute returns the merged busy periods of objs within w.
//
// The objects of one UID count together, wherever they are stored
// (calendar.Unite): an override replaces the instance its RECURRENCE-ID
// names (with RANGE=THISANDFUTURE, that and every later one) also when
// its message is not its series', an instance the series EXDATEs stays
// free whatever overrides it, and of two copies of one series or of one
// override only the newest counts. objs must therefore be all the objects
// of one answer and only those: the messages of one folder for that
// folder's free/busy, of every folder that counts for the owner and that
// the requester may see for the owner's. An object the requester may not
// see must not be given, or an override there would move or free time in
// a folder they may see, telling them about it.
func Compute(objs []*calendar.Object, w Window, opts *Options) (res Result) {
	var exp calendar.Options
	owner, keep := "", false
	if opts != nil {
		owner, keep = opts.Owner, opts.Occurrences
		if opts.Expand != nil {
			exp = *opts.Expand
		}
	}
	if exp.Limits.Budget == nil {
		// All the objects of one answer share one budget of work.
		exp.Limits.Budget = calendar.NewBudget(DefaultBudget)
	}
	defer func(used int) { res.Steps = exp.Limits.Budget.Used() - used }(exp.Limits.Budget.Used())
	// The counting rules depend on an event's properties alone: classify
	// each component once, not once per occurrence.
	type class struct {
		t  Type
		ok bool
	}
	classes := map[*ical.Component]class{}
	classify := func(ev *ical.Component) (Type, bool) {
		c, seen := classes[ev]
		if !seen {
			c.t, c.ok = Classify(ev, owner)
			classes[ev] = c
		}
		return c.t, c.ok
	}
	objs, stored := calendar.Unite(objs)
	// from is the object of objs that c is stored in.
	from := func(o *calendar.Object, c *ical.Component) *calendar.Object {
		if s := stored[c]; s != nil {
			return s
		}
		return o
	}
	for _, o := range objs {
		insts, err := o.Instances(w.Start, w.End, &exp)
		if err != nil {
			if errors.Is(err, calendar.ErrTruncated) {
				res.Truncated++
			}
			if !onlyTruncated(err) {
				res.Errors++
			}
		}
		// Fail closed: where a limit kept a series from being expanded,
		// its occurrences may be anywhere, so the span counts busy as
		// the series' properties say (a TRANSPARENT series stays free).
		busy := func(start, end time.Time, ev *ical.Component) {
			t, ok := classify(ev)
			if !ok || !end.After(start) {
				return
			}
			p := Period{Start: start.UTC(), End: end.UTC(), Type: t}
			res.Periods = append(res.Periods, p)
			if keep {
				res.Occurrences = append(res.Occurrences, Occurrence{Period: p, Object: from(o, ev), Event: ev})
			}
		}
		var te *calendar.TruncatedError
		if errors.As(err, &te) {
			for _, u := range te.Unexpanded {
				busy(u.Start, u.End, u.Event)
			}
		}
		for _, in := range insts {
			busy(in.Start, in.End, in.Event)
		}
		for _, fb := range o.FreeBusy {
			ps := published(fb)
			res.Periods = append(res.Periods, ps...)
			if keep {
				for _, p := range ps {
					res.Occurrences = append(res.Occurrences, Occurrence{Period: p, Object: from(o, fb)})
				}
			}
		}
	}
	res.Periods = Merge(Clip(res.Periods, w))
	if keep {
		kept := res.Occurrences[:0]
		for _, oc := range res.Occurrences {
			if c := Clip([]Period{oc.Period}, w); len(c) == 1 {
				oc.Period = c[0]
				kept = append(kept, oc)
			}
		}
		slices.SortStableFunc(kept, func(a, b Occurrence) int {
			if c := a.Start.Compare(b.Start); c != 0 {
				return c
			}
			return a.End.Compare(b.End)
		})
		res.Occurrences = kept
	}
	return res
}

// onlyTruncated reports whether err says nothing but that a limit cut an
// expansion short.
func onlyTruncated(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !onlyTruncated(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, calendar.ErrTruncated)
}

// Classify applies the counting rules to one occurrence's properties. It
// reports the FBTYPE the occurrence makes its owner, or false when it does
// not count. The first rule that matches decides:
//
//  1. STATUS:CANCELLED does not count;
//  2. the owner is an ATTENDEE (not the ORGANIZER) who DECLINED: does not
//     count;
//  3. TRANSP:TRANSPARENT does not count, whatever Outlook says;
//  4. Outlook's X-MICROSOFT-CDO-BUSYSTATUS FREE or WORKINGELSEWHERE does
//     not count;
//  5. the type is Outlook's explicit "show as" where present (BUSY,
//     TENTATIVE → BUSY-TENTATIVE, OOF → BUSY-UNAVAILABLE), else
//     STATUS:TENTATIVE → BUSY-TENTATIVE, else BUSY;
//  6. the owner is an ATTENDEE (not the ORGANIZER) who has not accepted
//     (NEEDS-ACTION, the default when PARTSTAT is absent, or TENTATIVE):
//     BUSY-TENTATIVE, whatever rule 5 said; the owner's own answer is
//     what the time is worth.
//
// An owner who organizes the event may list herself as an attendee; that
// line is ignored. owner "" disables rules 2 and 6.
func Classify(ev *ical.Component, owner string) (Type, bool) {
	val := func(name string) string {
		if p := ev.Props.Get(name); p != nil {
			return strings.ToUpper(strings.TrimSpace(p.Value))
		}
		return ""
	}
	partstat, invited := "", false
	if owner != "" {
		if org := ev.Props.Get(ical.PropOrganizer); org == nil || !sameAddress(org.Value, owner) {
			for _, a := range ev.Props.Values(ical.PropAttendee) {
				if sameAddress(a.Value, owner) {
					partstat, invited = strings.ToUpper(strings.TrimSpace(a.Params.Get(ical.ParamParticipationStatus))), true
					break
				}
			}
		}
	}
	if val(ical.PropStatus) == "CANCELLED" || (invited && partstat == "DECLINED") || val(ical.PropTransparency) == "TRANSPARENT" {
		return "", false
	}
	t := Busy
	switch val("X-MICROSOFT-CDO-BUSYSTATUS") {
	case "FREE", "WORKINGELSEWHERE":
		return "", false
	case "TENTATIVE":
		t = BusyTentative
	case "OOF":
		t = BusyUnavailable
	case "BUSY":
	default:
		if val(ical.PropStatus) == "TENTATIVE" {
			t = BusyTentative
		}
	}
	if invited && (partstat == "" || partstat == "NEEDS-ACTION" || partstat == "TENTATIVE") {
		t = BusyTentative
	}
	return t, true
}

// sameAddress compares calendar user addresses case-insensitively, with or
// without the mailto: scheme.
func sameAddress(a, b string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		return strings.TrimPrefix(s, "mailto:")
	}
	return norm(a) != "" && norm(a) == norm(b)
}

// published reads the FREEBUSY periods of an existing VFREEBUSY.
func published(fb *ical.Component) []Period {
	var out []Period
	for _, p := range fb.Props.Values(ical.PropFreeBusy) {
		t := Type(strings.ToUpper(p.Params.Get(ical.ParamFreeBusyType)))
		switch t {
		case Free:
			continue
		case Busy, BusyTentative, BusyUnavailable:
		default:
			// Absent, or an extension value: RFC 5545 §3.2.9 says BUSY.
			t = Busy
		}
		for _, v := range strings.Split(p.Value, ",") {
			if per, ok := parsePeriod(v); ok {
				per.Type = t
				out = append(out, per)
			}
		}
	}
	return out
}

// parsePeriod reads a UTC PERIOD value: start/end or start/duration.
func parsePeriod(v string) (Period, bool) {
	s, e, ok := strings.Cut(strings.TrimSpace(v), "/")
	if !ok {
		return Period{}, false
	}
	start, err := time.Parse("20060102T150405Z", s)
	if err != nil {
		return Period{}, false
	}
	var end time.Time
	if strings.HasPrefix(e, "P") || strings.HasPrefix(e, "+P") {
		d, err := calendar.ParseDuration(e)
		if err != nil {
			return Period{}, false
		}
		end = d.AddTo(start)
	} else if end, err = time.Parse("20060102T150405Z", e); err != nil {
		return Period{}, false
	}
	if !end.After(start) {
		return Period{}, false
	}
	return Period{Start: start, End: end}, true
}

// Clip cuts periods to the window and drops those outside it.
func Clip(ps []Period, w Window) []Period {
	out := ps[:0:0]
	for _, p := range ps {
		if p.Start.Before(w.Start) {
			p.Start = w.Start
		}
		if p.End.After(w.End) {
			p.End = w.End
		}
		if p.End.After(p.Start) {
			out = append(out, p)
		}
	}
	return out
}

// Merge sorts periods and joins those of one type that overlap or touch.
// Periods of different types are kept apart, even when they overlap.
func Merge(ps []Period) []Period {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Period) int {
		if c := strings.Compare(string(a.Type), string(b.Type)); c != 0 {
			return c
		}
		return a.Start.Compare(b.Start)
	})
	var out []Period
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Type == p.Type && !p.Start.After(out[n-1].End) {
			if p.End.After(out[n-1].End) {
				out[n-1].End = p.End
			}
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Period) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return strings.Compare(string(a.Type), string(b.Type))
	})
	return out
}
