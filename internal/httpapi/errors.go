package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/upload"
)

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
	var (
		he     *httpError
		dup    *upload.DuplicateError
		enc    *upload.EncodingError
		denied *upload.DeniedError
	)
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	// The refusals of an upload (Options.Upload).
	case errors.As(err, &dup):
		return http.StatusBadRequest, dup.Error() + "; nothing was changed"
	case errors.As(err, &enc):
		return http.StatusBadRequest, enc.Error() + "; nothing was changed"
	case errors.Is(err, upload.ErrCharset):
		return http.StatusUnsupportedMediaType, "fbpub cannot read the charset the calendar names: send it as UTF-8; nothing was changed"
	case errors.Is(err, upload.ErrUnavailable):
		return http.StatusServiceUnavailable, "calendar store unavailable; retry the upload later (a retry completes any part already written)"
	case errors.As(err, &denied):
		return http.StatusForbidden, denied.Error()
	case errors.Is(err, upload.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, upload.ErrAuth):
		return http.StatusUnauthorized, "wrong user name or password"
	case errors.Is(err, upload.ErrTooMany):
		return http.StatusRequestEntityTooLarge, strings.TrimPrefix(err.Error(), upload.ErrTooMany.Error()+": ")
	case errors.Is(err, upload.ErrBadInput):
		return http.StatusBadRequest, "the upload is not a calendar fbpub can read; nothing was changed"
	// The cache's answers.
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
