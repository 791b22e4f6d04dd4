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
	f, err := h.openFolder(w, r, h.viewer, "feeds are served as <user>/<folder>.ics", "ics")
	if err != nil {
		return err
	}
	a, err := h.opts.Cache.Calendar(r.Context(), feed.CalendarQuery{
		Owner: f.user, Folder: f.folder, Name: f.user + " – " + strings.Join(f.folder, "/"), Refresh: h.opts.Refresh, Viewer: f.who,
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "calendar", a, f.file())
	return nil
}
