// Package upload writes an uploaded calendar into an IMAP folder: the
// ical2imap direction of the 2003 design, for clients that only publish
// iCalendar over HTTP (Apple Calendar's and Outlook's "publish to a web
// server", a script, curl -T).
//
// An upload is the whole calendar. Its events are split by UID, one
// message per object (a master and its overrides), and reconciled with
// the folder, which stays the authority. The folder may hold a UID in
// several messages, its copies: a client or a second fbpub replaces by
// appending first and removing after, and an override may sit in a
// message of its own.
//
//   - a UID new to the folder is appended — unless the deleted-events log
//     holds a copy at least as new: a stale client cannot undo someone's
//     deletion. An uploader who may not read the log cannot be checked
//     so, and may not add UIDs at all;
//   - a UID already there is left alone when its copies together hold
//     the upload's content (one copy, or a series and its overrides in
//     messages of their own); else the upload's copy is refused, whatever
//     copies there are, when it is older than the newest of them
//     (SEQUENCE, then LAST-MODIFIED or DTSTAMP); else the copy that holds
//     the upload's content stays, or the upload's is appended, and then
//     the other copies are removed;
//   - a UID the upload lacks is removed.
//
// So a copy is only ever removed by an upload at least as new as it is
// (or one that deletes its UID), and every copy removed whose content
// does not stay in the folder is first appended to the log folder, with
// who removed it, when and why: an upload never destroys an event.
//
// Every write is made as the uploader's own IMAP session, so the server's
// ACL decides; the rights the plan needs are checked before the first
// write, so a refused upload changes nothing. Each step is idempotent: a
// retry after a broken connection finds what the last attempt left (a
// duplicate from an append whose removal never came, a log copy already
// made) and converges to the same folder.
//
// Uploads to one folder are serialised: through one Service by a lock of
// this process, and across fbpub replicas that share a Redis by a lease in
// it (Options.Shared). The holder reads the folder under the lock, checks
// just before its first write that the folder and the log are still in
// the state it read (IMAP's UIDNEXT, message count and HIGHESTMODSEQ),
// reading and planning again if not, and stops writing if the lease is
// lost meanwhile (Redis unreachable for the lease's whole TTL, so that
// another replica may hold it): so two replicas never interleave a
// reconcile. Uploaders that do not share a lock (replicas while Redis is
// unreachable, another program) only ever remove messages they read, and
// only copies not newer than what they write: racing, they may leave
// duplicates, which the next upload reconciles, but they lose nothing.
package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
)

// Errors an upload may end with, besides connection failures.
var (
	// ErrBadInput: the upload is not a calendar fbpub can read; nothing
	// was changed.
	ErrBadInput = errors.New("upload: not a readable calendar")
	// ErrTooMany: more events than Options.MaxEvents, or more than fbpub
	// reads in one calendar; nothing was changed.
	ErrTooMany = errors.New("upload: too many events")
	// ErrNotFound: the folder does not exist or the uploader may not see
	// it.
	ErrNotFound = errors.New("upload: no such folder")
	// ErrAuth: the uploader's credentials were refused.
	ErrAuth = errors.New("upload: wrong user name or password")
	// ErrCharset: the upload names a charset fbpub cannot convert to
	// UTF-8; nothing was changed.
	ErrCharset = errors.New("upload: unknown charset")
	// ErrUnavailable: the conversation with the IMAP server failed (it
	// could not be reached, the connection broke, it stopped answering);
	// a retry may succeed and converges (see the package comment).
	ErrUnavailable = errors.New("upload: IMAP unavailable")
)

// DuplicateError is an upload that holds one event twice: two masters
// with one UID, or two overrides with one RECURRENCE-ID. Only one of them
// could be stored, so the upload is refused and nothing is changed. It
// wraps ErrBadInput.
type DuplicateError struct {
	UID string
	// RecurrenceID is the overrides' RECURRENCE-ID as written, or "" for
	// two masters.
	RecurrenceID string
	// NoUID: the two events have no UID and are identical but for
	// DTSTAMP and alarms; UID is the one fbpub derived from their content.
	NoUID bool
}

// Error is meant for the uploader: it quotes their own UID, cut short.
func (e *DuplicateError) Error() string {
	clip := func(s string) string {
		if len(s) > 200 {
			return strings.ToValidUTF8(s[:200], "") + "…"
		}
		return s
	}
	switch {
	case e.NoUID:
		return "the calendar holds two events without a UID that differ at most in DTSTAMP and alarms; remove one"
	case e.RecurrenceID != "":
		return fmt.Sprintf("the calendar holds two overrides of UID %q with RECURRENCE-ID %q; only one can be stored", clip(e.UID), clip(e.RecurrenceID))
	}
	return fmt.Sprintf("the calendar holds two events with UID %q (two masters); only one can be stored", clip(e.UID))
}

func (e *DuplicateError) Unwrap() error { return ErrBadInput }

// EncodingError is an upload whose text is not valid in its charset:
// UTF-8 when it names none, as RFC 5545 has it. fbpub stores calendars as
// UTF-8 and will not guess, so the upload is refused and nothing is
// changed. It wraps ErrBadInput.
type EncodingError struct {
	// Charset is the charset the upload named, or "" for none.
	Charset string
	// Line is the line (from 1) of the first octet that is not valid.
	Line int
}

// Error is meant for the uploader.
func (e *EncodingError) Error() string {
	if e.Charset == "" || isUTF8(e.Charset) {
		return fmt.Sprintf("line %d of the calendar is not valid UTF-8: send it as UTF-8, or name its charset", e.Line)
	}
	cs := e.Charset
	if len(cs) > 40 {
		cs = strings.ToValidUTF8(cs[:40], "") + "…"
	}
	return fmt.Sprintf("line %d of the calendar is not valid %s, the charset it names", e.Line, cs)
}

func (e *EncodingError) Unwrap() error { return ErrBadInput }

// DeniedError says which right the uploader lacks on which folder.
type DeniedError struct {
	Right  acl.Rights
	Folder string // as the URL names it ("Calendar", "Deleted Events")
	Why    string // what the right was needed for
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("you need the %q right on %s to %s", e.Right.String(), e.Folder, e.Why)
}

// Options configure a Service.
type Options struct {
	// Dial logs in as the uploader.
	Dial func(ctx context.Context, user, password string) (*imapstore.Session, error)
	// LogFolder is the deleted-events log, a folder of the owner's
	// (default "Deleted Events"); created when missing.
	LogFolder string
	// MaxEvents bounds the events (VEVENTs) of one upload (default 5000).
	MaxEvents int
	Logger    *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Shared holds the upload locks: with Redis, leases that serialise
	// the uploads to one folder through every replica sharing it; nil
	// means locks of this process (a Local shared.Client).
	Shared *shared.Client
	// LeaseTTL is how long a shared lease outlives a replica that died
	// holding it (default 15 s); the holder renews it every third of
	// that while it works.
	LeaseTTL time.Duration
}

// DefaultLogFolder is where deleted events go when nothing else is set.
const DefaultLogFolder = "Deleted Events"

// Service performs uploads. It is safe for concurrent use; uploads to one
// folder through one Service, or through Services sharing a Redis
// (Options.Shared), are serialized.
type Service struct {
	opts Options
	log  *slog.Logger
}

// maxPlans bounds how often an upload reads and plans again because the
// folder changed between its reading and its first write.
const maxPlans = 3

// replanPause waits before the upload's plan number n+1: a random time
// up to n × replanStep, or until ctx ends.
func replanPause(ctx context.Context, n int) error {
	t := time.NewTimer(rand.N(time.Duration(n) * replanStep))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// replanStep scales replanPause: a plan and its fencing take a few
// round trips of IMAP, some milliseconds on a LAN.
const replanStep = 25 * time.Millisecond

// errLost is the upload's answer when its lease was lost while it wrote:
// another replica may hold the folder now, so it stopped. What it wrote
// is consistent (see the package comment); a retry converges.
var errLost = fmt.Errorf("%w: the folder's upload lock was lost (Redis unreachable for its whole lease); stopped writing", ErrUnavailable)

// New makes a Service.
func New(opts Options) *Service {
	if opts.LogFolder == "" {
		opts.LogFolder = DefaultLogFolder
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 5000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 15 * time.Second
	}
	if opts.Shared == nil {
		opts.Shared, _ = shared.New(shared.Options{}) // Local: no error, nothing to close
	}
	return &Service{opts: opts, log: opts.Logger.With("component", "upload")}
}

// Request is one upload.
type Request struct {
	// User and Password are the uploader's IMAP credentials.
	User, Password string
	// Owner and Folder name the folder as the URL does.
	Owner  string
	Folder []string
	// Body is the whole calendar.
	Body []byte
	// Charset is the charset Body is in, as its media type's charset
	// parameter names it; "" is UTF-8. Body is converted to UTF-8 before
	// anything else (an unknown charset is ErrCharset, text not valid in
	// its charset an *EncodingError).
	Charset string
	// Check, when set, is called once the folder is held (no other upload
	// through this Service, or a replica sharing its Redis, can change
	// it) and read, before anything is written; it is called again when
	// the folder changed meanwhile and is read again. An error from it
	// aborts the upload with nothing written, and Put returns it as it
	// is. It is how If-Match is honoured.
	Check func(ctx context.Context) error
}

// Result says what an upload did.
type Result struct {
	Added, Replaced, Deleted, Unchanged int
	// Refused counts events of the upload that were not written: older
	// than the folder's copy, or deleted before (in the log) and not
	// newer than the deleted copy.
	Refused int
}

// Put performs one upload: it parses the calendar, logs in as the
// uploader, reads the folder and the deleted-events log while it holds
// the folder, plans, checks that the uploader may do all the plan does,
// and writes.
func (s *Service) Put(ctx context.Context, r Request) (Result, error) {
	if slices.Equal(r.Folder, strings.Split(s.opts.LogFolder, "/")) {
		return Result{}, fmt.Errorf("%w: %s is the deleted-events log", ErrBadInput, s.opts.LogFolder)
	}
	body, err := utf8Text(r.Body, r.Charset)
	if err != nil {
		return Result{}, err
	}
	incoming, err := s.split(body)
	if err != nil {
		return Result{}, err
	}
	sess, err := s.login(ctx, r)
	if err != nil {
		return Result{}, err
	}
	defer sess.Close()
	folder, ok := sess.FolderName(r.Owner, r.Folder)
	logFolder, _ := sess.FolderName(r.Owner, strings.Split(s.opts.LogFolder, "/"))
	if !ok {
		return Result{}, ErrNotFound
	}
	lease, err := s.lock(ctx, r.Owner, folder)
	if err != nil {
		return Result{}, err
	}
	defer lease.Unlock(context.WithoutCancel(ctx))

	for n := 1; ; n++ {
		t, lg, p, err := s.prepare(ctx, sess, folder, logFolder, incoming, r)
		if err != nil {
			return Result{}, err
		}
		if len(p.toLog) == 0 && len(p.appends) == 0 && len(p.remove) == 0 {
			return p.result, nil // nothing to write
		}
		// Fencing: the folder must still be as read. It is, unless a
		// writer that holds no lock wrote meanwhile (a replica whose
		// lease expired, one cut off from Redis, a mail client).
		same, err := s.unchanged(ctx, sess, t, lg)
		if err != nil {
			return Result{}, unavailable(err)
		}
		if !same {
			if n == maxPlans {
				return Result{}, fmt.Errorf("%w: the folder changed %d times while the upload was being planned", ErrUnavailable, n)
			}
			// Another writer that holds no lock (another replica's
			// upload of the same folder, say) read and planned at the
			// same moment: planning again at once, both would find
			// the other's write again, round after round. A random
			// pause, longer each time, lets one of them go first.
			if err := replanPause(ctx, n); err != nil {
				return Result{}, err
			}
			// The plan may have changed the objects (alarms kept):
			// plan again from the upload as sent.
			if incoming, err = s.split(body); err != nil {
				return Result{}, err
			}
			continue
		}
		if err := s.apply(ctx, sess, p, t, lg, r.User, stillHeld(lease)); err != nil {
			return Result{}, unavailable(err)
		}
		return p.result, nil
	}
}

// prepare reads the folder and the log while the upload holds the folder,
// runs the upload's Check, plans, and checks that the uploader may do all
// the plan does.
func (s *Service) prepare(ctx context.Context, sess *imapstore.Session, folder, logFolder string, incoming []object, r Request) (*target, deletedLog, plan, error) {
	t, err := s.readTarget(ctx, sess, folder, r)
	if err != nil {
		return nil, deletedLog{}, plan{}, err
	}
	if t.kolab {
		asKolab(incoming)
	}
	if r.Check != nil {
		if err := r.Check(ctx); err != nil {
			return nil, deletedLog{}, plan{}, err
		}
	}
	lg, err := s.readLog(ctx, sess, logFolder, r.Owner == sess.User())
	if err != nil {
		return nil, deletedLog{}, plan{}, err
	}
	p := s.plan(incoming, t.current, lg.held)
	if err := s.permitted(p, t.rights, lg, r); err != nil {
		return nil, deletedLog{}, plan{}, err
	}
	return t, lg, p, nil
}

// unchanged reports whether the folder, and the log when the upload read
// it, are in the states the upload read them in.
func (s *Service) unchanged(ctx context.Context, sess *imapstore.Session, t *target, lg deletedLog) (bool, error) {
	names := []string{t.name}
	if lg.exists && lg.readable() {
		names = append(names, lg.name)
	}
	states, err := sess.States(ctx, names)
	if err != nil {
		return false, err
	}
	if st, ok := states[t.name]; !ok || st != t.state {
		return false, nil
	}
	if len(names) == 2 {
		if st, ok := states[lg.name]; !ok || st != lg.state {
			return false, nil
		}
	}
	return true, nil
}

// login logs in as the uploader.
func (s *Service) login(ctx context.Context, r Request) (*imapstore.Session, error) {
	sess, err := s.opts.Dial(ctx, r.User, r.Password)
	if errors.Is(err, imapstore.ErrAuth) {
		return nil, ErrAuth
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return sess, nil
}

// lock holds owner's folder (its IMAP name, owner as the folder list
// spells it) against the other uploads through s and, with Redis, through
// every replica sharing it, until the lease is unlocked. It waits as long
// as ctx lets it.
func (s *Service) lock(ctx context.Context, owner, folder string) (*shared.Lease, error) {
	lease, err := s.opts.Shared.Lock(ctx, lockKey(owner, folder), s.opts.LeaseTTL)
	if err != nil {
		return nil, fmt.Errorf("%w: waiting for the folder's other upload: %w", ErrUnavailable, err)
	}
	return lease, nil
}

// lockKey is the name of the lock of owner's folder.
func lockKey(owner, folder string) string { return "upload\x00" + owner + "\x00" + folder }

// stillHeld returns the check an upload makes before each write: errLost
// once the lease is lost.
func stillHeld(l *shared.Lease) func() error {
	return func() error {
		select {
		case <-l.Lost():
			return errLost
		default:
			return nil
		}
	}
}

// unavailable marks an error of the IMAP conversation as ErrUnavailable;
// the server's own refusals (a NO) and the errors above keep their
// meaning.
func unavailable(err error) error {
	var de *DeniedError
	switch {
	case errors.As(err, &de), errors.Is(err, ErrNotFound), errors.Is(err, ErrAuth), errors.Is(err, ErrUnavailable), imapstore.Refused(err):
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// rights returns the session's rights on folder; none when it does not
// exist or is hidden.
func (s *Service) rights(ctx context.Context, sess *imapstore.Session, folder string) (acl.Rights, error) {
	if !sess.Features().ACL {
		// No ACLs: whoever can log in may do what the server lets them.
		return acl.MustParseRights("lrswipkxte"), nil
	}
	raw, err := sess.MyRights(ctx, folder)
	if errors.Is(err, imapstore.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	r, err := acl.ParseRights(raw)
	if err != nil {
		return 0, fmt.Errorf("upload: MYRIGHTS %q: %w", raw, err)
	}
	return r, nil
}
