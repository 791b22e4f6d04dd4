package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/upload"
)

// An upload (PUT /calendar/<owner>/<folder>.ics, the ical2imap direction)
// replaces a folder's events with those of a whole calendar. The handler
// authenticates the requester, bounds and reads the body, evaluates its
// preconditions (If-Match, If-Unmodified-Since, If-None-Match) against
// the feed, and answers with the resulting feed; the
// writing itself, made as the requester's own IMAP session so that the
// server's ACL decides, is Options.Upload's (in fbpub, internal/upload's
// Service.Put); its refusals get their statuses in classify.

// The answers of the preconditions of a PUT.
var (
	errPreconditionFailed = &httpError{code: http.StatusPreconditionFailed, msg: "the calendar changed since you read it (If-Match): read it again, merge, and retry"}
	errModifiedSince      = &httpError{code: http.StatusPreconditionFailed, msg: "the calendar changed since the date you gave (If-Unmodified-Since): read it again, merge, and retry"}
	errNoneMatch          = &httpError{code: http.StatusPreconditionFailed, msg: "the calendar exists, as If-None-Match asked it not to; nothing was changed"}
)

// defaultMaxUpload bounds an upload's body when Options.MaxUpload is zero.
const defaultMaxUpload = 10 << 20

// upload serves PUT /calendar/<owner>/<folder>.ics.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) error {
	if h.opts.Upload == nil {
		w.Header().Set("Allow", "GET, HEAD")
		return &httpError{code: http.StatusMethodNotAllowed, msg: "uploads are not enabled"}
	}
	f, err := h.openFolder(w, r, h.writer, "calendars are uploaded as <user>/<folder>.ics", "ics")
	if err != nil {
		return err
	}
	_, pass, _ := r.BasicAuth() // writer made sure they are there
	charset, err := checkUploadType(r)
	if err != nil {
		return err
	}
	if err := checkUploadCoding(w, r); err != nil {
		return err
	}
	// A body declared larger than the limit is refused before a byte of
	// it is read: a client that sent Expect: 100-continue is answered
	// 413 instead of being told to send it.
	if limit := h.maxUpload(); r.ContentLength > limit {
		return tooLarge(limit)
	}
	// Only a calendar fbpub publishes takes uploads: not INBOX, not a
	// folder the owner has not shared with the proxy. From here on the
	// owner is spelt as the folder list spells it, whatever the URL said,
	// so that one folder has one name (and one upload lock).
	owner, err := h.published(r.Context(), f.user, f.folder)
	if err != nil {
		return err
	}
	body, err := h.uploadBody(w, r)
	if err != nil {
		return err
	}
	query := feed.CalendarQuery{Owner: owner, Folder: f.folder, Name: owner + " – " + strings.Join(f.folder, "/"), Refresh: h.opts.Refresh, Viewer: f.who}
	// The write logs in as the server's spelling of the requester where
	// fbpub knows it, so that the requester's own folders are found
	// under the exact name.
	up := upload.Request{User: f.who.User, Password: pass, Owner: owner, Folder: f.folder, Body: body, Charset: charset}
	up.Check = h.preconditions(r.Header, query)
	res, err := h.opts.Upload(r.Context(), up)
	if err != nil {
		return err // classify says what the client sees
	}
	h.log.Info("calendar uploaded", "request_id", w.Header().Get("X-Request-ID"), "added", res.Added,
		"replaced", res.Replaced, "deleted", res.Deleted, "unchanged", res.Unchanged, "refused", res.Refused)
	return h.uploaded(w, r, query, res, f.file())
}

// checkUploadType accepts the media types clients send a calendar as, and
// no type at all, and returns the charset the type names ("" for none:
// UTF-8). Parameters that do not parse are read as none: the body must
// then be UTF-8, which the upload checks.
func checkUploadType(r *http.Request) (charset string, err error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		mt, _, _ = strings.Cut(ct, ";")
	}
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case "text/calendar", "application/ics", "application/octet-stream", "text/plain":
	default:
		return "", &httpError{code: http.StatusUnsupportedMediaType, msg: "upload a text/calendar body"}
	}
	return params["charset"], nil
}

// checkUploadCoding refuses a body with a content coding (RFC 9110
// §8.4): fbpub does not decode uploads (a small gzip body can inflate to
// far more than upload.max_bytes), so such a body gets 415 with
// Accept-Encoding: identity (RFC 7694), rather than being read as a
// calendar it is not.
func checkUploadCoding(w http.ResponseWriter, r *http.Request) error {
	for _, v := range r.Header.Values("Content-Encoding") {
		for coding := range strings.SplitSeq(v, ",") {
			if c := strings.TrimSpace(coding); c != "" && !strings.EqualFold(c, "identity") {
				w.Header().Set("Accept-Encoding", "identity")
				return &httpError{code: http.StatusUnsupportedMediaType, msg: "fbpub does not take compressed uploads: send the calendar without Content-Encoding"}
			}
		}
	}
	return nil
}

// maxUpload is the largest body an upload may have.
func (h *Handler) maxUpload() int64 {
	if h.opts.MaxUpload <= 0 {
		return defaultMaxUpload
	}
	return h.opts.MaxUpload
}

func tooLarge(limit int64) error {
	return &httpError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("the calendar is larger than %d bytes", limit)}
}

// uploadBody reads the body of an upload, at most Options.MaxUpload bytes.
func (h *Handler) uploadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.maxUpload()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, badRequest("reading the upload: %v", err)
	}
	return body, nil
}

// preconditions returns the upload's Check for the preconditions of a PUT,
// or nil when it has none. They are evaluated as RFC 9110 §13.2.2 orders
// them, against the feed of the folder query names, read fresh once the
// upload holds the folder:
//
//   - If-Match: the feed must have one of the entity tags (compared
//     strongly), else errPreconditionFailed, as when there is no feed;
//   - If-Unmodified-Since, only without If-Match: the feed's
//     Last-Modified must not be after the date, else errModifiedSince. A
//     value that is not an HTTP-date is ignored, as is the header when
//     fbpub knows no modification date (§13.1.4);
//   - If-None-Match: "*" fails when the feed exists, which a published
//     folder's always does, and a list of tags when the feed has one of
//     them (compared weakly, §13.1.2): errNoneMatch. A client that means
//     to create a calendar cannot overwrite one so.
//
// If-Modified-Since applies to GET and HEAD only (§13.1.3) and is
// ignored.
func (h *Handler) preconditions(hd http.Header, query feed.CalendarQuery) func(context.Context) error {
	match := strings.Join(hd.Values("If-Match"), ",")
	noneMatch := strings.Join(hd.Values("If-None-Match"), ",")
	var unmodified time.Time
	if v := hd.Get("If-Unmodified-Since"); v != "" && match == "" {
		unmodified, _ = http.ParseTime(v) // zero, and ignored, when invalid
	}
	if match == "" && noneMatch == "" && unmodified.IsZero() {
		return nil
	}
	return func(ctx context.Context) error {
		if err := h.opts.Cache.Check(ctx, query.Owner); err != nil {
			return err
		}
		a, err := h.opts.Cache.Calendar(ctx, query)
		exists := err == nil
		if err != nil && !errors.Is(err, feed.ErrNotFound) {
			return err
		}
		switch {
		case match != "" && (!exists || !etagMatches(match, a.ETag)):
			return errPreconditionFailed
		case !unmodified.IsZero() && exists && !a.Modified.IsZero() && a.Modified.Truncate(time.Second).After(unmodified):
			return errModifiedSince
		case noneMatch != "" && exists && etagMatchesWeakly(noneMatch, a.ETag):
			return errNoneMatch
		}
		return nil
	}
}

// uploaded answers an upload with the resulting calendar, read back from
// IMAP, as a GET of it would get it, and what the upload did in
// X-Fbpub-Upload.
func (h *Handler) uploaded(w http.ResponseWriter, r *http.Request, query feed.CalendarQuery, res upload.Result, file string) error {
	if err := h.opts.Cache.Check(r.Context(), query.Owner); err != nil {
		return err
	}
	a, err := h.opts.Cache.Calendar(r.Context(), query)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, no-store")
	w.Header().Set("X-Fbpub-Upload", fmt.Sprintf("added=%d replaced=%d deleted=%d unchanged=%d refused=%d",
		res.Added, res.Replaced, res.Deleted, res.Unchanged, res.Refused))
	r.Header.Del("If-None-Match")
	r.Header.Del("If-Modified-Since")
	r.Header.Del("Range")
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	h.serve(w, get, "calendar", a, file)
	return nil
}

// writer returns who uploads. Writes are made as the requester, which
// needs their password: only HTTP Basic credentials count (a reverse
// proxy's user header is not enough), and only when they are the ones
// requester verified.
// errUploadCredentials asks an uploader who gave no password for one.
var errUploadCredentials = &httpError{code: http.StatusUnauthorized, msg: "an upload needs the uploader's user name and password (HTTP Basic): fbpub writes to IMAP as them"}

func (h *Handler) writer(_ http.ResponseWriter, r *http.Request) (acl.Requester, error) {
	user, _, ok := r.BasicAuth()
	if !ok {
		return acl.Requester{}, errUploadCredentials
	}
	who, err := h.requester(r)
	if err != nil {
		return acl.Requester{}, err
	}
	if who.typed != user {
		return acl.Requester{}, errUnauthorized
	}
	return who.requester(h.opts.Groups), nil
}

// published returns the owner of the folder segs as the folder list
// spells it, or feed.ErrNotFound unless owner's folder segs is one fbpub
// publishes. owner may be spelt otherwise (a URL's "Alice" for "alice");
// where the list holds the folder under more than one spelling of owner
// (a server that does not fold case), only the exact one counts.
func (h *Handler) published(ctx context.Context, owner string, segs []string) (string, error) {
	dir, err := h.opts.Cache.OwnerFolders(ctx, owner)
	if err != nil {
		return "", err
	}
	path := strings.Join(segs, "/")
	found, n := "", 0
	for _, f := range dir {
		if f.Path() != path || !strings.EqualFold(f.Owner, owner) {
			continue
		}
		if f.Owner == owner {
			return owner, nil
		}
		if f.Owner != found {
			found, n = f.Owner, n+1
		}
	}
	if n != 1 {
		return "", feed.ErrNotFound
	}
	return found, nil
}

// etagMatchesWeakly applies If-None-Match: "*", or one of a list of
// entity tags, compared weakly (a W/ prefix on either side does not
// count); the gzip variant of a tag names the same content.
func etagMatchesWeakly(header, current string) bool {
	current = strings.TrimPrefix(current, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == current || t == strings.TrimSuffix(current, `"`)+`-gzip"` {
			return true
		}
	}
	return false
}

// etagMatches applies If-Match: "*", or one of a list of entity tags,
// compared strongly; the gzip variant of a tag names the same content.
func etagMatches(header, current string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if strings.HasPrefix(t, "W/") {
			continue // weak tags never match If-Match (RFC 9110 §13.1.1)
		}
		if t == current || t == strings.TrimSuffix(current, `"`)+`-gzip"` {
			return true
		}
	}
	return false
}
