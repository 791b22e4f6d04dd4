package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/upload"
)

// TestClassify holds the error → status table: what each category of
// error becomes for the client, wrapped or not, and the upload engine's
// refusals with the message that tells the uploader what to do.
func TestClassify(t *testing.T) {
	denied := &upload.DeniedError{Right: acl.Insert, Folder: "Calendar", Why: "add or change events"}
	dup := &upload.DuplicateError{UID: "a1"}
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{notFound("no such page"), http.StatusNotFound, "no such page"},
		{badRequest("bad %s", "thing"), http.StatusBadRequest, "bad thing"},
		{errPreconditionFailed, http.StatusPreconditionFailed, errPreconditionFailed.msg},
		{fmt.Errorf("reading: %w", feed.ErrNotFound), http.StatusNotFound, "not found"},
		{feed.ErrUnavailable, http.StatusServiceUnavailable, "calendar store unavailable, try again later"},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, "request timed out"},
		{errors.New("boom"), http.StatusInternalServerError, "internal error"},
		{dup, http.StatusBadRequest, dup.Error() + "; nothing was changed"},
		{fmt.Errorf("%w: %w", upload.ErrUnavailable, context.DeadlineExceeded), http.StatusServiceUnavailable,
			"calendar store unavailable; retry the upload later (a retry completes any part already written)"},
		{denied, http.StatusForbidden, `you need the "i" right on Calendar to add or change events`},
		{upload.ErrNotFound, http.StatusNotFound, "not found"},
		{upload.ErrAuth, http.StatusUnauthorized, "wrong user name or password"},
		{fmt.Errorf("%w: the calendar holds more than 5 events", upload.ErrTooMany), http.StatusRequestEntityTooLarge,
			"the calendar holds more than 5 events"},
		{&upload.EncodingError{Line: 7}, http.StatusBadRequest,
			"line 7 of the calendar is not valid UTF-8: send it as UTF-8, or name its charset; nothing was changed"},
		{&upload.EncodingError{Charset: "shift_jis", Line: 2}, http.StatusBadRequest,
			"line 2 of the calendar is not valid shift_jis, the charset it names; nothing was changed"},
		{fmt.Errorf("%w: %q", upload.ErrCharset, "x-martian"), http.StatusUnsupportedMediaType,
			"fbpub cannot read the charset the calendar names: send it as UTF-8; nothing was changed"},
		{fmt.Errorf("%w: line 3: no BEGIN", upload.ErrBadInput), http.StatusBadRequest,
			"the upload is not a calendar fbpub can read; nothing was changed"},
	} {
		if code, msg := classify(tc.err); code != tc.code || msg != tc.msg {
			t.Errorf("classify(%q) = %d %q, want %d %q", tc.err, code, msg, tc.code, tc.msg)
		}
	}
}
