package httpapi

import (
	"net/http"
	"strings"

	"github.com/fbpub/fbpub/internal/feed"
)

// calendarAll serves /calendar/<user>.ics: every published folder of user.
func (h *Handler) calendarAll(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	name, ext := splitExt(file)
	if ext != "ics" {
		return notFound("feeds are served as <user>.ics or <user>/<folder>.ics")
	}
	user, _, err := h.owner(name)
	if err != nil {
		return err
	}
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	a, err := h.opts.Cache.Calendar(r.Context(), feed.CalendarQuery{Owner: user, Name: user, Refresh: h.opts.Refresh, Viewer: viewer})
	if err != nil {
		return err
	}
	h.serve(w, r, "calendar", a, file)
	return nil
}

// calendarFolder serves /calendar/<user>/<folder>.ics; the folder may have
// several segments (Calendar/Work).
func (h *Handler) calendarFolder(w http.ResponseWriter, r *http.Request) error {
	user, _, err := h.owner(r.PathValue("owner"))
	if err != nil {
		return err
	}
	p, ext := splitExt(r.PathValue("path"))
	if ext != "ics" {
		return notFound("feeds are served as <user>/<folder>.ics")
	}
	segs, err := folderSegments(p)
	if err != nil {
		return err
	}
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	a, err := h.opts.Cache.Calendar(r.Context(), feed.CalendarQuery{
		Owner: user, Folder: segs, Name: user + " – " + strings.Join(segs, "/"), Refresh: h.opts.Refresh, Viewer: viewer,
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "calendar", a, segs[len(segs)-1]+".ics")
	return nil
}
