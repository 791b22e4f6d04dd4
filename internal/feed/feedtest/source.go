// Package feedtest provides an in-memory feed.Source for the fast tier of
// the tests of feed and of the packages above it (httpapi): folders with
// states, the proxy's rights, ACLs, Kolab annotations and messages, held
// in memory, and every call counted. It is not an IMAP server: the tests
// against Dovecot and Cyrus (internal/testbed) remain the proof of what
// the servers do; this fake does what those tests show they do, in the
// shape feed.Source gives it.
//
// What it models, as Dovecot does: a folder is named as another user sees
// it ("shared/alice/Calendar", delimiter "/"); LIST shows a folder only
// when the proxy has the l right; a folder may be read (Fetch) only with
// the r right, else it is not found; GETACL answers only with the a right;
// every change of content or ACL (an appended message, a flag, an
// expunge, a SETACL) moves the folder's HIGHESTMODSEQ, as on Dovecot with
// CONDSTORE. An annotation (METADATA) moves no state here: Dovecot moves
// HIGHESTMODSEQ for it too, but a server need not, and the cache must read
// annotations again without a sign (Options.Revalidate).
// STATUS (Pooled.States) answers for a folder the proxy lost its grant
// on. TestAgainstDovecot holds the fake to these claims. Fetch hands every message over whole (as a folder read from
// scratch whose messages are all below Query.WholeBelow), through
// Query.Received when nothing is Known, in Listing.Messages otherwise.
//
// A Source is safe for concurrent use.
package feedtest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fbpub/fbpub/internal/imapstore"
)

// Source is an in-memory feed.Source. The zero value is not usable: make
// one with New.
type Source struct {
	mu sync.Mutex
	// folders by name; guarded by mu.
	folders map[string]*folder
	// calls counts the calls of each method by name ("Fetch",
	// "OwnerFolders", …); guarded by mu.
	calls map[string]int
	// err, when set, fails every call; guarded by mu.
	err error
	// hook, when set, runs at the start of every call, outside mu;
	// guarded by mu.
	hook func(method, arg string)
	// uidValidity is given to the next folder made; guarded by mu.
	uidValidity uint32
	// delivered counts the messages whose content Fetch handed over;
	// guarded by mu.
	delivered int
}

type folder struct {
	imapstore.Folder // Rights, ACL, annotations and State as they are now
	msgs             []message
}

type message struct {
	uid     uint32
	raw     []byte
	deleted bool
	modSeq  uint64
}

// New returns an empty Source.
func New() *Source {
	return &Source{folders: map[string]*folder{}, calls: map[string]int{}, uidValidity: 1000}
}

// Name returns the name under which the proxy sees owner's folder path,
// as on Dovecot: "shared/alice/Calendar".
func Name(owner, path string) string { return "shared/" + owner + "/" + path }

// AddFolder makes owner's folder path (a "/"-separated path below the
// owner's namespace, e.g. "Calendar/Work") with rights the proxy's rights
// on it (RFC 4314 letters; "lr" to be published). It returns the
// folder's name. Adding a folder that exists changes nothing.
func (s *Source) AddFolder(owner, path, rights string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := Name(owner, path)
	if s.folders[name] == nil {
		s.uidValidity++
		s.folders[name] = &folder{Folder: imapstore.Folder{
			Name: name, Delim: '/', Namespace: imapstore.OtherUsers, Owner: owner, Path: path,
			Rights: rights, RightsKnown: true,
			State: imapstore.State{UIDValidity: s.uidValidity, HighestModSeq: 1, UIDNext: 1},
		}}
	}
	return name
}

// change runs f on folder name under s.mu and moves its HIGHESTMODSEQ,
// as a change of content or ACL does on Dovecot. It panics for a folder
// not added: a mistake in the test.
func (s *Source) change(name string, f func(f *folder)) {
	s.edit(name, func(fo *folder) {
		fo.State.HighestModSeq++
		f(fo)
	})
}

// edit runs f on folder name under s.mu. It panics for a folder not
// added.
func (s *Source) edit(name string, f func(f *folder)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fo := s.folders[name]
	if fo == nil {
		panic("feedtest: no folder " + name)
	}
	f(fo)
}

// SetRights sets the proxy's rights on folder name (SETACL for the proxy).
func (s *Source) SetRights(name, rights string) {
	s.change(name, func(f *folder) { f.Rights = rights })
}

// SetACL sets the ACL of folder name (identifier to rights). The proxy
// reads it only where its own rights hold a.
func (s *Source) SetACL(name string, acl map[string]string) {
	s.change(name, func(f *folder) { f.ACL = maps.Clone(acl) })
}

// SetType sets the Kolab folder-type annotation of folder name ("event",
// "mail", …; "" removes it). It moves no state.
func (s *Source) SetType(name, typ string) {
	s.edit(name, func(f *folder) { f.Type = typ })
}

// SetIncidencesFor sets the Kolab incidences-for annotation of folder
// name ("readers", "admins", "nobody"; "" removes it). It moves no state.
func (s *Source) SetIncidencesFor(name, v string) {
	s.edit(name, func(f *folder) { f.IncidencesFor = v })
}

// Append adds the message raw to folder name and returns its UID.
func (s *Source) Append(name string, raw []byte) uint32 {
	var uid uint32
	s.change(name, func(f *folder) {
		uid = f.State.UIDNext
		f.State.UIDNext++
		f.State.Messages++
		f.msgs = append(f.msgs, message{uid: uid, raw: slices.Clone(raw), modSeq: f.State.HighestModSeq})
	})
	return uid
}

// SetDeleted flags message uid of folder name \Deleted (or not).
func (s *Source) SetDeleted(name string, uid uint32, deleted bool) {
	s.change(name, func(f *folder) {
		for i := range f.msgs {
			if f.msgs[i].uid == uid {
				f.msgs[i].deleted, f.msgs[i].modSeq = deleted, f.State.HighestModSeq
			}
		}
	})
}

// Expunge removes message uid from folder name.
func (s *Source) Expunge(name string, uid uint32) {
	s.change(name, func(f *folder) {
		f.msgs = slices.DeleteFunc(f.msgs, func(m message) bool { return m.uid == uid })
		f.State.Messages = uint32(len(f.msgs))
	})
}

// Recreate deletes folder name and makes it again with the same messages,
// rights, ACL and annotations, as a client that rebuilds a folder does: it
// gets a new UIDVALIDITY, and its messages new UIDs.
func (s *Source) Recreate(name string) {
	s.mu.Lock()
	s.uidValidity++
	v := s.uidValidity
	s.mu.Unlock()
	s.change(name, func(f *folder) {
		f.State.UIDValidity = v
		for i := range f.msgs {
			f.msgs[i].uid = f.State.UIDNext
			f.State.UIDNext++
		}
	})
}

// Delete removes folder name, as its owner deleting or renaming it does.
func (s *Source) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.folders, name)
}

// Fail makes every call fail with err, as an unreachable server does; nil
// ends the outage.
func (s *Source) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// OnCall sets a function that every call runs first, before it reads
// anything, with the method's name (as Calls takes it) and its argument:
// the owner for OwnerFolders and LookupOwner, the folder for Fetch, ""
// for the others. A test holds a call there while requests gather, or
// fails it at a chosen moment. Nil removes it.
func (s *Source) OnCall(hook func(method, arg string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Calls returns how many times method ("Folders", "Owners",
// "OwnerFolders", "LookupOwner", "Details", "Fetch") was called, counting
// a call held in the OnCall hook.
func (s *Source) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// ResetCalls sets every count of Calls, and Delivered, to zero.
func (s *Source) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	s.delivered = 0
}

// Delivered returns how many messages Fetch handed over with their
// content (not those the caller knew, nor those flagged \Deleted).
func (s *Source) Delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered
}

// call counts a call of method, runs the hook, then takes s.mu and
// returns the outage error, if any. The caller releases s.mu.
func (s *Source) call(method, arg string) error {
	s.mu.Lock()
	s.calls[method]++
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(method, arg)
	}
	s.mu.Lock()
	return s.err
}

// listed returns the folders the proxy may list (l right) that keep
// returns true for, sorted by name, with their names and states only, as
// LIST-STATUS gives them. The caller holds s.mu.
func (s *Source) listed(keep func(*folder) bool) []imapstore.Folder {
	var out []imapstore.Folder
	for _, f := range s.folders {
		if !strings.ContainsRune(f.Rights, 'l') || !keep(f) {
			continue
		}
		out = append(out, imapstore.Folder{Name: f.Name, Delim: f.Delim, Namespace: f.Namespace, Owner: f.Owner, Path: f.Path,
			State: f.State, HasState: true})
	}
	slices.SortFunc(out, func(a, b imapstore.Folder) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Folders lists every folder the proxy may list, with its details.
func (s *Source) Folders(ctx context.Context) ([]imapstore.Folder, error) {
	err := s.call("Folders", "")
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := s.listed(func(*folder) bool { return true })
	s.fill(out)
	return out, nil
}

// Owners lists the owners of the folders the proxy may list.
func (s *Source) Owners(ctx context.Context) ([]string, error) {
	err := s.call("Owners", "")
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range s.listed(func(*folder) bool { return true }) {
		if f.Owner != "" && !slices.Contains(out, f.Owner) {
			out = append(out, f.Owner)
		}
	}
	slices.Sort(out)
	return out, nil
}

// OwnerFolders lists owner's folders (compared without regard to case)
// with their states, without details.
func (s *Source) OwnerFolders(ctx context.Context, owner string) ([]imapstore.Folder, error) {
	return s.ownerFolders("OwnerFolders", owner)
}

// LookupOwner is OwnerFolders, counted apart.
func (s *Source) LookupOwner(ctx context.Context, owner string) ([]imapstore.Folder, error) {
	return s.ownerFolders("LookupOwner", owner)
}

func (s *Source) ownerFolders(method, owner string) ([]imapstore.Folder, error) {
	err := s.call(method, owner)
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.listed(func(f *folder) bool { return strings.EqualFold(f.Owner, owner) }), nil
}

// Details fills in the proxy's rights, the ACL where the proxy holds a,
// and the annotations of fs. A folder that no longer exists gets empty
// rights, known: nothing may be read.
func (s *Source) Details(ctx context.Context, fs []imapstore.Folder) error {
	err := s.call("Details", "")
	defer s.mu.Unlock()
	if err != nil {
		return err
	}
	s.fill(fs)
	return nil
}

// fill is Details for a caller that holds s.mu.
func (s *Source) fill(fs []imapstore.Folder) {
	for i := range fs {
		d := &fs[i]
		d.Rights, d.RightsKnown, d.ACL, d.ACLKnown, d.Type, d.IncidencesFor = "", true, nil, false, "", ""
		f := s.folders[d.Name]
		if f == nil {
			continue
		}
		d.Rights, d.Type, d.IncidencesFor = f.Rights, f.Type, f.IncidencesFor
		if strings.ContainsRune(f.Rights, 'a') {
			d.ACL, d.ACLKnown = maps.Clone(f.ACL), true
		}
	}
}

// Fetch reads folder name as q asks: every UID, the flags (of every
// message, or of those changed since q.ChangedSince), and every message
// not Known, whole. A folder that does not exist or that the proxy may
// not read (no r right) is imapstore.ErrNotFound.
func (s *Source) Fetch(ctx context.Context, name string, q imapstore.Query) (*imapstore.Listing, error) {
	if err := s.call("Fetch", name); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	f := s.folders[name]
	if f == nil || !strings.ContainsRune(f.Rights, 'r') {
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", imapstore.ErrNotFound, name)
	}
	l := &imapstore.Listing{State: f.State, Deleted: map[uint32]bool{}, FlagsComplete: q.ChangedSince == 0}
	var received []imapstore.Message
	for _, m := range f.msgs {
		l.UIDs = append(l.UIDs, m.uid)
		if l.FlagsComplete && m.deleted || !l.FlagsComplete && m.modSeq > q.ChangedSince {
			l.Deleted[m.uid] = m.deleted
		}
		if q.Known != nil && q.Known(m.uid) {
			continue
		}
		msg := imapstore.Message{UID: m.uid, Deleted: m.deleted, ModSeq: m.modSeq}
		if !m.deleted {
			msg.Raw = slices.Clone(m.raw)
			s.delivered++
		}
		if q.Received != nil && q.Known == nil && !m.deleted {
			received = append(received, msg)
		} else {
			l.Messages = append(l.Messages, msg)
		}
	}
	s.mu.Unlock()
	for _, m := range received {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		q.Received(m)
	}
	return l, nil
}

// Pooled is a Source with the two reads imapstore.Pool offers beside
// feed.Source, which the cache uses when its Source has them: States, a
// STATUS of each named folder, and Directory, one LIST of every owner's
// folders (discovery). They are counted as "States" and "Directory".
// A test of the checks that read known folders' states, not a LIST,
// uses a Pooled; the others keep a plain Source.
type Pooled struct{ *Source }

// States returns the states of the named folders that exist, whatever
// the proxy's rights on them; a folder that does not exist is left out,
// as the pool leaves out one whose STATUS the server refused. Dovecot 2.3
// answers STATUS for a folder on which the proxy holds or held any right,
// even after its grant was taken back (a SETACL, which moved the state);
// only one never shared with it is refused. Cyrus refuses one without r.
// Answering for every folder is the strictest case for the cache: it must
// not count on a refused STATUS to notice a revoked grant.
func (p Pooled) States(ctx context.Context, names []string) (map[string]imapstore.State, error) {
	s := p.Source
	err := s.call("States", "")
	defer s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make(map[string]imapstore.State, len(names))
	for _, name := range names {
		if f := s.folders[name]; f != nil {
			out[name] = f.State
		}
	}
	return out, nil
}

// Directory lists the owners of the folders the proxy may list and those
// folders, by name, without states.
func (p Pooled) Directory(ctx context.Context) ([]string, []imapstore.Folder, error) {
	s := p.Source
	err := s.call("Directory", "")
	defer s.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	var owners []string
	fs := s.listed(func(*folder) bool { return true })
	for i := range fs {
		fs[i].State, fs[i].HasState = imapstore.State{}, false
		if !slices.Contains(owners, fs[i].Owner) {
			owners = append(owners, fs[i].Owner)
		}
	}
	slices.Sort(owners)
	return owners, fs, nil
}
