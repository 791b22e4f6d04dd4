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
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
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
	// It reports false for wrong credentials, and an error when it could
	// not tell.
	Verify func(ctx context.Context, user, password string) (bool, error)
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
	auth              *verifier
	log               *slog.Logger
	mux               *http.ServeMux
	// lastDate remembers the last Last-Modified value formatted, and
	// counters the metric children of the hot path (bounded label sets).
	lastDate atomic.Pointer[formattedDate]
	counters sync.Map
}

// New builds the handler.
func New(opts Options) *Handler {
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
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
	if opts.Verify != nil {
		h.auth = newVerifier(opts.Verify)
	}
	for addr, login := range opts.Addresses {
		h.addresses[strings.ToLower(addr)] = login
	}
	h.handle("GET /freebusy/{file}", "freebusy", h.freeBusy)
	h.handle("GET /freebusy/trigger/{owner}/{path...}", "trigger", h.trigger)
	h.handle("GET /freebusy/user/{owner}", "freebusy", h.freeBusyRead)
	h.handle("GET /freebusy/user/{owner}/{path...}", "freebusy", h.freeBusyRead)
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

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// handle registers a route whose handler returns an error, and counts it.
func (h *Handler) handle(pattern, route string, f func(http.ResponseWriter, *http.Request) error) {
	duration := h.opts.Metrics.HTTPDuration.WithLabelValues(route)
	bytesOut := h.opts.Metrics.HTTPBytes.WithLabelValues(route)
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		id := requestID(r)
		w.Header().Set("X-Request-ID", id)
		rw := &recorder{ResponseWriter: w, code: http.StatusOK}
		if err := f(rw, r); err != nil {
			h.writeError(rw, r, h.log.With("request_id", id), err)
		}
		d := time.Since(t0)
		h.requests(route, rw.code).Inc()
		duration.Observe(d.Seconds())
		bytesOut.Add(float64(rw.bytes))
		// The path is not logged: it names users and folders. The route
		// and the outcome are enough to follow a request.
		if h.log.Enabled(r.Context(), slog.LevelDebug) {
			h.log.Debug("request", "request_id", id, "method", r.Method, "route", route, "code", rw.code, "bytes", rw.bytes, "duration", d)
		}
	})
}

// requests returns the counter of fbpub_http_requests_total for a route
// and status code, looked up once.
func (h *Handler) requests(route string, code int) prometheus.Counter {
	key := route + "\x00" + strconv.Itoa(code)
	if c, ok := h.counters.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c := h.opts.Metrics.HTTPRequests.WithLabelValues(route, strconv.Itoa(code))
	h.counters.Store(key, c)
	return c
}

// requestID returns the caller's X-Request-ID when it is short and plain,
// else a new random one, so that a reverse proxy's ID runs through.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return id
	}
	// A random prefix per process and a counter: unique, and cheaper
	// than reading the system's random source for every request.
	return idPrefix + strconv.FormatUint(idCounter.Add(1), 16)
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

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code, msg := classify(err)
	if code >= 500 {
		log.Warn("request failed", "method", r.Method, "route", r.Pattern, "code", code, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fbpub", charset="UTF-8"`)
	}
	if code == http.StatusServiceUnavailable {
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
	_, err := fmt.Fprintln(w, "ready")
	return err
}

// freeBusy serves /freebusy/<user>.vfb and .ifb, where <user> is a login
// or an address (Outlook's %NAME%@%SERVER%).
func (h *Handler) freeBusy(w http.ResponseWriter, r *http.Request) error {
	file := r.PathValue("file")
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
		Owner: user, Window: h.defaultWindow(), Organizer: addr, Zone: h.opts.Zone(user),
		Viewer: viewer, Extended: ext == "xfb",
	})
	if err != nil {
		return err
	}
	h.serve(w, r, "freebusy", a, file)
	return nil
}

// defaultWindow runs from PastDays before today to FutureDays after it,
// in whole UTC days, so that answers stay the same all day and cache well.
func (h *Handler) defaultWindow() freebusy.Window {
	now := h.opts.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return freebusy.Window{Start: today.AddDate(0, 0, -h.opts.PastDays), End: today.AddDate(0, 0, h.opts.FutureDays+1)}
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
	if err := h.opts.Cache.Check(r.Context()); err != nil {
		return err
	}
	a, err := h.opts.Cache.FreeBusy(r.Context(), feed.FreeBusyQuery{
		Owner: user, Folder: segs, Window: h.defaultWindow(), Organizer: addr, Zone: h.opts.Zone(user),
		Viewer: viewer, Extended: ext == "pxfb",
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
	w.Header().Add("Vary", "Authorization")
	who, err := h.requester(r)
	if err != nil {
		return acl.Requester{}, err
	}
	if who == "" {
		if h.opts.Policy.Challenges() {
			return acl.Requester{}, &httpError{code: http.StatusUnauthorized, msg: "log in to see free/busy times"}
		}
		return acl.Requester{Anonymous: true}, nil
	}
	w.Header().Set("Cache-Control", "private, "+h.cacheControl)
	return h.opts.Groups.Requester(who), nil
}

// serve writes a calendar answer: ETag, Last-Modified and If-None-Match
// (304) are handled by http.ServeContent, as are HEAD and ranges.
//
// A client that accepts gzip gets the compressed body of a large answer,
// with its own entity tag, as RFC 9110 §8.8.3 wants for another encoding.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, view string, a *feed.Answer, filename string) {
	// Header values are assigned to canonical keys directly, constants
	// from shared slices: this runs for every request of the hot path.
	hd := w.Header()
	hd["Content-Type"] = calendarType
	if hd["Cache-Control"] == nil {
		hd["Cache-Control"] = h.cacheControlValue
	}
	hd["Content-Disposition"] = []string{contentDisposition(filename)}
	hd["X-Content-Type-Options"] = nosniff
	hd["Vary"] = append(hd["Vary"], "Accept-Encoding")
	body, tag := a.Body, a.ETag
	if len(body) >= minGzip && acceptsGzip(r) {
		body, tag = a.Gzipped(), strings.TrimSuffix(tag, `"`)+`-gzip"`
		hd["Content-Encoding"] = gzipValue
	}
	hd["Etag"] = []string{tag}
	if a.Stale {
		// The IMAP server could not be read: this is the last good answer.
		hd.Set("X-Fbpub-Stale", "1")
		hd.Set("Warning", `110 fbpub "Response is Stale"`)
	}
	if r.Method == http.MethodGet && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" && r.Header.Get("Range") == "" {
		// The common case, written directly: http.ServeContent would copy
		// the body through a fresh 32 KiB buffer for every request.
		if !a.Modified.IsZero() {
			hd["Last-Modified"] = []string{h.httpDate(a.Modified)}
		}
		hd["Content-Length"] = []string{strconv.Itoa(len(body))}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	} else {
		http.ServeContent(w, r, "", a.Modified, bytes.NewReader(body))
	}
	result := a.Result
	if rw, ok := w.(*recorder); ok && rw.code == http.StatusNotModified {
		result = "not_modified"
	}
	h.cacheRequests(view, result).Inc()
}

// Constant header values, shared by every response (net/http does not
// modify them).
var (
	calendarType = []string{"text/calendar; charset=utf-8"}
	nosniff      = []string{"nosniff"}
	gzipValue    = []string{"gzip"}
)

// httpDate formats t for Last-Modified, remembering the last answer: most
// requests ask for the same few answers.
func (h *Handler) httpDate(t time.Time) string {
	if d := h.lastDate.Load(); d != nil && d.t.Equal(t) {
		return d.s
	}
	d := &formattedDate{t: t, s: t.UTC().Format(http.TimeFormat)}
	h.lastDate.Store(d)
	return d.s
}

type formattedDate struct {
	t time.Time
	s string
}

// cacheRequests returns the counter of fbpub_cache_requests_total for a
// view and result, looked up once.
func (h *Handler) cacheRequests(view, result string) prometheus.Counter {
	key := view + "\x00" + result
	if c, ok := h.counters.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c := h.opts.Metrics.CacheRequests.WithLabelValues(view, result)
	h.counters.Store(key, c)
	return c
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
