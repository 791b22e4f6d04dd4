package feed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// Snapshots persist to Options.StateDir so that a restart is warm: on the
// first request for a folder, fbpub loads its last snapshot and checks it
// with the folder state it reads anyway; an unchanged folder costs no
// message body. A file is one folder: its state, and per message UID the
// text the snapshot keeps of it (message.text), one VCALENDAR. Files are
// replaced atomically; one that cannot be read is ignored (the folder is
// fetched). EncodeSnapshot and DecodeSnapshot are the format, apart from
// the files.

// snapVersion 3: a message's text is what the snapshot keeps (alarms
// removed); 2: VAVAILABILITY components are kept.
const snapVersion = 3

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

// errSnapshot is what DecodeSnapshot returns for data it cannot use.
var errSnapshot = errors.New("feed: unusable persisted snapshot")

// EncodeSnapshot returns s in the persisted format (JSON, snapVersion).
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	f := snapFile{Version: snapVersion, Folder: s.Folder.Name, State: s.State, Digest: s.Digest, Fetched: s.Fetched,
		Messages: make([]snapMessage, len(s.uids))}
	for i, uid := range s.uids {
		m := &s.msgs[i]
		f.Messages[i] = snapMessage{UID: uid, Deleted: m.deleted, ICS: string(m.text())}
	}
	return json.Marshal(f)
}

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
	s := &Snapshot{Folder: f, State: sf.State, Digest: sf.Digest, Fetched: sf.Fetched,
		uids: make([]uint32, 0, len(sf.Messages)), msgs: make([]message, 0, len(sf.Messages))}
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
	}
	s.setKey()
	return s, nil
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
