// Package httpapi is fbpub's HTTP surface: it parses and validates
// requests, asks the feed cache for answers and writes them with the
// headers calendar clients and caches expect. Nothing from a URL reaches
// IMAP before it has been validated here.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/metrics"
)

// Options configure the handler.
type Options struct {
	Cache *feed.Cache
	// MailDomain completes owner addresses when a request names only a
	// login ("alice" → "mailto:alice@MailDomain").
	MailDomain string
	// Addresses maps calendar addresses to IMAP logins; an address not
	// listed maps to its local part.
	Addresses map[string]string
	// PastDays and FutureDays set the default free/busy window around
	// today (UTC days).
	PastDays, FutureDays int
	// MaxSpan bounds the window a request may ask for (default 366 days).
	MaxSpan time.Duration
	// Zone returns an owner's time zone for floating and all-day times;
	// nil means UTC for everyone.
	Zone func(owner string) *time.Location
	// MaxAge is the Cache-Control max-age given to clients, and the feeds'
	// refresh interval is derived from it.
	MaxAge time.Duration
	// Refresh is the REFRESH-INTERVAL written into feeds.
	Refresh time.Duration
	// Verify checks a requester's password by logging in to IMAP as that
	// user; nil means requesters cannot authenticate (all are anonymous).
	// It reports OK false for wrong credentials, and an error when it
	// could not tell.
	Verify func(ctx context.Context, c Credentials) (Verified, error)
	// Logins bounds the throttling and concurrency of Verify; the zero
	// value means the defaults of LoginLimits.
	Logins LoginLimits
	// Groups is the group membership of requesters, for ACL entries that
	// name groups.
	Groups acl.Groups
	// Policy is the cache's access policy; the handler asks anonymous
	// requesters to log in when free/busy is not public. Nil means the
	// zero Policy.
	Policy *acl.Policy
	// UserHeader names a request header (e.g. "X-Remote-User") that
	// carries the requester's login, set by an authenticating reverse
	// proxy. It is believed only from TrustedProxies; from anywhere else
	// it is ignored.
	UserHeader     string
	TrustedProxies []netip.Prefix
	// Upload, when set, writes an uploaded calendar into IMAP (PUT
	// /calendar/<owner>/<folder>.ics); nil refuses uploads with 405.
	Upload func(ctx context.Context, u Upload) (UploadResult, error)
	// MaxUpload bounds an upload's body (default 10 MiB).
	MaxUpload int64
	// Ready reports whether IMAP is reachable and the proxy logged in;
	// nil always answers ready.
	Ready func(context.Context) error
	// ReadyDetail, when set, adds a line to /readyz's answer after
	// "ready" (the shared state's mode); it does not decide readiness.
	ReadyDetail func() string
	// Team configures group requests, common free slots and working
	// hours (group.go).
	Team Team
	// Links, when set, serves secret free/busy links (links.go); nil
	// answers their URLs with 404.
	Links *LinkStore
	// Gatherer serves /metrics; nil disables the route.
	Gatherer prometheus.Gatherer
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	Now      func() time.Time
}

// Handler serves fbpub's routes.
type Handler struct {
	opts Options
	// addresses is Options.Addresses with lower-case keys.
	addresses map[string]string
	// cacheControl is the Cache-Control header of calendar answers.
	cacheControl      string
	cacheControlValue []string
	// privateCacheControl is the Cache-Control header of answers that
	// depend on the requester's credentials.
	privateCacheControl []string
	auth                *verifier
	links               *links // nil when Options.Links is
	log                 *slog.Logger
	mux                 *http.ServeMux
	// freeBusyRoute serves GET /freebusy/<user>.vfb, the hot path, without
	// the mux's pattern matching (see ServeHTTP).
	freeBusyRoute *route
	// cacheCounters are the fbpub_cache_requests_total children of each
	// view, resolved once.
	cacheCounters map[string]*cacheCounters
	// headers remembers the header values of recent answers, and owners
	// the owners of recent requests.
	headers headerCache
	owners  ownerCache
	// day is the default window of the current day.
	day atomic.Pointer[dayWindow]
	// systemClock is set when Options.Now is time.Now: a request's start
	// time is then as good as another reading of the clock.
	systemClock bool
}

// New builds the handler.
func New(opts Options) *Handler {
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	systemClock := opts.Now == nil
	if systemClock {
		opts.Now = time.Now
	}
	if opts.Zone == nil {
		opts.Zone = func(string) *time.Location { return time.UTC }
	}
	if opts.Policy == nil {
		opts.Policy = &acl.Policy{}
	}
	if opts.MaxSpan <= 0 {
		opts.MaxSpan = 366 * 24 * time.Hour
	}
	if opts.PastDays == 0 && opts.FutureDays == 0 {
		opts.PastDays, opts.FutureDays = 7, 90
	}
	h := &Handler{opts: opts, log: opts.Logger.With("component", "http"), mux: http.NewServeMux(), addresses: map[string]string{}}
	h.cacheControl = fmt.Sprintf("max-age=%d", int(opts.MaxAge/time.Second))
	h.cacheControlValue = []string{h.cacheControl}
	h.systemClock = systemClock
	h.privateCacheControl = []string{"private, " + h.cacheControl}
	h.headers.seed = maphash.MakeSeed()
	h.owners.seed = maphash.MakeSeed()
	h.cacheCounters = map[string]*cacheCounters{}
	for _, v := range metrics.Views {
		h.cacheCounters[v] = newCacheCounters(opts.Metrics, v)
	}
	if opts.Verify != nil {
		h.auth = newVerifier(opts.Verify, opts.Logins, opts.Metrics)
	}
	if opts.Links != nil {
		h.links = newLinks(*opts.Links)
	}
	for addr, login := range opts.Addresses {
		h.addresses[strings.ToLower(addr)] = login
	}
	h.freeBusyRoute = h.handle(freeBusyPattern, "freebusy", func(w http.ResponseWriter, r *http.Request) error {
		return h.freeBusy(w, r, r.PathValue("file"))
	})
	h.handle("GET /freebusy/trigger/{owner}/{path...}", "trigger", h.trigger)
	h.handle("GET /freebusy/user/{owner}", "freebusy", h.freeBusyRead)
	h.handle("GET /freebusy/user/{owner}/{path...}", "freebusy", h.freeBusyRead)
	h.handle("GET /freebusy/group/{file}", "group", h.groupNamed)
	h.handle("GET /freebusy/group.vfb", "group", h.groupListed)
	h.handle("GET /freebusy/group.ifb", "group", h.groupListed)
	h.handle("GET /freebusy/slots", "slots", h.slots)
	h.handle("GET /team", "team", h.teamListed)
	h.handle("GET /team/{group}", "team", h.teamNamed)
	h.handle("GET /team/assets/{file}", "team", h.teamAsset)
	h.handle("GET /freebusy/s/{file}", "link", h.secretFreeBusy)
	h.handle("POST /freebusy/links", "links", h.createLink)
	h.handle("GET /freebusy/links", "links", h.listLinks)
	h.handle("DELETE /freebusy/links/{id}", "links", h.deleteLink)
	h.handle("GET /calendar/{file}", "calendar", h.calendarAll)
	h.handle("GET /calendar/{owner}/{path...}", "calendar", h.calendarFolder)
	h.handle("PUT /calendar/{owner}/{path...}", "upload", h.upload)
	h.handle("GET /healthz", "healthz", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err := fmt.Fprintln(w, "ok")
		return err
	})
	h.handle("GET /readyz", "readyz", h.ready)
	if opts.Gatherer != nil {
		mh := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})
		h.handle("GET /metrics", "metrics", func(w http.ResponseWriter, r *http.Request) error {
			mh.ServeHTTP(w, r)
			return nil
		})
	}
	h.handle("/", "other", func(http.ResponseWriter, *http.Request) error {
		return notFound("no such page")
	})
	return h
}

// freeBusyPattern is the route of Internet Free/Busy URLs.
const freeBusyPattern = "GET /freebusy/{file}"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// GET /freebusy/<file> is what calendar clients poll: it is matched
	// here, as the mux would match it, without the mux's pattern search.
	// Anything unusual (another method, an escaped or unclean path, more
	// segments) goes to the mux.
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.RawPath == "" {
		if file, ok := strings.CutPrefix(r.URL.Path, "/freebusy/"); ok && file != "" && file != "." && file != ".." && strings.IndexByte(file, '/') < 0 && !teamFile(file) && file != "links" {
			r.Pattern = freeBusyPattern
			rt := h.freeBusyRoute
			x := rt.begin(w, r)
			if err := h.freeBusy(x, r, file); err != nil {
				h.writeError(x, r, x.id, err)
			}
			rt.end(x, r)
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// route is a registered route with its metric children, resolved once.
type route struct {
	h        *Handler
	name     string
	duration prometheus.Observer
	bytes    prometheus.Counter
	// codes holds the fbpub_http_requests_total child of each status
	// code seen, created on first use.
	codes [600]atomic.Pointer[prometheus.Counter]
}

// handle registers a route whose handler returns an error, and counts it.
func (h *Handler) handle(pattern, name string, f func(http.ResponseWriter, *http.Request) error) *route {
	rt := &route{h: h, name: name,
		duration: h.opts.Metrics.HTTPDuration.WithLabelValues(name),
		bytes:    h.opts.Metrics.HTTPBytes.WithLabelValues(name)}
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		x := rt.begin(w, r)
		if err := f(x, r); err != nil {
			h.writeError(x, r, x.id, err)
		}
		rt.end(x, r)
	})
	return rt
}

// begin starts an exchange: its start time and request ID.
func (rt *route) begin(w http.ResponseWriter, r *http.Request) *exchange {
	x := &exchange{recorder: recorder{ResponseWriter: w, code: http.StatusOK}, t0: time.Now()}
	x.id = requestID(r)
	x.idValue[0] = x.id
	w.Header()["X-Request-Id"] = x.idValue[:]
	return x
}

// end counts an exchange and logs it at debug level.
func (rt *route) end(x *exchange, r *http.Request) {
	d := time.Since(x.t0)
	rt.requests(x.code).Inc()
	rt.duration.Observe(d.Seconds())
	rt.bytes.Add(float64(x.bytes))
	// The path is not logged: it names users and folders. The route
	// and the outcome are enough to follow a request.
	if log := rt.h.log; log.Enabled(r.Context(), slog.LevelDebug) {
		log.Debug("request", "request_id", x.id, "method", r.Method, "route", rt.name, "code", x.code, "bytes", x.bytes, "duration", d)
	}
}

// requests returns the child of fbpub_http_requests_total for the route
// and a status code, created once.
func (rt *route) requests(code int) prometheus.Counter {
	if code < 0 || code >= len(rt.codes) {
		return rt.h.opts.Metrics.HTTPRequests.WithLabelValues(rt.name, strconv.Itoa(code))
	}
	if c := rt.codes[code].Load(); c != nil {
		return *c
	}
	c := rt.h.opts.Metrics.HTTPRequests.WithLabelValues(rt.name, strconv.Itoa(code))
	rt.codes[code].Store(&c)
	return c
}

// exchange is one request's response writer, with what its route needs
// to count and log it: one allocation per request.
type exchange struct {
	recorder
	t0      time.Time
	id      string
	idValue [1]string // the X-Request-Id header value
}

// requestID returns the caller's X-Request-ID when it is short and plain,
// else a new random one, so that a reverse proxy's ID runs through.
func requestID(r *http.Request) string {
	// The canonical key, looked up directly: Header.Get would canonicalise
	// "X-Request-ID" again for every request.
	if v := r.Header["X-Request-Id"]; len(v) > 0 && validID(v[0]) {
		return v[0]
	}
	// A random prefix per process and a counter: unique, and cheaper
	// than reading the system's random source for every request.
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], idPrefix...), idCounter.Add(1), 16))
}

// validID reports whether a caller's request ID is short and plain.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

var (
	idPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:]) + "-"
	}()
	idCounter atomic.Uint64
)

type recorder struct {
	http.ResponseWriter
	code  int
	bytes int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// httpError is an error with the status and the short message a client
// sees; the wrapped cause goes only to the log.
type httpError struct {
	code  int
	msg   string
	cause error
	// retryAfter, when positive, is sent as Retry-After (whole seconds,
	// rounded up); a 503 without it says 30 s.
	retryAfter time.Duration
}

func (e *httpError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *httpError) Unwrap() error { return e.cause }

func badRequest(format string, a ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func notFound(msg string) error { return &httpError{code: http.StatusNotFound, msg: msg} }

// classify maps an error to its status and client message, in one place.
func classify(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.Is(err, feed.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, feed.ErrUnavailable):
		return http.StatusServiceUnavailable, "calendar store unavailable, try again later"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "request timed out"
	}
	return http.StatusInternalServerError, "internal error"
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, id string, err error) {
	code, msg := classify(err)
	if code >= 500 {
		h.log.Warn("request failed", "request_id", id, "method", r.Method, "route", r.Pattern, "code", code, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fbpub", charset="UTF-8"`)
	}
	var he *httpError
	switch {
	case errors.As(err, &he) && he.retryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(int((he.retryAfter+time.Second-1)/time.Second)))
	case code == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "30")
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// ready serves /readyz: 200 when the proxy can reach IMAP and log in, 503
// otherwise, so that a load balancer stops sending traffic during an
// outage.
func (h *Handler) ready(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := h.opts.Ready(ctx); err != nil {
			return &httpError{code: http.StatusServiceUnavailable, msg: "IMAP unavailable", cause: err}
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.opts.ReadyDetail != nil {
		_, err := fmt.Fprintf(w, "ready\n%s\n", h.opts.ReadyDetail())
		return err
	}
	_, err := fmt.Fprintln(w, "ready")
	return err
}

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
	if w.End.Sub(w.Start) > h.opts.MaxSpan {
		return w, badRequest("the window may span at most %d days", int(h.opts.MaxSpan.Hours()/24))
	}
	return w, nil
}

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
// .pxfb), which a client calls after writing a folder: the folder states
// are read now, whatever the check interval, and the folder's free/busy
// is answered from the fresh state.
func (h *Handler) trigger(w http.ResponseWriter, r *http.Request) error {
	user, addr, err := h.owner(r.PathValue("owner"))
	if err != nil {
		return err
	}
	p, ext := splitExt(r.PathValue("path"))
	if ext != "pfb" && ext != "pxfb" {
		return notFound("triggers are <owner>/<folder>.pfb or .pxfb")
	}
	segs, err := folderSegments(p)
	if err != nil {
		return err
	}
	viewer, err := h.viewer(w, r)
	if err != nil {
		return err
	}
	if err := h.opts.Cache.Check(r.Context(), user); err != nil {
		return err
	}
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: user, Folder: segs, Window: h.defaultWindow(), Organizer: addr, Zone: h.opts.Zone(user),
		Viewer: viewer, Extended: ext == "pxfb", OffHours: h.opts.Team.OffHours, WorkingHours: h.workingHours(user),
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "freebusy", a, segs[len(segs)-1]+"."+ext)
	return nil
}

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

// viewer returns who asks, for the cache's access policy: anonymous, a
// user proved by HTTP Basic against IMAP, or a user named by a trusted
// reverse proxy. An answer that depends on credentials is private: shared
// caches must not keep it. When free/busy is not public, an anonymous
// requester is asked to log in before anything is looked up, so the
// answer is the same for every name.
func (h *Handler) viewer(w http.ResponseWriter, r *http.Request) (acl.Requester, error) {
	hd := w.Header()
	if hd["Vary"] == nil {
		hd["Vary"] = varyAuthorization
	} else {
		hd.Add("Vary", "Authorization")
	}
	who, err := h.requester(r)
	if err != nil {
		return acl.Requester{}, err
	}
	if who.user == "" {
		if h.opts.Policy.Challenges() {
			return acl.Requester{}, &httpError{code: http.StatusUnauthorized, msg: "log in to see free/busy times"}
		}
		return acl.Requester{Anonymous: true}, nil
	}
	hd["Cache-Control"] = h.privateCacheControl
	return who.requester(h.opts.Groups), nil
}

// requester is who as the access policy sees it: the server's spelling
// and its groups when confirmed, else the name as given, which the policy
// evaluates fail-closed.
func (who identity) requester(g acl.Groups) acl.Requester {
	r := g.Requester(who.user)
	r.Confirmed = who.confirmed
	return r
}

// serve writes a calendar answer: ETag, Last-Modified and If-None-Match
// (304) are handled by http.ServeContent, as are HEAD and ranges.
//
// A client that accepts gzip gets the compressed body of a large answer,
// with its own entity tag, as RFC 9110 §8.8.3 wants for another encoding.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, view string, a *feed.Answer, filename string) {
	// Header values are assigned to canonical keys directly, from shared
	// slices that net/http does not modify: constants, and the values of
	// this answer, formatted once for all the requests that get it.
	hd := w.Header()
	hd["Content-Type"] = calendarType
	if hd["Cache-Control"] == nil {
		hd["Cache-Control"] = h.cacheControlValue
	}
	hd["X-Content-Type-Options"] = nosniff
	if v := hd["Vary"]; len(v) == 1 && v[0] == "Authorization" {
		hd["Vary"] = varyAuthorizationEncoding
	} else {
		hd["Vary"] = append(v, "Accept-Encoding")
	}
	body, gzipped := a.Body, false
	if len(body) >= minGzip && acceptsGzip(r) {
		body, gzipped = a.Gzipped(), true
		hd["Content-Encoding"] = gzipValue
	}
	v := h.headers.get(a.Rendered, len(body), gzipped, filename)
	hd["Content-Disposition"] = v.disposition
	hd["Etag"] = v.etag
	if a.Stale {
		// The IMAP server could not be read: this is the last good answer.
		hd["X-Fbpub-Stale"] = staleValue
		hd["Warning"] = staleWarning
	}
	if r.Method == http.MethodGet && !hasAny(r.Header, "If-None-Match", "If-Modified-Since", "Range") {
		// The common case, written directly: http.ServeContent would copy
		// the body through a fresh 32 KiB buffer for every request.
		if v.lastModified != nil {
			hd["Last-Modified"] = v.lastModified
		}
		if len(body) > implicitLength {
			hd["Content-Length"] = v.length
		}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	} else {
		http.ServeContent(w, r, "", a.Modified, bytes.NewReader(body))
	}
	c := h.cacheCounters[view]
	if c == nil {
		c = newCacheCounters(h.opts.Metrics, view)
	}
	if x, ok := w.(*exchange); ok && x.code == http.StatusNotModified {
		c.notModified.Inc()
		return
	}
	c.result(a.Result).Inc()
}

// implicitLength is the size of the buffer net/http's response writer
// fills before it sends anything (bufferBeforeChunkingSize): a body
// written whole that fits in it gets its Content-Length from net/http, set
// outside the header map. Leaving it out of the map keeps an anonymous
// answer's map at eight keys, the most a Go map holds without growing a
// table, which net/http then clones and sorts for every response.
const implicitLength = 2048

// hasAny reports whether the request has any of the (canonical) header
// keys, non-empty.
func hasAny(h http.Header, keys ...string) bool {
	for _, k := range keys {
		if v := h[k]; len(v) > 0 && v[0] != "" {
			return true
		}
	}
	return false
}

// Constant header values, shared by every response (net/http does not
// modify them; their length is their capacity, so that append copies).
var (
	calendarType              = []string{"text/calendar; charset=utf-8"}
	nosniff                   = []string{"nosniff"}
	gzipValue                 = []string{"gzip"}
	varyAuthorization         = []string{"Authorization"}
	varyAuthorizationEncoding = []string{"Authorization", "Accept-Encoding"}
	staleValue                = []string{"1"}
	staleWarning              = []string{`110 fbpub "Response is Stale"`}
)

// cacheCounters are the children of fbpub_cache_requests_total for one
// view.
type cacheCounters struct {
	m                             *metrics.Metrics
	view                          string
	hit, miss, stale, notModified prometheus.Counter
}

func newCacheCounters(m *metrics.Metrics, view string) *cacheCounters {
	return &cacheCounters{m: m, view: view,
		hit:         m.CacheRequests.WithLabelValues(view, "hit"),
		miss:        m.CacheRequests.WithLabelValues(view, "miss"),
		stale:       m.CacheRequests.WithLabelValues(view, "stale"),
		notModified: m.CacheRequests.WithLabelValues(view, "not_modified"),
	}
}

func (c *cacheCounters) result(r string) prometheus.Counter {
	switch r {
	case "hit":
		return c.hit
	case "miss":
		return c.miss
	case "stale":
		return c.stale
	}
	return c.m.CacheRequests.WithLabelValues(c.view, r)
}

// headerCache remembers the formatted header values of recent answers
// (entity tag, Last-Modified, Content-Length, Content-Disposition), so
// that the requests that get the same answer share them instead of
// formatting and allocating them again. It is a fixed array of slots
// indexed by a hash of the entity tag and file name: bounded, lock-free,
// and an entry is only used when everything it was made from matches.
type headerCache struct {
	seed  maphash.Seed // set by New
	slots [256]atomic.Pointer[answerHeaders]
}

type answerHeaders struct {
	// What the values were made from.
	etagIn   string
	modified time.Time
	size     int
	gzipped  bool
	filename string

	etag, lastModified, length, disposition []string
}

func (c *headerCache) get(a *feed.Rendered, size int, gzipped bool, filename string) *answerHeaders {
	hash := maphash.String(c.seed, a.ETag) ^ maphash.String(c.seed, filename)<<1
	slot := &c.slots[hash%uint64(len(c.slots))]
	if v := slot.Load(); v != nil && v.etagIn == a.ETag && v.size == size && v.gzipped == gzipped && v.filename == filename && v.modified.Equal(a.Modified) {
		return v
	}
	tag := a.ETag
	if gzipped {
		// Another encoding is another representation: its own tag
		// (RFC 9110 §8.8.3).
		tag = strings.TrimSuffix(tag, `"`) + `-gzip"`
	}
	v := &answerHeaders{etagIn: a.ETag, modified: a.Modified, size: size, gzipped: gzipped, filename: filename,
		etag: []string{tag}, length: []string{strconv.Itoa(size)}, disposition: []string{contentDisposition(filename)}}
	if !a.Modified.IsZero() {
		v.lastModified = []string{a.Modified.UTC().Format(http.TimeFormat)}
	}
	slot.Store(v)
	return v
}

// minGzip is the smallest body worth compressing.
const minGzip = 1024

// acceptsGzip reads Accept-Encoding, honouring "gzip;q=0".
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

func splitExt(s string) (name, ext string) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return s, ""
	}
	return s[:i], strings.ToLower(s[i+1:])
}
