package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// freeBusy serves /freebusy/<user>.vfb and .ifb, where <user> is a login
// or an address (Outlook's %NAME%@%SERVER%).
func (h *Handler) freeBusy(w http.ResponseWriter, r *http.Request, file string) error {
	name, ext := splitExt(file)
	switch ext {
	case "vfb", "ifb", "xfb":
	default:
		return notFound("free/busy is served as <user>.vfb, <user>.ifb or <user>.xfb (extended)")
	}
	user, addr, err := h.owner(name)
	if err != nil {
		return err
	}
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: user, Window: h.defaultWindowAt(h.now(w)), Organizer: addr, Zone: h.opts.Zone(user),
		Viewer: viewer, Extended: ext == "xfb", OffHours: h.opts.Team.OffHours, WorkingHours: h.workingHours(user),
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "freebusy", a, file)
	return nil
}

// defaultWindow runs from PastDays before today to FutureDays after it,
// in whole UTC days, so that answers stay the same all day and cache well.
func (h *Handler) defaultWindow() freebusy.Window { return h.defaultWindowAt(h.opts.Now()) }

// now is the time of the request w answers.
func (h *Handler) now(w http.ResponseWriter) time.Time {
	if x, ok := w.(*exchange); ok && h.systemClock {
		return x.t0
	}
	return h.opts.Now()
}

func (h *Handler) defaultWindowAt(now time.Time) freebusy.Window {
	// The window of the day, computed once a day.
	if d := h.day.Load(); d != nil && !now.Before(d.start) && now.Before(d.end) {
		return d.window
	}
	u := now.UTC()
	today := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	d := &dayWindow{start: today, end: today.AddDate(0, 0, 1),
		window: freebusy.Window{Start: today.AddDate(0, 0, -h.opts.PastDays), End: today.AddDate(0, 0, h.opts.FutureDays+1)}}
	h.day.Store(d)
	return d.window
}

// dayWindow is the default window of the UTC day [start, end).
type dayWindow struct {
	start, end time.Time
	window     freebusy.Window
}

// freeBusyRead serves the Cyrus / CalConnect free/busy read URL:
// /freebusy/user/<user>[/<folder>] with start, end or period, and format.
func (h *Handler) freeBusyRead(w http.ResponseWriter, r *http.Request) error {
	user, addr, err := h.owner(r.PathValue("owner"))
	if err != nil {
		return err
	}
	var folder []string
	if p := r.PathValue("path"); p != "" {
		if folder, err = folderSegments(p); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	if f := q.Get("format"); f != "" && !strings.EqualFold(f, "text/calendar") {
		return &httpError{code: http.StatusNotAcceptable, msg: "format: only text/calendar is available"}
	}
	win, err := h.window(q.Get("start"), q.Get("end"), q.Get("period"))
	if err != nil {
		return err
	}
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: user, Folder: folder, Window: win, Organizer: addr, Zone: h.opts.Zone(user), Viewer: viewer,
		OffHours: h.opts.Team.OffHours, WorkingHours: h.workingHours(user),
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "freebusy", a, user+".ifb")
	return nil
}

// window reads start, end and period parameters: start defaults to the
// default window's start; end and period are exclusive; with neither the
// default window's end applies. Times are RFC 5545 UTC DATE-TIME
// (20250301T000000Z), DATE (20250301) or RFC 3339.
func (h *Handler) window(start, end, period string) (freebusy.Window, error) {
	w := h.defaultWindow()
	if end != "" && period != "" {
		return w, badRequest("give end or period, not both")
	}
	if start != "" {
		t, err := parseTime(start)
		if err != nil {
			return w, badRequest("start: %q is not a UTC date-time like 20250301T000000Z", clip(start))
		}
		w.Start = t
		if end == "" && period == "" {
			w.End = t.AddDate(0, 0, h.opts.PastDays+h.opts.FutureDays+1)
		}
	}
	switch {
	case end != "":
		t, err := parseTime(end)
		if err != nil {
			return w, badRequest("end: %q is not a UTC date-time like 20250401T000000Z", clip(end))
		}
		w.End = t
	case period != "":
		d, err := calendar.ParseDuration(period)
		if err != nil || d.Days < 0 || d.Exact < 0 || (d.Days == 0 && d.Exact == 0) {
			return w, badRequest("period: %q is not a positive duration like P30D", clip(period))
		}
		w.End = d.AddTo(w.Start)
	}
	if !w.End.After(w.Start) {
		return w, badRequest("end must be after start")
	}
	if w.Start.Year() < 1 || !w.End.Before(endOfTime) {
		return w, badRequest("the window must lie within the years 0001 to 9999 (RFC 5545 writes four digits)")
	}
	if w.End.Sub(w.Start) > h.opts.MaxSpan {
		return w, badRequest("the window may span at most %d days", int(h.opts.MaxSpan.Hours()/24))
	}
	return w, nil
}

// endOfTime is the first instant a DATE-TIME cannot write (RFC 5545 gives
// the year four digits).
var endOfTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102T150405Z", time.RFC3339, "20060102"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("bad time")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// trigger serves Kolab's /freebusy/trigger/<owner>/<folder>.pfb (and
// .pxfb), which a client calls after writing a folder: the owner's folders
// are listed now, whatever the check interval (the folder may be new), and
// the folder's free/busy is answered from the fresh state.
func (h *Handler) trigger(w http.ResponseWriter, r *http.Request) error {
	f, err := h.openFolder(w, r, h.viewer, "triggers are <owner>/<folder>.pfb or .pxfb", "pfb", "pxfb")
	if err != nil {
		return err
	}
	if err := h.opts.Cache.Trigger(r.Context(), f.user); err != nil {
		return err
	}
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: f.user, Folder: f.folder, Window: h.defaultWindow(), Organizer: f.addr, Zone: h.opts.Zone(f.user),
		Viewer: f.who, Extended: f.ext == "pxfb", OffHours: h.opts.Team.OffHours, WorkingHours: h.workingHours(f.user),
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "freebusy", a, f.file())
	return nil
}
