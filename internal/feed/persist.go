package feed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// Snapshots persist to Options.StateDir so that a restart is warm: on the
// first request for a folder, fbpub loads its last snapshot and checks it
// with the folder state it reads anyway; an unchanged folder costs no
// message body. A file is one folder: its state, and per message UID the
// parsed objects written back as iCalendar text. Files are replaced
// atomically; one that cannot be read is ignored (the folder is fetched).

const snapVersion = 2 // 2: VAVAILABILITY components are kept

type snapFile struct {
	Version  int             `json:"version"`
	Folder   string          `json:"folder"`
	State    imapstore.State `json:"state"`
	Digest   string          `json:"digest"`
	Fetched  time.Time       `json:"fetched"`
	Messages []snapMessage   `json:"messages"`
}

type snapMessage struct {
	UID     uint32 `json:"uid"`
	Deleted bool   `json:"deleted,omitempty"`
	// ICS holds the message's objects; empty when it had none (a message
	// that could not be parsed stays known, so it is not fetched again).
	ICS string `json:"ics,omitempty"`
}

func (c *Cache) snapPath(folder string) string {
	sum := sha256.Sum256([]byte(folder))
	return filepath.Join(c.opts.StateDir, hex.EncodeToString(sum[:16])+".json")
}

// save writes s to the state directory. Errors are logged, not returned:
// persistence only makes restarts cheaper.
func (c *Cache) save(s *Snapshot) {
	if c.opts.StateDir == "" {
		return
	}
	b, err := EncodeSnapshot(s)
	if err == nil {
		err = writeAtomic(c.snapPath(s.Folder.Name), b)
	}
	if err != nil {
		c.log.Warn("could not persist a snapshot", "folder", s.Folder.Name, "err", err)
	}
}

// load reads the persisted snapshot of folder f, or returns nil.
func (c *Cache) load(f Folder) *Snapshot {
	if c.opts.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(c.snapPath(f.Name))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("could not read a persisted snapshot", "folder", f.Name, "err", err)
		}
		return nil
	}
	s, err := DecodeSnapshot(f, b)
	if err != nil {
		c.log.Warn("ignoring an unusable persisted snapshot", "folder", f.Name)
		return nil
	}
	return s
}

// EncodeSnapshot returns s in the persisted format (JSON, snapVersion):
// the state directory's files, also what replicas share through Redis
// (replicas.go).
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	f := snapFile{Version: snapVersion, Folder: s.Folder.Name, State: s.State, Digest: s.Digest, Fetched: s.Fetched}
	for i, uid := range s.uids {
		m := s.msgs[i]
		sm := snapMessage{UID: uid, Deleted: m.deleted}
		if len(m.objects) > 0 {
			text, err := objectsText(m.objects)
			if err != nil {
				return nil, fmt.Errorf("feed: encode message %d: %w", uid, err)
			}
			sm.ICS = text
		}
		f.Messages = append(f.Messages, sm)
	}
	return json.Marshal(f)
}

// errSnapshot is what DecodeSnapshot returns for data it cannot use.
var errSnapshot = errors.New("feed: unusable persisted snapshot")

// DecodeSnapshot reads a snapshot of folder f that EncodeSnapshot wrote.
// Data of another version, of another folder, or that does not decode is
// an error wrapping errSnapshot.
func DecodeSnapshot(f Folder, b []byte) (*Snapshot, error) {
	var sf snapFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("%w: %w", errSnapshot, err)
	}
	if sf.Version != snapVersion || sf.Folder != f.Name {
		return nil, fmt.Errorf("%w: version %d of folder %q", errSnapshot, sf.Version, sf.Folder)
	}
	s := &Snapshot{Folder: f, State: sf.State, Digest: sf.Digest, Fetched: sf.Fetched}
	for _, m := range sf.Messages {
		var msg message
		if m.ICS != "" {
			cals, err := calendar.Decode([]byte(m.ICS))
			if err != nil {
				return nil, fmt.Errorf("%w: message %d: %w", errSnapshot, m.UID, err)
			}
			msg = newMessage(calendar.Objects(cals))
		}
		msg.deleted = m.Deleted
		if n := len(s.uids); n > 0 && s.uids[n-1] >= m.UID {
			return nil, fmt.Errorf("%w: UID %d out of order", errSnapshot, m.UID)
		}
		s.uids = append(s.uids, m.UID)
		s.msgs = append(s.msgs, msg)
		if !msg.deleted {
			s.Objects = append(s.Objects, msg.objects...)
		}
	}
	s.setKey()
	return s, nil
}

// objectsText writes a message's objects as one VCALENDAR.
func objectsText(objs []*calendar.Object) (string, error) {
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//fbpub//snapshot//EN")
	seen := map[*ical.Component]bool{}
	for _, o := range objs {
		for _, tz := range o.Timezones {
			if !seen[tz] {
				seen[tz] = true
				cal.Children = append(cal.Children, tz)
			}
		}
	}
	for _, o := range objs {
		cal.Children = append(cal.Children, o.Events()...)
		cal.Children = append(cal.Children, o.FreeBusy...)
		cal.Children = append(cal.Children, o.Availability...)
	}
	var b bytes.Buffer
	if err := calendar.NewEncoder(&b).Encode(cal); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snap-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("feed: persist %s: %w", path, err)
	}
	return nil
}
