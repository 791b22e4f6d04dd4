package httpserve

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// responseWriter is the lean loop's http.ResponseWriter. It buffers the
// whole response and frames it as net/http's would be for the same
// handler calls: the handler's headers as they were at WriteHeader,
// sorted, then Date, Content-Length and a sniffed Content-Type where the
// handler set none, no body for HEAD, 204 and 304.
type responseWriter struct {
	req    *http.Request
	header http.Header // reused: a handler may not keep it past ServeHTTP

	wroteHeader bool
	status      int
	// head is the status line and the handler's header fields, formatted
	// when the header was written.
	head []byte
	// What the handler's header said, read at WriteHeader.
	hasDate, hasType, hasEncoding, closeAfter bool
	length                                    int64 // Content-Length, or -1
	// body is what the handler wrote (not kept for HEAD, where only its
	// length counts).
	body    []byte
	written int64
	keys    []string // scratch for sorting header keys
}

func (w *responseWriter) reset(req *http.Request) {
	w.req = req
	if w.header == nil {
		w.header = make(http.Header, 16)
	} else {
		clear(w.header)
	}
	w.wroteHeader, w.status = false, 0
	w.head = w.head[:0]
	w.hasDate, w.hasType, w.hasEncoding, w.closeAfter = false, false, false, false
	w.length = -1
	if cap(w.body) > 256<<10 {
		w.body = nil
	}
	w.body = w.body[:0]
	w.written = 0
}

func (w *responseWriter) Header() http.Header { return w.header }

// Flush does nothing: the response goes out whole when the handler
// returns.
func (w *responseWriter) Flush() {}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return // as net/http: a second call is ignored
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes ahead of the final one.
		w.head = appendStatus(w.head, code)
		w.head = w.appendFields(w.head, noBodyFields)
		w.head = append(w.head, "\r\n"...)
		return
	}
	w.wroteHeader, w.status = true, code
	hd := w.header
	// Canonical keys, looked up directly, as net/http looks them up.
	if cl := first(hd["Content-Length"]); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.length = v
		} else {
			delete(hd, "Content-Length") // net/http drops an invalid one too
		}
	}
	_, w.hasDate = hd["Date"]
	_, w.hasType = hd["Content-Type"]
	w.hasEncoding = first(hd["Content-Encoding"]) != ""
	w.closeAfter = hasToken(first(hd["Connection"]), "close")
	// The body goes out whole, with its length: never chunked.
	skip := framingFields
	if !bodyAllowed(code) {
		if code == http.StatusNotModified {
			skip = notModifiedFields
		} else {
			skip = noBodyFields
		}
	}
	w.head = appendStatus(w.head, code)
	w.head = w.appendFields(w.head, skip)
}

func (w *responseWriter) Write(p []byte) (int, error) { return writeBody(w, p) }

// WriteString lets io.WriteString skip a conversion.
func (w *responseWriter) WriteString(s string) (int, error) { return writeBody(w, s) }

func writeBody[T []byte | string](w *responseWriter, p T) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.length >= 0 && w.written > w.length {
		return 0, http.ErrContentLength
	}
	if w.req.Method != http.MethodHead {
		w.body = append(w.body, p...)
	} else if n := sniffLen - len(w.body); n > 0 {
		// Kept only to sniff a Content-Type from.
		w.body = append(w.body, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// finish appends the whole response to out. closing adds Connection:
// close (the server is shutting down).
func (w *responseWriter) finish(out []byte, closing bool) []byte {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	out = append(out, w.head...)
	if !w.hasDate {
		out = append(out, "Date: "...)
		out = append(out, httpDate()...)
		out = append(out, "\r\n"...)
	}
	body := bodyAllowed(w.status)
	if body {
		head := w.req.Method == http.MethodHead
		// net/http gives a HEAD answer the length of what the handler
		// wrote only when it fitted in its buffer.
		if w.length < 0 && (!head || w.written > 0 && w.written <= headLengthMax) {
			out = append(out, "Content-Length: "...)
			out = strconv.AppendInt(out, w.written, 10)
			out = append(out, "\r\n"...)
		}
		if !w.hasType && !w.hasEncoding && len(w.body) > 0 {
			out = append(out, "Content-Type: "...)
			out = append(out, http.DetectContentType(w.body)...)
			out = append(out, "\r\n"...)
		}
	}
	if closing && !w.closeAfter {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if body && w.req.Method != http.MethodHead {
		out = append(out, w.body...)
	}
	return out
}

// appendFields appends the handler's header fields, sorted by key, as
// net/http writes them: values with line breaks turned to spaces and
// trimmed, fields with invalid names left out, and the keys in skip left
// out.
func (w *responseWriter) appendFields(out []byte, skip []string) []byte {
	keys := w.keys[:0]
	for k := range w.header {
		if isToken(k) && !slices.Contains(skip, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range w.header[k] {
			out = append(out, k...)
			out = append(out, ": "...)
			out = appendValue(out, v)
			out = append(out, "\r\n"...)
		}
	}
	w.keys = keys[:0]
	return out
}

// short reports whether the handler wrote less than the Content-Length
// it announced: the connection is then closed after the response, as
// net/http closes it, or the client would wait for the rest.
func (w *responseWriter) short() bool {
	return w.req.Method != http.MethodHead && bodyAllowed(w.status) && w.length >= 0 && w.written != w.length
}

const (
	// sniffLen is how much of a body http.DetectContentType looks at.
	sniffLen = 512
	// headLengthMax is net/http's response buffer size.
	headLengthMax = 2048
)

// appendValue appends a header value as net/http writes it: line breaks
// turned to spaces, then spaces and tabs trimmed at both ends. Values
// that need neither, nearly all, are copied in one pass over them.
func appendValue(out []byte, v string) []byte {
	plain := len(v) == 0 || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
	for i := 0; plain && i < len(v); i++ {
		plain = v[i] != '\r' && v[i] != '\n'
	}
	if plain {
		return append(out, v...)
	}
	return append(out, strings.Trim(newlineToSpace.Replace(v), " \t")...)
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

var (
	newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")
	// framingFields are never taken from the handler (the loop does not
	// chunk); noBodyFields are dropped from a response without a body
	// (1xx, 204), notModifiedFields from a 304, as net/http does.
	framingFields     = []string{"Transfer-Encoding"}
	noBodyFields      = []string{"Content-Length", "Transfer-Encoding"}
	notModifiedFields = []string{"Content-Length", "Transfer-Encoding", "Content-Type"}
)

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

func appendStatus(out []byte, code int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	if text := http.StatusText(code); text != "" {
		out = append(out, text...)
	} else {
		out = append(out, "status code "...)
		out = strconv.AppendInt(out, int64(code), 10)
	}
	return append(out, "\r\n"...)
}

// hasToken reports whether a comma-separated header value holds token,
// case-insensitively.
func hasToken(v, token string) bool {
	for e := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.Trim(e, " \t"), token) {
			return true
		}
	}
	return false
}

// httpDate is the current time in the Date header's format, formatted
// once a second.
func httpDate() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := dateCache.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateText{sec: sec, text: now.UTC().AppendFormat(nil, http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text []byte
}

var dateCache atomic.Pointer[dateText]
