package upload

import (
	"context"
	"errors"
	"strings"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// held is one copy of a UID in a folder: what one message holds of it (a
// master and its overrides, or only some of them).
type held struct {
	msg     uint32 // the message's UID
	obj     *calendar.Object
	hash    string
	version version
}

// stored is one UID as a folder holds it: its copies, in message order.
type stored struct {
	uid    string
	copies []*held
	kolab  bool // some copy is stored in Kolab format 3
}

// newest returns the version of the newest copy.
func (st *stored) newest() version {
	v := st.copies[0].version
	for _, c := range st.copies[1:] {
		if c.version.compare(v) > 0 {
			v = c.version
		}
	}
	return v
}

// wholeHash returns the content hash of all the copies taken together
// when they are the parts of one event (at most one master, no
// RECURRENCE-ID twice: a series with overrides in messages of their own),
// else "".
func (st *stored) wholeHash() string {
	if len(st.copies) == 1 {
		return st.copies[0].hash
	}
	whole := &calendar.Object{UID: st.uid}
	rids := map[string]bool{}
	for _, c := range st.copies {
		if c.obj.Master != nil {
			if whole.Master != nil {
				return ""
			}
			whole.Master = c.obj.Master
		}
		for _, ov := range c.obj.Overrides {
			k := ridKey(ov)
			if rids[k] {
				return ""
			}
			rids[k] = true
			whole.Overrides = append(whole.Overrides, ov)
		}
		whole.Timezones = append(whole.Timezones, c.obj.Timezones...)
	}
	return contentHash(whole)
}

// target is the folder an upload writes to, as read while the upload
// holds it.
type target struct {
	name    string             // its IMAP name
	rights  acl.Rights         // the uploader's rights on it
	current map[string]*stored // what it holds, by UID
	state   imapstore.State    // its state when current was read
	kolab   bool               // uploads to it are written in Kolab format 3
}

// readTarget reads the folder an upload writes to: the uploader's rights
// on it, what it holds and the format to write in. A folder the uploader
// may not see and read is ErrNotFound; one they may not add to is a
// *DeniedError.
func (s *Service) readTarget(ctx context.Context, sess *imapstore.Session, folder string, r Request) (*target, error) {
	rights, err := s.rights(ctx, sess, folder)
	if err != nil {
		return nil, unavailable(err)
	}
	if !rights.Has(acl.Lookup | acl.Read) {
		return nil, ErrNotFound
	}
	// A PUT is a write whatever it turns out to change: without the right
	// to add, it is refused even when the folder already holds the upload
	// (as WebDAV servers refuse a PUT without write rights), so that a
	// client learns at once that it cannot publish there.
	if !rights.Has(acl.Insert) {
		return nil, &DeniedError{Right: acl.Insert, Folder: strings.Join(r.Folder, "/"), Why: "publish events to it"}
	}
	current, state, err := s.read(ctx, sess, folder)
	if err != nil {
		return nil, unavailable(err)
	}
	kolab, err := kolabFolder(ctx, sess, folder, current)
	if err != nil {
		return nil, unavailable(err)
	}
	return &target{name: folder, rights: rights, current: current, state: state, kolab: kolab}, nil
}

// kolabFolder reports whether to write in a folder in Kolab format 3: it
// is a Kolab folder, by what it holds already or else by its annotation.
// Other folders get text/calendar.
func kolabFolder(ctx context.Context, sess *imapstore.Session, folder string, current map[string]*stored) (bool, error) {
	for _, st := range current {
		if st.kolab {
			return true, nil
		}
	}
	typ, err := sess.KolabFolderType(ctx, folder)
	if err != nil {
		return false, err
	}
	return typ == "event" || strings.HasPrefix(typ, "event."), nil
}

// read returns the objects of a folder by UID, and the folder's state
// when it was selected to read them. Messages that cannot be read are
// left alone: an upload never touches what it does not understand.
func (s *Service) read(ctx context.Context, sess *imapstore.Session, folder string) (map[string]*stored, imapstore.State, error) {
	l, err := sess.Fetch(ctx, folder, imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: 64 << 10})
	if errors.Is(err, imapstore.ErrNotFound) {
		return nil, imapstore.State{}, ErrNotFound
	}
	if err != nil {
		return nil, imapstore.State{}, err
	}
	out := map[string]*stored{}
	for _, m := range l.Messages {
		if l.Deleted[m.UID] {
			continue
		}
		objs, kolab := messageObjects(m)
		for _, o := range objs {
			if len(o.Events()) == 0 {
				continue
			}
			st := out[o.UID]
			if st == nil {
				st = &stored{uid: o.UID}
				out[o.UID] = st
			}
			st.copies = append(st.copies, &held{msg: m.UID, obj: o, hash: contentHash(o), version: versionOf(o)})
			st.kolab = st.kolab || kolab
		}
	}
	return out, l.State, nil
}

// messageObjects returns the calendar objects of a message, and whether
// it is a Kolab format 3 object (an xCal part).
func messageObjects(m imapstore.Message) ([]*calendar.Object, bool) {
	var parts []calendar.Part
	if m.Raw != nil {
		parts, _ = calendar.MessageParts(m.Raw)
	}
	for _, p := range m.Parts {
		if !p.TooLarge {
			parts = append(parts, calendar.Part{MediaType: p.MediaType, Params: p.Params, Body: calendar.DecodeTransfer(p.Encoding, p.Body)})
		}
	}
	var out []*calendar.Object
	kolab := false
	for _, p := range parts {
		if objs, err := calendar.PartObjects(p); err == nil {
			out = append(out, objs...)
			kolab = kolab || p.MediaType == "application/calendar+xml"
		}
	}
	return out, kolab
}
