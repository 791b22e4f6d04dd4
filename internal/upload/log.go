package upload

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// The deleted-events log: every copy an upload removes whose content does
// not stay in the folder is first appended to a folder of the owner's
// (Options.LogFolder), with who removed it, when and why.

// deletedLog is the deleted-events log as the uploader sees it.
type deletedLog struct {
	name   string     // its IMAP name
	rights acl.Rights // the uploader's rights on it
	// own: the log is the uploader's own (they are the owner), so a log
	// they have no rights on is one that does not exist. Another user's
	// log they have no rights on may exist, hidden from them.
	own bool
	// exists: the uploader knows it exists (they have rights on it).
	exists bool
	// held is what the log holds, by UID; nil when the uploader may not
	// read it or it does not exist.
	held map[string]*stored
	// state is the log's state when it was read (when held is not nil).
	state imapstore.State
}

// readable reports whether the uploader may read the log. A delegate who
// may only add to it (i without r) adds every copy, without looking for
// one made before; they may not add events (see Service.permitted).
func (lg deletedLog) readable() bool { return lg.rights.Has(acl.Read) }

// readLog reads the log folder name as the uploader sees it; own says
// whether the uploader is its owner.
func (s *Service) readLog(ctx context.Context, sess *imapstore.Session, name string, own bool) (deletedLog, error) {
	lg := deletedLog{name: name, own: own}
	var err error
	if lg.rights, err = s.rights(ctx, sess, name); err != nil {
		return lg, unavailable(err)
	}
	// MYRIGHTS does not tell whether a folder exists (Dovecot answers an
	// owner's rights for a folder not yet created): reading it does.
	if lg.readable() {
		lg.held, lg.state, err = s.read(ctx, sess, name)
		switch {
		case err == nil:
			lg.exists = true
		case !errors.Is(err, ErrNotFound):
			return lg, unavailable(err)
		}
	} else if lg.rights != 0 {
		lg.exists = true // there, but unreadable to the uploader
	}
	return lg, nil
}

// writeLog appends the copies toLog to the log, as user, creating it when
// it does not exist (only the owner's own uploads get here without it:
// see Service.permitted). Before each write it calls hold, and stops with
// its error.
func (s *Service) writeLog(ctx context.Context, sess *imapstore.Session, lg deletedLog, toLog []removal, user string, hold func() error) error {
	if err := hold(); err != nil {
		return err
	}
	if !lg.exists {
		if err := sess.CreateFolder(ctx, lg.name); err != nil {
			if !imapstore.Refused(err) {
				return err
			}
			return &DeniedError{Right: acl.CreateMailbox, Folder: s.opts.LogFolder, Why: "create the deleted-events log"}
		}
	}
	// A copy the log holds already (left by an interrupted earlier
	// attempt, or by a racing upload) is not made again.
	var already map[string]*stored
	if lg.readable() {
		var err error
		if already, _, err = s.read(ctx, sess, lg.name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	now := s.opts.Now().UTC().Format(time.RFC3339)
	for _, rm := range toLog {
		if d := already[rm.uid]; d != nil && slices.ContainsFunc(d.copies, func(c *held) bool { return c.hash == rm.hash }) {
			continue
		}
		msg := message(rm.obj, user, s.opts.Now(), "X-Fbpub-Deleted: "+now+"; by="+headerSafe(user)+"; reason="+rm.why, false)
		if err := hold(); err != nil {
			return err
		}
		if err := sess.AppendMessage(ctx, lg.name, msg); err != nil {
			return err
		}
	}
	return nil
}
