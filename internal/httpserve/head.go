package httpserve

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// head is a request head the lean loop serves.
type head struct {
	method, target, host string
	header               http.Header
}

// indexHeadEnd returns the index just past the blank line that ends a
// request head in b, or -1.
func indexHeadEnd(b []byte) int {
	if i := bytes.Index(b, crlfcrlf); i >= 0 {
		return i + len(crlfcrlf)
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// bareLF reports whether b holds a line feed without a carriage return
// before it.
func bareLF(b []byte) bool {
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// parseHead parses a request head (ending in CRLF CRLF) the lean loop may
// serve: "GET" or "HEAD", an origin-form target of plain characters that
// fast accepts, HTTP/1.1, CRLF line ends, well-formed header fields, one
// Host, and nothing that announces a body, an upgrade or the end of the
// connection. Anything else reports false, and net/http gets the request.
// What it accepts, net/http parses to the same request (FuzzParseHead).
func parseHead(b []byte, fast func(target string) bool) (head, bool) {
	var h head
	line, rest, ok := bytes.Cut(b, crlf)
	if !ok {
		return h, false
	}
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		h.method, line = http.MethodGet, line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		h.method, line = http.MethodHead, line[5:]
	default:
		return h, false
	}
	target, ok := bytes.CutSuffix(line, []byte(" HTTP/1.1"))
	if !ok || !plainTarget(target) {
		return h, false
	}
	// One string holds the target and every header value.
	s := string(target) + string(rest)
	h.target, s = s[:len(target)], s[len(target):]
	if !fast(h.target) {
		return h, false
	}
	n := strings.Count(s, "\r\n") - 1 // header fields; the head ends in a blank line
	if n < 1 {
		return h, false // no Host
	}
	h.header = make(http.Header, n-1)
	values := make([]string, n)
	hosts := 0
	for i := 0; i < n; i++ {
		field, more, _ := strings.Cut(s, "\r\n")
		s = more
		name, value, ok := strings.Cut(field, ":")
		if !ok || !isToken(name) {
			return h, false
		}
		value = strings.Trim(value, " \t")
		if !plainValue(value) {
			return h, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Host":
			if hosts++; hosts > 1 || !plainHost(value) {
				return h, false
			}
			h.host = value
			continue
		case "Connection":
			if !strings.EqualFold(value, "keep-alive") {
				return h, false
			}
		case "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Trailer":
			return h, false
		}
		values[i] = value
		if old := h.header[key]; old != nil {
			h.header[key] = append(old, value)
		} else {
			h.header[key] = values[i : i+1 : i+1]
		}
	}
	if hosts != 1 {
		return h, false
	}
	// As net/http does (RFC 9111 §5.4): Pragma: no-cache alone means
	// Cache-Control: no-cache.
	if p := h.header["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h.header["Cache-Control"] == nil {
		h.header["Cache-Control"] = []string{"no-cache"}
	}
	return h, true
}

var crlf = []byte("\r\n")

// fill sets a request's fields from the head.
func (h *head) fill(r *http.Request) {
	r.Method = h.method
	// A plain target is its own path: nothing to unescape.
	r.URL = &url.URL{Path: h.target}
	r.RequestURI = h.target
	r.Host = h.host
	r.Header = h.header
}

// plainTarget reports whether t is an origin-form path of characters that
// need no escaping and carry no query or fragment: a path url.URL holds
// as it is (RawPath empty).
func plainTarget(t []byte) bool {
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	for _, c := range t {
		if !pathChar[c] {
			return false
		}
	}
	return true
}

// pathChar marks the bytes a plain target may hold: letters, digits and
// the RFC 3986 path characters that Go's URL encoder leaves as they are.
var pathChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~/@+=,;:&$" {
		t[c] = true
	}
	return t
}()

// isToken reports whether s is an RFC 9110 token (a field name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = pathChar[c] && !strings.ContainsRune("/@=,;:", rune(c))
	}
	for _, c := range "!#%'*^_`|" {
		t[c] = true
	}
	return t
}()

// plainValue reports whether a field value has no control characters
// other than tab; obs-text (bytes from 0x80) is allowed, as net/http
// allows it.
func plainValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// plainHost reports whether a Host value is a name or address with an
// optional port, in the characters such values use.
func plainHost(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
