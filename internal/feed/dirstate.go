package feed

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fbpub/fbpub/internal/imapstore"
)

// The directory persists to Options.StateDir too, beside the snapshots,
// so that a restart does not wait for the server's listing: the owners,
// the folders the proxy sees of each (with the details and the state last
// read of each, and when), when they were listed, and when the discovery
// pass whose listing it holds started. After a restart, a request for an
// owner the file names is checked with one STATUS of each folder the file
// lists (no LIST: on Dovecot the first LIST of a session sets up the
// shared namespace of every sharer, tens of seconds of CPU at 20,000
// mailboxes, where a STATUS costs milliseconds), however old that listing
// is, until this process's first discovery pass has completed, or at
// most relistAfter after the file was read; then the normal rules
// apply (see owners.go), the pass's listing replacing the file's.
//
// What a restart must not do is publish what it would not have published
// running: a folder that does not answer STATUS (removed, or no longer
// the proxy's to read) makes the check list the owner, as it does
// running; the details (rights, ACL, annotations) persist with the state
// they were read at and when, so they are read again when the state moved
// since (on Dovecot a SETACL moves it) and at least every Revalidate after
// they were read, whatever happened in between. A name the file does not
// list is looked up as before any pass (a user may have started sharing
// while fbpub was down); the file never answers 404.
//
// The file is written after every discovery pass, and when the folders
// of an owner changed at most every dirSaveEvery (Run), and when Run
// ends; replaced atomically. One of another version, or that does not
// decode, is ignored: a cold start.

const (
	// dirVersion is the version of the directory file's format.
	dirVersion = 1
	// dirFileName is the directory file's name in the state directory
	// (snapshots are named by a hash, see snapPath).
	dirFileName = "directory.json"
	// dirSaveEvery is how often at most changes of owners' folders
	// found by requests rewrite the file.
	dirSaveEvery = 30 * time.Second
	// maxRestoredStatus is how many folders a listing restored from the
	// file may have for a check to read their states one STATUS each
	// (maxStatusFolders once the first pass has listed them): on a
	// session that has not listed yet, a LIST costs Dovecot far more
	// than dozens of STATUS.
	maxRestoredStatus = 64
)

// dirFile is the directory file. Times are Unix seconds, rounded down:
// persisted details and listings are taken as a little older than they
// are, never younger.
type dirFile struct {
	Version int `json:"v"`
	// Pass is when the discovery pass whose listing the file holds
	// started; 0 when no pass has run.
	Pass int64 `json:"pass,omitempty"`
	// Saved is when the file was written.
	Saved  int64      `json:"saved"`
	Owners []dirOwner `json:"owners"`
}

type dirOwner struct {
	Name string `json:"n"`
	// Listed is when the owner's folders were listed; absent when at
	// Pass, 0 when never (a check another replica shared).
	Listed  *int64      `json:"l,omitempty"`
	Folders []dirFolder `json:"f"`
}

// dirFolder is an imapstore.Folder, with when its details were read
// (DetailsAt, 0 for a folder whose details were never read: the others
// of its fields but the name and state are then meaningless).
type dirFolder struct {
	Name      string                  `json:"n"`
	Delim     rune                    `json:"d,omitempty"`
	Namespace imapstore.NamespaceKind `json:"ns,omitempty"`
	// Owner is absent when it is the owner's name.
	Owner *string `json:"o,omitempty"`
	Path  string  `json:"p,omitempty"`
	// State is UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT, MESSAGES; absent
	// when the listing had no state.
	State       *[4]uint64        `json:"s,omitempty"`
	DetailsAt   int64             `json:"da,omitempty"`
	Rights      string            `json:"r,omitempty"`
	RightsKnown bool              `json:"rk,omitempty"`
	ACL         map[string]string `json:"a,omitempty"`
	ACLKnown    bool              `json:"ak,omitempty"`
	Incidences  string            `json:"if,omitempty"`
	Type        string            `json:"t,omitempty"`
}

// errDirFile is what decodeDirectory returns for a file it cannot use.
var errDirFile = errors.New("feed: unusable persisted directory")

// encodeDirectory returns the file of the owners' entries es, the last
// discovery pass having started at pass (zero: none).
func encodeDirectory(es []*ownerEntry, pass, saved time.Time) ([]byte, error) {
	f := dirFile{Version: dirVersion, Pass: unixOrZero(pass), Saved: saved.Unix(), Owners: make([]dirOwner, 0, len(es))}
	for _, o := range es {
		do := dirOwner{Name: o.name, Folders: make([]dirFolder, 0, len(o.listed))}
		if l := unixOrZero(o.listedAt); l != f.Pass {
			do.Listed = &l
		}
		for _, name := range slices.Sorted(maps.Keys(o.listed)) {
			lf := o.listed[name]
			df := dirFolder{Name: lf.Name, Delim: lf.Delim, Namespace: lf.Namespace, Path: lf.Path}
			if lf.Owner != o.name {
				df.Owner = &lf.Owner
			}
			if lf.HasState {
				s := lf.State
				df.State = &[4]uint64{uint64(s.UIDValidity), s.HighestModSeq, uint64(s.UIDNext), uint64(s.Messages)}
			}
			if at := o.detailsAt[name]; !at.IsZero() {
				df.DetailsAt = at.Unix()
				df.Rights, df.RightsKnown, df.ACL, df.ACLKnown = lf.Rights, lf.RightsKnown, lf.ACL, lf.ACLKnown
				df.Incidences, df.Type = lf.IncidencesFor, lf.Type
			}
			do.Folders = append(do.Folders, df)
		}
		f.Owners = append(f.Owners, do)
	}
	return json.Marshal(f)
}

// decodeDirectory reads a file encodeDirectory wrote into entries, by
// owner key, as of now: none of them checked by this process, each with
// its listing and, where read, the details and the state they were read
// at. A time after now (the clock went back) is taken as never: details
// read "in the future" are read again. The file's pass time is returned.
// A file of another version, that does not decode, or that lists a
// folder of one owner under another is an error wrapping errDirFile.
func decodeDirectory(b []byte, now time.Time) (map[string]*ownerEntry, time.Time, error) {
	var f dirFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", errDirFile, err)
	}
	if f.Version != dirVersion {
		return nil, time.Time{}, fmt.Errorf("%w: version %d", errDirFile, f.Version)
	}
	past := func(s int64) time.Time {
		if s <= 0 || s > now.Unix() {
			return time.Time{}
		}
		return time.Unix(s, 0)
	}
	pass := past(f.Pass)
	out := make(map[string]*ownerEntry, len(f.Owners))
	for _, do := range f.Owners {
		key := ownerKey(do.Name)
		if len(do.Folders) == 0 || out[key] != nil {
			return nil, time.Time{}, fmt.Errorf("%w: owner %q", errDirFile, do.Name)
		}
		o := &ownerEntry{name: do.Name, listedAt: pass, listed: make(map[string]imapstore.Folder, len(do.Folders)),
			detailsAt: make(map[string]time.Time, len(do.Folders))}
		if do.Listed != nil {
			o.listedAt = past(*do.Listed)
		}
		for _, df := range do.Folders {
			if df.Name == "" {
				return nil, time.Time{}, fmt.Errorf("%w: a folder of %q without a name", errDirFile, do.Name)
			}
			lf := imapstore.Folder{Name: df.Name, Delim: df.Delim, Namespace: df.Namespace, Owner: do.Name, Path: df.Path}
			if df.Owner != nil {
				lf.Owner = *df.Owner
			}
			if ownerKey(lf.Owner) != key {
				// Never publish one owner's folder under another's name.
				return nil, time.Time{}, fmt.Errorf("%w: folder %q of %q under %q", errDirFile, df.Name, lf.Owner, do.Name)
			}
			if s := df.State; s != nil {
				lf.State = imapstore.State{UIDValidity: uint32(s[0]), HighestModSeq: s[1], UIDNext: uint32(s[2]), Messages: uint32(s[3])}
				lf.HasState = true
			}
			if at := past(df.DetailsAt); !at.IsZero() {
				o.detailsAt[df.Name] = at
				lf.Rights, lf.RightsKnown, lf.ACL, lf.ACLKnown = df.Rights, df.RightsKnown, df.ACL, df.ACLKnown
				lf.IncidencesFor, lf.Type = df.Incidences, df.Type
			}
			o.listed[df.Name] = lf
		}
		out[key] = o
	}
	return out, pass, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func (c *Cache) dirPath() string { return filepath.Join(c.opts.StateDir, dirFileName) }

// restoreDirectory loads the persisted directory, if any, into the
// cache's empty one (New calls it). Errors are logged: without the file,
// the cache starts cold.
func (c *Cache) restoreDirectory() {
	if c.opts.StateDir == "" {
		return
	}
	b, err := os.ReadFile(c.dirPath())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("could not read the persisted directory", "err", err)
		}
		return
	}
	now := c.opts.Now()
	owners, pass, err := decodeDirectory(b, now)
	if err != nil {
		c.log.Warn("ignoring an unusable persisted directory", "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dir.owners = owners
	c.restored = now
	c.restoredPass = pass
	c.log.Info("directory restored", "owners", len(owners), "listed", pass)
}

// restoredListing reports whether a check at now may read the states of
// the folders prev lists even though that listing is older than
// relistAfter: it came from the persisted directory (listed before the
// file was read), this process's first discovery pass has not completed,
// and the file was read less than relistAfter ago.
func (c *Cache) restoredListing(prev *ownerEntry, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.restored
	return !r.IsZero() && c.dir.discovered.IsZero() && now.Sub(r) < c.relistAfter() && !prev.listedAt.After(r)
}

// saveDirectory writes the directory to the state directory. Errors are
// logged, not returned: persistence only makes restarts cheaper.
func (c *Cache) saveDirectory() {
	if c.opts.StateDir == "" {
		return
	}
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	c.mu.Lock()
	es := make([]*ownerEntry, 0, len(c.dir.owners))
	for _, o := range c.dir.owners {
		if len(o.listed) > 0 {
			es = append(es, o) // entries are replaced, never changed
		}
	}
	pass := c.dir.discovered
	if pass.IsZero() {
		pass = c.restoredPass
	}
	c.dirDirty = false
	c.mu.Unlock()
	slices.SortFunc(es, func(a, b *ownerEntry) int { return cmp.Compare(ownerKey(a.name), ownerKey(b.name)) })
	b, err := encodeDirectory(es, pass, c.opts.Now())
	if err == nil {
		err = writeAtomic(c.dirPath(), b)
	}
	if err != nil {
		c.mu.Lock()
		c.dirDirty = true
		c.mu.Unlock()
		c.log.Warn("could not persist the directory", "err", err)
	}
}

// saveDirectoryIfDirty is saveDirectory when owners' folders changed
// since the last save.
func (c *Cache) saveDirectoryIfDirty() {
	c.mu.Lock()
	dirty := c.dirDirty
	c.mu.Unlock()
	if dirty {
		c.saveDirectory()
	}
}

// persistChanged reports whether o, replacing cur (nil: none) as an
// owner's entry, changes what the directory file should say: the owner
// appears or leaves, their folders are not the same, or some folder's
// details were read for the first time. A folder's details read again
// (its state moved, or Revalidate ran out) do not: the file keeps the
// older read, which a restart reads again when it is due (reuseDetails),
// and a busy site would rewrite the file all the time. Its cost grows
// with the owner's folders.
func persistChanged(cur, o *ownerEntry) bool {
	if cur == nil {
		return len(o.listed) > 0
	}
	if len(cur.listed) != len(o.listed) {
		return true
	}
	for name := range o.listed {
		if _, ok := cur.listed[name]; !ok || cur.detailsAt[name].IsZero() && !o.detailsAt[name].IsZero() {
			return true
		}
	}
	return false
}
