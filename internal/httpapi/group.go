package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"golang.org/x/sync/errgroup"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// Team configures the URLs that answer for several people at once, and
// working hours.
//
//   - GET /freebusy/group/<name>.vfb (.ifb) for a configured group, and
//     GET /freebusy/group.vfb?user=…&user=… for a list: one VCALENDAR
//     with one VFREEBUSY per member, in the order asked, each the same as
//     the member's own .vfb for this requester and window; as JSON for
//     Accept: application/json, the scheduling page's source (team.go).
//   - GET /freebusy/slots?user=…&user=… (or group=<name>) &duration=PT1H:
//     the spans of at least duration in which every member the requester
//     may see is free and within working hours, as JSON or, for
//     Accept: text/calendar, as a VFREEBUSY of FBTYPE=FREE periods.
//
// Every member is looked up as a single lookup is, through the same cache
// and with the requester's rights; a member the requester may not see is
// reported as such (REQUEST-STATUS 3.8), an unknown one too (3.7, or 3.8
// under access.freebusy = "acl", which does not tell which users exist),
// and neither is ever shown as free.
type Team struct {
	// Groups are the configured groups: name → members (logins or
	// addresses).
	Groups map[string][]string
	// MaxGroup bounds the members of one request (default 100); more get
	// 400.
	MaxGroup int
	// WorkingHours returns an owner's configured working hours, for
	// owners without a VAVAILABILITY; nil, or a nil result, is the whole
	// day.
	WorkingHours func(owner string) *availability.Hours
	// OffHours marks the time outside working hours BUSY-UNAVAILABLE in
	// free/busy answers (publish.off_hours = "unavailable").
	OffHours bool
}

// memberConcurrency bounds the members of one request looked up at once:
// enough to overlap the IMAP round trips of cold members, few enough that
// one large group does not take every IMAP connection.
const memberConcurrency = 8

// Member statuses, as the slots answer spells them.
const (
	statusOK          = "ok"
	statusNoAuthority = "no-authority"
	statusUnknown     = "unknown"
)

// member is one member of a group request and what the cache answered.
type member struct {
	name       string // as asked
	user, addr string
	status     string
	answer     *feed.Answer // when status is ok
}

// teamFile reports whether a /freebusy/<file> name is one of the team
// routes rather than a user's free/busy.
func teamFile(file string) bool {
	return file == "group.vfb" || file == "group.ifb" || file == "slots"
}

// workingHours is owner's configured pattern of working hours.
func (h *Handler) workingHours(owner string) *availability.Hours {
	if h.opts.Team.WorkingHours == nil {
		return nil
	}
	return h.opts.Team.WorkingHours(owner)
}

// freeBusyQuery is the query of owner's free/busy for a requester, as
// every free/busy URL asks it.
func (h *Handler) freeBusyQuery(user, addr string, win freebusy.Window, viewer acl.Requester, offHours bool) feed.FreeBusyQuery {
	return feed.FreeBusyQuery{
		Owner: user, Window: win, Organizer: addr, Zone: h.opts.Zone(user), Viewer: viewer,
		OffHours: offHours, WorkingHours: h.workingHours(user),
	}
}

// groupNamed serves /freebusy/group/<name>.vfb (and .ifb).
func (h *Handler) groupNamed(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
	name, ext := splitExt(file)
	if ext != "vfb" && ext != "ifb" {
		return notFound("group free/busy is served as group/<name>.vfb or .ifb")
	}
	// Who asks is settled first: an anonymous requester who must log in
	// does not learn which groups exist.
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	names, ok := h.opts.Team.Groups[name]
	if !ok {
		return notFound("no such group")
	}
	return h.group(w, r, viewer, names, file)
}

// groupListed serves /freebusy/group.vfb?user=…&user=… (and .ifb).
func (h *Handler) groupListed(w http.ResponseWriter, r *http.Request) error {
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	names := r.URL.Query()["user"]
	if len(names) == 0 {
		return badRequest("name the members: ?user=alice&user=bob")
	}
	_, ext := splitExt(r.URL.Path)
	return h.group(w, r, viewer, names, "group."+ext)
}

// group answers the free/busy of several members in one VCALENDAR.
func (h *Handler) group(w http.ResponseWriter, r *http.Request, viewer acl.Requester, names []string, filename string) error {
	if err := h.checkGroupSize(names); err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	q := r.URL.Query()
	asJSON := prefersJSON(r.Header.Values("Accept"))
	switch f := q.Get("format"); {
	case f == "":
	case strings.EqualFold(f, "text/calendar"):
		asJSON = false
	case strings.EqualFold(f, "application/json"):
		asJSON = true
	default:
		return &httpError{code: http.StatusNotAcceptable, msg: "format: text/calendar or application/json"}
	}
	offHours := h.opts.Team.OffHours
	switch v := q.Get("off_hours"); v {
	case "":
	case "unavailable":
		offHours = true
	default:
		return badRequest("off_hours: %q is not unavailable", clip(v))
	}
	win, err := h.window(q.Get("start"), q.Get("end"), q.Get("period"))
	if err != nil {
		return err
	}
	ms, err := h.lookupMembers(r.Context(), names, win, viewer, offHours)
	if err != nil {
		return err
	}
	tags := []string{"vfb", win.Start.String(), win.End.String(), strconv.FormatBool(offHours)}
	if asJSON {
		return h.groupJSON(w, r, ms, win, tags)
	}
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, freebusy.ProdID)
	cal.Props.SetText(ical.PropMethod, "PUBLISH")
	head, err := calendar.Marshal(cal)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	b.Write(bytes.TrimSuffix(head, []byte("END:VCALENDAR\r\n")))
	for _, m := range ms {
		var body []byte
		if m.answer != nil {
			body = m.answer.Body
		} else if body, err = h.statusReply(m, win); err != nil {
			return err
		}
		fb, ok := vfreebusy(body)
		if !ok {
			return errors.New("httpapi: a member's free/busy holds no VFREEBUSY")
		}
		b.Write(fb)
	}
	b.WriteString("END:VCALENDAR\r\n")
	h.serveComputed(w, r, b.Bytes(), calendarType, ms, filename, tags...)
	return nil
}

// groupJSON writes a group's free/busy as JSON, for the scheduling page
// and people's scripts: the window, and each member in the order asked
// with their status and, when it is ok, their busy periods (UTC, with
// their FBTYPE), the same periods as their VFREEBUSY.
func (h *Handler) groupJSON(w http.ResponseWriter, r *http.Request, ms []member, win freebusy.Window, tags []string) error {
	type period struct {
		Start  string `json:"start"`
		End    string `json:"end"`
		FBType string `json:"fbtype"`
	}
	type status struct {
		User   string   `json:"user"`
		Status string   `json:"status"`
		Busy   []period `json:"busy"`
	}
	out := struct {
		Start   string   `json:"start"`
		End     string   `json:"end"`
		Members []status `json:"members"`
	}{Start: utcRFC3339(win.Start), End: utcRFC3339(win.End), Members: make([]status, 0, len(ms))}
	for _, m := range ms {
		st := status{User: m.name, Status: m.status, Busy: []period{}}
		if m.answer != nil {
			ps, err := periodsOf(m.answer.Body)
			if err != nil {
				return err
			}
			for _, p := range ps {
				st.Busy = append(st.Busy, period{utcRFC3339(p.Start), utcRFC3339(p.End), string(p.Type)})
			}
		}
		out.Members = append(out.Members, st)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	h.serveComputed(w, r, append(body, '\n'), jsonType, ms, "", append(tags, "json")...)
	return nil
}

// utcRFC3339 formats t in UTC as RFC 3339, as the JSON answers spell times.
func utcRFC3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// statusReply is the VFREEBUSY of a member the requester gets no times
// of: no periods, and REQUEST-STATUS saying why (RFC 5545 §3.8.8.3; the
// codes of RFC 6638 schedule responses), so that a client shows "no
// information" rather than free time.
func (h *Handler) statusReply(m member, win freebusy.Window) ([]byte, error) {
	reply := freebusy.Reply{Organizer: m.addr, UID: "fbpub-freebusy-" + strings.ToLower(m.user), Stamp: h.opts.Now(), Window: win}
	cal := reply.Calendar()
	rs := ical.NewProp(ical.PropRequestStatus)
	if m.status == statusNoAuthority {
		rs.Value = "3.8;No authority"
	} else {
		rs.Value = "3.7;Invalid calendar user"
	}
	cal.Children[0].Props.Set(rs)
	return calendar.Marshal(cal)
}

// vfreebusy returns the first VFREEBUSY component of an encoded calendar,
// from its BEGIN line to its END line: fbpub's own answers, whose lines
// the encoder ends with CRLF.
func vfreebusy(body []byte) ([]byte, bool) {
	i := bytes.Index(body, []byte("BEGIN:VFREEBUSY\r\n"))
	if i < 0 {
		return nil, false
	}
	end := []byte("END:VFREEBUSY\r\n")
	j := bytes.Index(body[i:], end)
	if j < 0 {
		return nil, false
	}
	return body[i : i+j+len(end)], true
}

// checkGroupSize bounds a group request.
func (h *Handler) checkGroupSize(names []string) error {
	max := h.opts.Team.MaxGroup
	if max <= 0 {
		max = 100
	}
	if len(names) > max {
		return badRequest("a group request takes at most %d members", max)
	}
	return nil
}

// lookupMembers asks the cache for each member's free/busy as a single
// lookup would, up to memberConcurrency at once, and says which members
// the requester may not see or that fbpub does not know. A name that is
// not a login or an address fails the request, as it does a single
// lookup; so does IMAP being unavailable with nothing cached.
func (h *Handler) lookupMembers(ctx context.Context, names []string, win freebusy.Window, viewer acl.Requester, offHours bool) ([]member, error) {
	ms := make([]member, len(names))
	for i, name := range names {
		user, addr, err := h.owner(name)
		if err != nil {
			return nil, err
		}
		ms[i] = member{name: name, user: user, addr: addr}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(memberConcurrency)
	for i := range ms {
		m := &ms[i]
		g.Go(func() error {
			a, err := h.opts.Cache.FreeBusy(gctx, h.freeBusyQuery(m.user, m.addr, win, viewer, offHours))
			switch {
			case err == nil:
				m.status, m.answer = statusOK, a
				h.cacheCounters["freebusy"].result(a.Result).Inc()
				return nil
			case errors.Is(err, feed.ErrNotFound):
				m.status, err = h.memberStatus(gctx, m.user)
				return err
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return ms, nil
}

// memberStatus tells, for a member whose lookup found nothing the
// requester may see, whether fbpub publishes anything for them at all
// ("no-authority") or not ("unknown"), from the folders the lookup read:
// never a walk of the whole directory. Under access.freebusy = "acl" it
// does not tell: a member's own .vfb then answers 404 to a requester who
// may see nothing, whether the member exists or not, and a group answer
// must not tell which users exist either (100 names a request).
func (h *Handler) memberStatus(ctx context.Context, user string) (string, error) {
	if h.opts.Policy.FreeBusy == acl.ByACL {
		return statusNoAuthority, nil
	}
	_, err := h.opts.Cache.Counting(ctx, user)
	switch {
	case err == nil:
		return statusNoAuthority, nil
	case errors.Is(err, feed.ErrNotFound):
		return statusUnknown, nil
	}
	return "", err
}

// slots serves /freebusy/slots: the common free time of several members.
func (h *Handler) slots(w http.ResponseWriter, r *http.Request) error {
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	w.Header().Add("Vary", "Accept")
	sq, err := h.slotsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	asCalendar := prefersCalendar(r.Header.Values("Accept"))
	// Slots always respect working hours: every member's free/busy is
	// asked with the time outside them marked.
	ms, err := h.lookupMembers(r.Context(), sq.names, sq.win, viewer, true)
	if err != nil {
		return err
	}
	busy, err := busyOf(ms)
	if err != nil {
		return err
	}
	free := availability.Slots(busy, sq.win, sq.length, sq.tentativeFree)
	tags := []string{"slots", sq.win.Start.String(), sq.win.End.String(), sq.length.String(), strconv.FormatBool(sq.tentativeFree)}
	if asCalendar {
		return h.serveSlotsCalendar(w, r, free, sq.win, ms, tags)
	}
	return h.serveSlotsJSON(w, r, free, ms, tags)
}

// slotsQuery is what a request for common free time asks.
type slotsQuery struct {
	names         []string // the members, as asked
	length        time.Duration
	tentativeFree bool
	win           freebusy.Window
}

// slotsQuery reads the query of /freebusy/slots: the members (user, or a
// group), the duration of a slot, whether tentative time is free, and the
// window.
func (h *Handler) slotsQuery(q url.Values) (slotsQuery, error) {
	var sq slotsQuery
	sq.names = q["user"]
	if g := q.Get("group"); g != "" {
		if len(sq.names) > 0 {
			return sq, badRequest("give group or user, not both")
		}
		var ok bool
		if sq.names, ok = h.opts.Team.Groups[g]; !ok {
			return sq, notFound("no such group")
		}
	}
	if len(sq.names) == 0 {
		return sq, badRequest("name the members: ?user=alice&user=bob or ?group=team")
	}
	if err := h.checkGroupSize(sq.names); err != nil {
		return sq, err
	}
	d, err := calendar.ParseDuration(q.Get("duration"))
	sq.length = time.Duration(d.Days)*24*time.Hour + d.Exact
	if err != nil || d.Days < 0 || d.Exact < 0 || sq.length <= 0 {
		return sq, badRequest("duration: %q is not a positive duration like PT1H", clip(q.Get("duration")))
	}
	switch q.Get("tentative") {
	case "", "busy":
	case "free":
		sq.tentativeFree = true
	default:
		return sq, badRequest("tentative: %q is not free or busy", clip(q.Get("tentative")))
	}
	sq.win, err = h.window(q.Get("start"), q.Get("end"), q.Get("period"))
	return sq, err
}

// busyOf returns the busy periods of the members whose free/busy was
// read, one list per member.
func busyOf(ms []member) ([][]freebusy.Period, error) {
	var busy [][]freebusy.Period
	for _, m := range ms {
		if m.status != statusOK {
			continue
		}
		ps, err := periodsOf(m.answer.Body)
		if err != nil {
			return nil, err
		}
		busy = append(busy, ps)
	}
	return busy, nil
}

// serveSlotsCalendar answers the slots free in win as a VFREEBUSY of FREE
// periods.
func (h *Handler) serveSlotsCalendar(w http.ResponseWriter, r *http.Request, free []freebusy.Window, win freebusy.Window, ms []member, tags []string) error {
	reply := freebusy.Reply{UID: "fbpub-slots", Stamp: h.opts.Now(), Window: win}
	for _, s := range free {
		reply.Periods = append(reply.Periods, freebusy.Period{Start: s.Start, End: s.End, Type: freebusy.Free})
	}
	var b bytes.Buffer
	if err := reply.Encode(&b); err != nil {
		return err
	}
	h.serveComputed(w, r, b.Bytes(), calendarType, ms, "slots.ifb", tags...)
	return nil
}

// serveSlotsJSON answers the free slots, and each member's status, as
// JSON.
func (h *Handler) serveSlotsJSON(w http.ResponseWriter, r *http.Request, free []freebusy.Window, ms []member, tags []string) error {
	type span struct {
		Start string `json:"start"`
		End   string `json:"end"`
	}
	type status struct {
		User   string `json:"user"`
		Status string `json:"status"`
	}
	out := struct {
		Slots   []span   `json:"slots"`
		Members []status `json:"members"`
	}{Slots: []span{}}
	for _, s := range free {
		out.Slots = append(out.Slots, span{utcRFC3339(s.Start), utcRFC3339(s.End)})
	}
	for _, m := range ms {
		out.Members = append(out.Members, status{m.name, m.status})
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	h.serveComputed(w, r, append(body, '\n'), jsonType, ms, "", append(tags, "json")...)
	return nil
}

// periodsOf reads the busy periods of a member's rendered free/busy.
func periodsOf(body []byte) ([]freebusy.Period, error) {
	cals, err := calendar.Decode(body)
	if err != nil {
		return nil, err
	}
	var out []freebusy.Period
	for _, cal := range cals {
		for _, c := range cal.Children {
			if c.Name == ical.CompFreeBusy {
				out = append(out, freebusy.Published(c)...)
			}
		}
	}
	return out, nil
}

// prefersCalendar reads Accept: true when text/calendar is acceptable
// and preferred to JSON (at a higher quality, or the same one and listed
// first).
func prefersCalendar(accept []string) bool {
	calQ, jsonQ, best := acceptQ(accept)
	if calQ <= 0 {
		return false
	}
	return calQ > jsonQ || (calQ == jsonQ && best == "text/calendar")
}

// prefersJSON reads Accept: true when application/json is acceptable and
// preferred to text/calendar, as prefersCalendar the other way round.
func prefersJSON(accept []string) bool {
	calQ, jsonQ, best := acceptQ(accept)
	if jsonQ <= 0 {
		return false
	}
	return jsonQ > calQ || (jsonQ == calQ && best == "application/json")
}

// acceptQ reads the qualities Accept gives text/calendar and
// application/json (-1 when absent), and which of them is listed first.
func acceptQ(accept []string) (calQ, jsonQ float64, best string) {
	calQ, jsonQ = -1.0, -1.0
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			qv := 1.0
			if s, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					qv = f
				}
			}
			switch mt {
			case "text/calendar":
				if qv > calQ {
					calQ = qv
					if best == "" {
						best = mt
					}
				}
			case "application/json":
				if qv > jsonQ {
					jsonQ = qv
					if best == "" {
						best = mt
					}
				}
			}
		}
	}
	return calQ, jsonQ, best
}

var jsonType = []string{"application/json; charset=utf-8"}

// serveComputed writes an answer made of several members' answers: its
// entity tag derives from theirs (and from what else went into it, tags),
// it is stale when any of them is, and it is as private as the requester
// made it (viewer). If-None-Match and HEAD are handled by
// http.ServeContent.
func (h *Handler) serveComputed(w http.ResponseWriter, r *http.Request, body []byte, contentType []string, ms []member, filename string, tags ...string) {
	sum := sha256.New()
	var modified time.Time
	stale := false
	for _, t := range tags {
		sum.Write([]byte(t))
		sum.Write([]byte{0})
	}
	for _, m := range ms {
		sum.Write([]byte(m.name + "\x00" + m.status + "\x00"))
		if m.answer != nil {
			sum.Write([]byte(m.answer.ETag))
			if m.answer.Modified.After(modified) {
				modified = m.answer.Modified
			}
			stale = stale || m.answer.Stale
		}
		sum.Write([]byte{0})
	}
	hd := w.Header()
	hd["Content-Type"] = contentType
	if hd["Cache-Control"] == nil {
		hd["Cache-Control"] = h.cacheControlValue
	}
	hd["X-Content-Type-Options"] = nosniff
	hd.Set("Etag", `"`+hex.EncodeToString(sum.Sum(nil)[:16])+`"`)
	if filename != "" {
		hd.Set("Content-Disposition", contentDisposition(filename))
	}
	if stale {
		hd["X-Fbpub-Stale"] = staleValue
		hd["Warning"] = staleWarning
	}
	http.ServeContent(w, r, "", modified, bytes.NewReader(body))
}
