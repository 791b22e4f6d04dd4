package httpapi

import (
	"bytes"
	"hash/maphash"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

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
	switch {
	case r.Method == http.MethodGet && !hasAny(r.Header, "If-None-Match", "If-Modified-Since", "Range"):
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
	case holdsTag(r, v.etag[0]):
		// A client revalidating the answer it holds, as clients send
		// the tag back: http.ServeContent's 304 (the same headers less
		// the body's, RFC 9110 §15.4.5), without formatting its
		// Last-Modified to delete it again.
		delete(hd, "Content-Type")
		delete(hd, "Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
	default:
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

// holdsTag reports whether r is a GET or HEAD whose one precondition is
// an If-None-Match of exactly etag: one that http.ServeContent answers
// with 304. Any other form (a list, a weak tag, "*", more conditions)
// is left to http.ServeContent.
func holdsTag(r *http.Request, etag string) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	v := r.Header["If-None-Match"]
	return len(v) == 1 && v[0] == etag && !hasAny(r.Header, "If-Match", "If-Unmodified-Since")
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

// acceptsGzip reads Accept-Encoding, honouring "gzip;q=0". It allocates
// nothing for the headers clients send.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header["Accept-Encoding"] {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := params
			if strings.IndexByte(q, ' ') >= 0 {
				q = strings.ReplaceAll(q, " ", "")
			}
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
