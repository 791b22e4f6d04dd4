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
//     deletion;
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
// made) and converges to the same folder. Two uploaders that do not share
// a lock (two fbpub replicas) only ever remove messages they read, and
// only copies not newer than what they write: racing, they may leave
// duplicates, which the next upload reconciles, but they lose nothing.
package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
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
	// NoUID: the two events have no UID and are identical; UID is the one
	// fbpub derived from their content.
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
		return "the calendar holds two identical events without a UID; remove one"
	case e.RecurrenceID != "":
		return fmt.Sprintf("the calendar holds two overrides of UID %q with RECURRENCE-ID %q; only one can be stored", clip(e.UID), clip(e.RecurrenceID))
	}
	return fmt.Sprintf("the calendar holds two events with UID %q (two masters); only one can be stored", clip(e.UID))
}

func (e *DuplicateError) Unwrap() error { return ErrBadInput }

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
}

// DefaultLogFolder is where deleted events go when nothing else is set.
const DefaultLogFolder = "Deleted Events"

// Service performs uploads. It is safe for concurrent use; uploads to one
// folder through one Service are serialized.
type Service struct {
	opts  Options
	log   *slog.Logger
	locks sync.Map // folder key → *sync.Mutex
}

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
	// Check, when set, is called once the folder is held (no other upload
	// through this Service can change it) and read, before anything is
	// written; an error from it aborts the upload with nothing written,
	// and Put returns it as it is. It is how If-Match is honoured.
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

// Put performs one upload.
func (s *Service) Put(ctx context.Context, r Request) (Result, error) {
	if slices.Equal(r.Folder, strings.Split(s.opts.LogFolder, "/")) {
		return Result{}, fmt.Errorf("%w: %s is the deleted-events log", ErrBadInput, s.opts.LogFolder)
	}
	incoming, err := s.split(r.Body)
	if err != nil {
		return Result{}, err
	}
	sess, err := s.opts.Dial(ctx, r.User, r.Password)
	if errors.Is(err, imapstore.ErrAuth) {
		return Result{}, ErrAuth
	}
	if err != nil {
		return Result{}, unavailable(err)
	}
	defer sess.Close()
	folder, ok := sess.FolderName(r.Owner, r.Folder)
	logFolder, _ := sess.FolderName(r.Owner, strings.Split(s.opts.LogFolder, "/"))
	if !ok {
		return Result{}, ErrNotFound
	}

	mu, _ := s.locks.LoadOrStore(r.Owner+"\x00"+folder, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	rights, err := s.rights(ctx, sess, folder)
	if err != nil {
		return Result{}, unavailable(err)
	}
	if !rights.Has(acl.Lookup | acl.Read) {
		return Result{}, ErrNotFound
	}
	// A PUT is a write whatever it turns out to change: without the right
	// to add, it is refused even when the folder already holds the upload
	// (as WebDAV servers refuse a PUT without write rights), so that a
	// client learns at once that it cannot publish there.
	if !rights.Has(acl.Insert) {
		return Result{}, &DeniedError{Right: acl.Insert, Folder: strings.Join(r.Folder, "/"), Why: "publish events to it"}
	}
	current, err := s.read(ctx, sess, folder)
	if err != nil {
		return Result{}, unavailable(err)
	}
	// Write in the folder's format: Kolab format 3 in a Kolab folder (by
	// its annotation, or by what it holds already), else text/calendar.
	kolab := false
	for _, st := range current {
		kolab = kolab || st.kolab
	}
	if !kolab {
		typ, err := sess.KolabFolderType(ctx, folder)
		if err != nil {
			return Result{}, unavailable(err)
		}
		kolab = typ == "event" || strings.HasPrefix(typ, "event.")
	}
	if kolab {
		// Compare what the folder would hold: the upload as Kolab stores
		// it, so that an unchanged event is seen as unchanged.
		for i := range incoming {
			if o := viaXCal(incoming[i].obj); o != nil {
				incoming[i].hash = contentHash(o)
			}
		}
	}
	if r.Check != nil {
		if err := r.Check(ctx); err != nil {
			return Result{}, err
		}
	}
	var logged map[string]*stored
	logRights, err := s.rights(ctx, sess, logFolder)
	if err != nil {
		return Result{}, unavailable(err)
	}
	// MYRIGHTS does not tell whether a folder exists (Dovecot answers an
	// owner's rights for a folder not yet created): reading it does.
	logExists := false
	if logRights.Has(acl.Read) {
		logged, err = s.read(ctx, sess, logFolder)
		switch {
		case err == nil:
			logExists = true
		case !errors.Is(err, ErrNotFound):
			return Result{}, unavailable(err)
		}
	} else if logRights != 0 {
		logExists = true // there, but unreadable to the uploader
	}

	p := s.plan(incoming, current, logged)
	if err := s.permitted(p, rights, logRights, logExists, r); err != nil {
		return Result{}, err
	}
	if err := s.apply(ctx, sess, p, folder, logFolder, logExists, logRights.Has(acl.Read), r.User, kolab); err != nil {
		return Result{}, unavailable(err)
	}
	return p.result, nil
}

// unavailable marks an error of the IMAP conversation as ErrUnavailable;
// the server's own refusals (a NO) and the errors above keep their
// meaning.
func unavailable(err error) error {
	var de *DeniedError
	switch {
	case errors.As(err, &de), errors.Is(err, ErrNotFound), errors.Is(err, ErrAuth), imapstore.Refused(err):
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

// plan is what an upload will do.
type plan struct {
	appends []object  // to the folder
	remove  []uint32  // from the folder, after the log copies and appends
	toLog   []removal // copied to the log first
	result  Result
}

// removal is a copy the upload removes whose content does not stay in
// the folder.
type removal struct {
	*held
	uid string
	why string // "deleted" (the upload lacks its UID) or "replaced"
}

// plan reconciles the upload with the folder (see the package comment).
// It removes a copy only when the upload lacks its UID or holds a version
// at least as new, and logs every removed copy whose content does not
// stay.
func (s *Service) plan(incoming []object, current, logged map[string]*stored) plan {
	var p plan
	dropped := map[*held]string{} // copy → why it goes
	uploaded := map[string]bool{}
	for _, in := range incoming {
		uploaded[in.uid] = true
		cur := current[in.uid]
		switch {
		case cur == nil:
			if d := logged[in.uid]; d != nil && in.version.compare(d.newest()) <= 0 {
				p.result.Refused++ // deleted before, and not changed since
				continue
			}
			p.appends = append(p.appends, in)
			p.result.Added++
		case cur.wholeHash() == in.hash:
			p.result.Unchanged++ // what the folder holds, copy or parts
		case in.version.compare(cur.newest()) < 0:
			p.result.Refused++ // some copy is newer, whatever the others
		default:
			// No copy is newer than the upload: all go, but one that
			// already holds the upload's content, which stays.
			i := slices.IndexFunc(cur.copies, func(c *held) bool { return c.hash == in.hash })
			changed := false
			for j, c := range cur.copies {
				if j != i {
					dropped[c] = "replaced"
					changed = changed || c.hash != in.hash
				}
			}
			switch {
			case i >= 0 && !changed:
				p.result.Unchanged++ // duplicates of it go
				continue
			case i >= 0:
				p.result.Replaced++ // by the copy that holds it already
				continue
			}
			keepAlarms(in.obj, cur)
			p.appends = append(p.appends, in)
			p.result.Replaced++
		}
	}
	uids := slices.Sorted(maps.Keys(current))
	for _, uid := range uids {
		if !uploaded[uid] {
			for _, c := range current[uid].copies {
				dropped[c] = "deleted"
			}
			p.result.Deleted++
		}
	}
	// A message holding several objects is removed once.
	for c := range dropped {
		p.remove = append(p.remove, c.msg)
	}
	slices.Sort(p.remove)
	p.remove = slices.Compact(p.remove)

	// What the folder holds of each UID after the upload: the copies that
	// stay, and what is appended.
	stays := map[string][]string{}
	for _, in := range p.appends {
		stays[in.uid] = append(stays[in.uid], in.hash)
	}
	for _, uid := range uids {
		for _, c := range current[uid].copies {
			if _, gone := dropped[c]; gone {
				continue
			}
			stays[uid] = append(stays[uid], c.hash)
			// A copy that stays but shares a message with one that goes
			// (a whole calendar stored as one message) is first written
			// on its own.
			if _, shared := slices.BinarySearch(p.remove, c.msg); shared {
				p.appends = append(p.appends, object{uid: uid, version: c.version, hash: c.hash, obj: c.obj})
			}
		}
	}
	// Every removed copy whose content does not stay goes to the log,
	// once.
	for _, uid := range uids {
		for _, c := range current[uid].copies {
			why, gone := dropped[c]
			if !gone || slices.Contains(stays[uid], c.hash) {
				continue
			}
			stays[uid] = append(stays[uid], c.hash)
			p.toLog = append(p.toLog, removal{held: c, uid: uid, why: why})
		}
	}
	return p
}

// keepAlarms gives the events of an uploaded object that carry no alarm
// the alarms of the same occurrence in the newest stored copy that has
// it: the owner's reminders survive a round trip through a feed, which
// has none.
func keepAlarms(in *calendar.Object, old *stored) {
	copies := slices.Clone(old.copies)
	slices.SortStableFunc(copies, func(a, b *held) int { return b.version.compare(a.version) })
	for _, ev := range in.Events() {
		if slices.ContainsFunc(ev.Children, func(c *ical.Component) bool { return c.Name == ical.CompAlarm }) {
			continue
		}
	copies:
		for _, c := range copies {
			for _, o := range c.obj.Events() {
				if ridKey(o) != ridKey(ev) {
					continue
				}
				for _, ch := range o.Children {
					if ch.Name == ical.CompAlarm {
						ev.Children = append(ev.Children, ch)
					}
				}
				break copies
			}
		}
	}
}

// permitted checks, before any write, that the uploader holds every right
// the plan needs.
func (s *Service) permitted(p plan, rights, logRights acl.Rights, logExists bool, r Request) error {
	name := strings.Join(r.Folder, "/")
	if len(p.appends) > 0 && !rights.Has(acl.Insert) {
		return &DeniedError{Right: acl.Insert, Folder: name, Why: "add or change events"}
	}
	if len(p.remove) > 0 {
		if !rights.Has(acl.DeleteMessages) {
			return &DeniedError{Right: acl.DeleteMessages, Folder: name, Why: "change or delete events"}
		}
		if !rights.Has(acl.Expunge) {
			return &DeniedError{Right: acl.Expunge, Folder: name, Why: "change or delete events"}
		}
	}
	if len(p.toLog) > 0 && logExists && !logRights.Has(acl.Insert) {
		return &DeniedError{Right: acl.Insert, Folder: s.opts.LogFolder, Why: "keep deleted and replaced events in the log"}
	}
	return nil
}

// apply carries the plan out: log copies, then appends, then removals,
// so that an interruption anywhere loses nothing.
//
// logReadable says whether the uploader may read the log: a delegate who
// may only add to it (i without r) adds every copy, without looking for
// one made before.
func (s *Service) apply(ctx context.Context, sess *imapstore.Session, p plan, folder, logFolder string, logExists, logReadable bool, user string, kolab bool) error {
	if len(p.toLog) > 0 {
		if !logExists {
			if err := sess.CreateFolder(ctx, logFolder); err != nil {
				if !imapstore.Refused(err) {
					return err
				}
				return &DeniedError{Right: acl.CreateMailbox, Folder: s.opts.LogFolder, Why: "create the deleted-events log"}
			}
		}
		// A copy the log holds already (left by an interrupted earlier
		// attempt, or by a racing upload) is not made again.
		var already map[string]*stored
		if logReadable {
			var err error
			if already, err = s.read(ctx, sess, logFolder); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		now := s.opts.Now().UTC().Format(time.RFC3339)
		for _, rm := range p.toLog {
			if d := already[rm.uid]; d != nil && slices.ContainsFunc(d.copies, func(c *held) bool { return c.hash == rm.hash }) {
				continue
			}
			msg := message(rm.obj, user, s.opts.Now(), "X-Fbpub-Deleted: "+now+"; by="+headerSafe(user)+"; reason="+rm.why, false)
			if err := sess.AppendMessage(ctx, logFolder, msg); err != nil {
				return err
			}
		}
	}
	for _, in := range p.appends {
		if err := sess.AppendMessage(ctx, folder, message(in.obj, user, s.opts.Now(), "", kolab)); err != nil {
			return err
		}
	}
	return sess.RemoveMessages(ctx, folder, p.remove)
}

// message builds the message that holds one object, with the object's UID
// as subject as Kolab clients do: a text/calendar message, or with kolab a
// Kolab format 3 object (multipart/mixed, an explanation for mail clients,
// and the event as xCal in an application/calendar+xml attachment).
func message(o *calendar.Object, user string, now time.Time, extra string, kolab bool) []byte {
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//fbpub//upload//EN")
	cal.Children = append(cal.Children, calendar.UsedTimezones([]*calendar.Object{o})...)
	cal.Children = append(cal.Children, o.Events()...)
	body, _ := calendar.Marshal(cal)
	var b bytes.Buffer
	var id [12]byte
	_, _ = rand.Read(id[:])
	fmt.Fprintf(&b, "From: %s\r\n", headerSafe(user))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", headerSafe(o.UID)))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@fbpub>\r\n", hex.EncodeToString(id[:]))
	fmt.Fprintf(&b, "X-Fbpub-UID: %s\r\n", mime.QEncoding.Encode("utf-8", headerSafe(o.UID)))
	if extra != "" {
		b.WriteString(extra + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	if kolab {
		var x bytes.Buffer
		_ = calendar.EncodeXCal(&x, cal)
		boundary := "=_fbpub_" + hex.EncodeToString(id[:6])
		b.WriteString("X-Kolab-Type: application/x-vnd.kolab.event\r\n")
		b.WriteString("X-Kolab-Mime-Version: 3.0\r\n")
		b.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n")
		b.WriteString("--" + boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		b.WriteString("This is a Kolab Groupware object. To view it, use a client that understands the Kolab format.\r\n")
		b.WriteString("--" + boundary + "\r\nContent-Type: application/calendar+xml; charset=utf-8; name=kolab.xml\r\n")
		b.WriteString("Content-Disposition: attachment; filename=kolab.xml\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.Write(x.Bytes())
		b.WriteString("\r\n--" + boundary + "--\r\n")
		return b.Bytes()
	}
	b.WriteString("Content-Type: text/calendar; charset=utf-8; component=VEVENT\r\n")
	b.WriteString("Content-Transfer-Encoding: 8bit\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// headerSafe keeps a value on one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}
