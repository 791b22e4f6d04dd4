// Package httpapi is fbpub's HTTP surface: it parses and validates
// requests, asks the feed cache for answers and writes them with the
// headers calendar clients and caches expect. Nothing from a URL reaches
// IMAP before it has been validated here.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
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
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/upload"
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
	// It is a function, not the upload engine, so that the handler is
	// tested without IMAP.
	Upload func(ctx context.Context, r upload.Request) (upload.Result, error)
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
	// Shared, when set, is the state replicas share through Redis: the
	// failed-login and wrong-link throttles count across replicas. Nil
	// counts in this process only.
	Shared *shared.Client
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
		h.auth = newVerifier(opts.Verify, opts.Logins, opts.Metrics, opts.Shared)
	}
	if opts.Links != nil {
		h.links = newLinks(*opts.Links, opts.Shared)
	}
	for addr, login := range opts.Addresses {
		h.addresses[strings.ToLower(addr)] = login
	}
	h.routes()
	return h
}

// routes registers every route, with the name its metrics carry.
func (h *Handler) routes() {
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
	if h.opts.Gatherer != nil {
		mh := promhttp.HandlerFor(h.opts.Gatherer, promhttp.HandlerOpts{})
		h.handle("GET /metrics", "metrics", func(w http.ResponseWriter, r *http.Request) error {
			mh.ServeHTTP(w, r)
			return nil
		})
	}
	// An owner's whole calendar is read-only: without this route a PUT
	// would be redirected to the folder route's "/calendar/<file>/".
	h.handle("PUT /calendar/{file}", "other", h.other)
	h.handle("/", "other", h.other)
}

// other answers what no route serves: 405 with the methods that the path
// is served with, else 404.
func (h *Handler) other(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := *r
		probe.Method = m
		if _, pattern := h.mux.Handler(&probe); m != r.Method && pattern != "" && pattern != "/" && pattern != "PUT /calendar/{file}" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return notFound("no such page")
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return &httpError{code: http.StatusMethodNotAllowed, msg: r.Method + " is not served here; " + strings.Join(allow, ", ") + " are"}
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
			x := exchanges.Get().(*exchange)
			rt.begin(x, w, r)
			if err := h.freeBusy(x, r, file); err != nil {
				h.writeError(x, r, x.id, err)
			}
			rt.end(x, r)
			// Nothing keeps the exchange: the response's header map
			// holds only shared values.
			*x = exchange{}
			exchanges.Put(x)
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
		x := new(exchange)
		rt.begin(x, w, r)
		if err := f(x, r); err != nil {
			h.writeError(x, r, x.id, err)
		}
		rt.end(x, r)
	})
	return rt
}

// begin starts the exchange x, which is zero, for w and r: its start
// time and request ID.
func (rt *route) begin(x *exchange, w http.ResponseWriter, r *http.Request) {
	x.recorder = recorder{ResponseWriter: w, code: http.StatusOK}
	x.t0 = time.Now()
	var value []string
	x.id, value = requestID(r)
	w.Header()["X-Request-Id"] = value
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
// to count and log it. Those of GET /freebusy/<file> are reused
// (exchanges); the other routes allocate one per request.
type exchange struct {
	recorder
	t0 time.Time
	id string
}

// exchanges holds the zeroed exchanges of finished free/busy requests.
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// requestID returns the caller's X-Request-ID when it is short and plain,
// else a new random one, so that a reverse proxy's ID runs through; and
// the X-Request-Id header value that carries it, shared and never
// modified (its capacity is its length, so that an append copies), so
// that a response's header map holds nothing a later request reuses.
func requestID(r *http.Request) (string, []string) {
	// The canonical key, looked up directly: Header.Get would canonicalise
	// "X-Request-ID" again for every request.
	if v := r.Header["X-Request-Id"]; len(v) > 0 && validID(v[0]) {
		return v[0], v[:1:1]
	}
	return newRequestID()
}

// newRequestID returns a new request ID and its header value: a random
// prefix per process and a counter in fixed-width hex, unique, and
// cheaper than reading the system's random source for every request. The
// IDs are made in batches, cut from one string, so that a request does
// not allocate its own.
func newRequestID() (string, []string) {
	n := idCounter.Add(1)
	b := currentIDs.Load()
	if b == nil || n < b.first || n >= b.first+idsPerBatch {
		// Two requests may make the same batch at once: the IDs are a
		// function of n, so either one does.
		b = makeIDBatch(n - n%idsPerBatch)
		currentIDs.Store(b)
	}
	i := n - b.first
	return b.ids[i], b.ids[i : i+1 : i+1]
}

const hexDigits = "0123456789abcdef"

const (
	idsPerBatch = 64
	idDigits    = 16 // hex digits of the counter, all of a uint64
	idLen       = len("0123456789ab-") + idDigits
)

// idBatch holds the IDs of the counter values first to
// first+idsPerBatch-1. It is never modified once made.
type idBatch struct {
	first uint64
	ids   [idsPerBatch]string
}

func makeIDBatch(first uint64) *idBatch {
	// The first ID, then copies of it with their last two hex digits
	// counted on: first is a multiple of idsPerBatch, which is at most
	// 256, so only those two change within a batch.
	var id [idLen]byte
	var digits [16]byte
	h := strconv.AppendUint(digits[:0], first, 16)
	n := copy(id[:], idPrefix)
	n += copy(id[n:], "0000000000000000"[:idDigits-len(h)])
	copy(id[n:], h)
	var b strings.Builder
	b.Grow(idsPerBatch * idLen)
	low := byte(first)
	for i := range byte(idsPerBatch) {
		id[idLen-2], id[idLen-1] = hexDigits[(low+i)>>4], hexDigits[(low+i)&15]
		b.Write(id[:])
	}
	all := b.String()
	batch := &idBatch{first: first}
	for i := range batch.ids {
		batch.ids[i] = all[i*idLen : (i+1)*idLen]
	}
	return batch
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
	idCounter  atomic.Uint64
	currentIDs atomic.Pointer[idBatch]
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
