package imapstore

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// State identifies a folder's content exactly enough to tell whether it
// changed: with CONDSTORE, (UIDVALIDITY, HIGHESTMODSEQ) moves on every
// change; without it, UIDNEXT and MESSAGES catch appends and expunges.
type State struct {
	UIDValidity   uint32
	HighestModSeq uint64 // 0 when the server has no CONDSTORE
	UIDNext       uint32
	Messages      uint32
}

// Folder is a folder the session can see.
type Folder struct {
	// Name is the full folder name, decoded from modified UTF-7.
	Name  string
	Delim rune
	// Namespace, Owner and Path place the folder: Owner is the user whose
	// folder it is ("" for a shared folder), Path its name below the
	// owner's namespace ("Calendar", "Calendar/Work").
	Namespace NamespaceKind
	Owner     string
	Path      string
	// Rights is the session's MYRIGHTS answer (RFC 4314 letters). Without
	// the ACL extension it is empty and RightsKnown is false.
	Rights      string
	RightsKnown bool
	// State is filled when the server answered LIST-STATUS.
	State    State
	HasState bool
	// ACL is the folder's access control list (GETACL: raw identifier to
	// raw rights, for acl.Parse), read where the session holds the "a"
	// right; ACLKnown says whether it was.
	ACL      map[string]string
	ACLKnown bool
	// IncidencesFor is Kolab's incidences-for annotation ("admins",
	// "readers", "nobody"): whose free/busy the folder's events count
	// for; empty when unset.
	IncidencesFor string
	// Type is the Kolab folder-type annotation ("event", "event.default",
	// "mail", "task", …) read through METADATA, shared value first; empty
	// when there is none or the server has no METADATA.
	Type string
}

// Kolab's folder-type annotation, as RFC 5464 entries.
var folderTypeEntries = []string{"/shared/vendor/kolab/folder-type", "/private/vendor/kolab/folder-type"}

// incidencesFor is Kolab's annotation naming whose free/busy a folder
// counts for.
const incidencesFor = "/shared/vendor/kolab/incidences-for"

// Folders lists every selectable folder in every namespace with the
// session's rights on it. With LIST-STATUS the states come in the same
// round trip; MYRIGHTS commands are pipelined. Its cost grows with the
// whole directory: fbpub uses it only to explain its choices (fbpub
// check); serving goes owner by owner (Owners, OwnerFolders, Details).
func (s *Session) Folders(ctx context.Context) ([]Folder, error) {
	done, err := s.unselected(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	out, err := s.list(ctx, "*", true)
	if err != nil {
		return nil, err
	}
	if err := s.details(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// list runs one LIST of pattern (asking for the states too where the
// server has LIST-STATUS and withState is set) and returns the
// selectable folders it names. The caller holds s.mu and has bound the
// connection.
func (s *Session) list(ctx context.Context, pattern string, withState bool) ([]Folder, error) {
	var opts *imap.ListOptions
	if withState && s.features.ListStatus {
		opts = &imap.ListOptions{ReturnStatus: s.statusOptions()}
	}
	var list []*imap.ListData
	err := s.observeList(func() (err error) {
		list, err = s.client.List("", pattern, opts).Collect()
		return err
	})
	if err != nil {
		return nil, opErr(ctx, "LIST", err)
	}
	var out []Folder
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		f := Folder{Name: l.Mailbox, Delim: l.Delim}
		f.Namespace, f.Owner, f.Path = s.place(l.Mailbox, l.Delim)
		if l.Status != nil {
			f.State, f.HasState = stateOf(l.Status), true
		}
		out = append(out, f)
	}
	return out, nil
}

// firstListTimeouts is how many times Options.Timeout the first LIST of a
// session may take (at most DirectoryTimeout).
const firstListTimeouts = 4

// SharersRetry is how often Dovecot sets up every sharer's namespace in
// a session that lists: at its first LIST, and again at its first LIST
// an hour or more after that (its acl plugin looks for new sharers at a
// listing once an hour, SHARED_NS_RETRY_SECS), which then walks every
// sharer again: 0.54 s of Dovecot's CPU at 5,000 mailboxes against 5.0 s
// for the first LIST and 10-40 ms for one within the hour, growing with
// the sharers (bench/README.md, 2026-12-07, 23:40-00:55).
const SharersRetry = time.Hour

// sharersMargin is how much sooner than SharersRetry a LIST is taken for
// one that may set every sharer up again, for the two clocks: fbpub
// counts from before it sent the first LIST, the server from when it
// read it, and either may run fast.
const sharersMargin = 5 * time.Minute

// observeList runs one LIST command (see observe). The first of a session
// may take firstListTimeouts times as long as another command: on
// Dovecot it sets up every sharer's namespace before the first line of
// its answer, whatever it names (seconds of CPU at thousands of
// sharers, growing with them; bench/README.md has the figures), and a
// listing given up on is one the server computes in vain and again at
// the next try. So may every LIST from nearly SharersRetry after the
// first on, where Dovecot sets them up again. The caller holds s.mu.
func (s *Session) observeList(f func() error) error {
	if !s.listed || time.Since(s.listedAt) >= SharersRetry-sharersMargin {
		if !s.listed {
			s.listed, s.listedAt = true, time.Now()
		}
		t := s.opts.Timeout
		s.opts.Timeout = max(s.opts.timeout(), min(firstListTimeouts*s.opts.timeout(), DirectoryTimeout))
		defer func() { s.opts.Timeout = t }()
	}
	return s.observe("LIST", f)
}

// Owners lists the owners whose folders the session can see: one LIST
// of each other-users namespace one level deep ("shared/%"), which names
// the users who share something without listing their folders; the
// session's own user when there is a personal namespace; and "" (the
// owner of folders that belong to no user) when there is a shared
// namespace. On Dovecot a session sees only the users who shared before
// it logged in: discovery runs on a fresh session (Pool.Owners).
func (s *Session) Owners(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var out []string
	for _, ns := range s.spaces {
		switch ns.Kind {
		case Personal:
			out = append(out, s.opts.User)
			continue
		case Shared:
			out = append(out, "")
			continue
		}
		if ns.Prefix == "" {
			continue
		}
		var list []*imap.ListData
		err := s.observeList(func() (err error) {
			list, err = s.client.List("", ns.Prefix+"%", nil).Collect()
			return err
		})
		if err != nil {
			return nil, opErr(ctx, "LIST", err)
		}
		for _, l := range list {
			name, ok := strings.CutPrefix(l.Mailbox, ns.Prefix)
			if !ok || name == "" {
				continue
			}
			d := l.Delim
			if d == 0 {
				d = ns.Delim
			}
			if d != 0 {
				name, _, _ = strings.Cut(name, string(d))
			}
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Directory lists what Owners lists, and the selectable folders of every
// other user too, by name and without states: one LIST of each
// other-users namespace to every depth ("shared/*"). It costs the
// server the whole directory once, and spares a per-owner LIST of every
// known owner to find new folders: what changed is the difference with
// the names a caller knows. As for Owners, on Dovecot the session must
// have logged in after the sharing it is to see (Pool.Directory).
func (s *Session) Directory(ctx context.Context) (owners []string, folders []Folder, err error) {
	done, err := s.unselected(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	for _, ns := range s.spaces {
		switch {
		case ns.Kind == Personal:
			owners = append(owners, s.opts.User)
			continue
		case ns.Kind == Shared:
			owners = append(owners, "")
			continue
		case ns.Prefix == "":
			continue
		}
		fs, err := s.list(ctx, ns.Prefix+"*", false)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range fs {
			if f.Namespace != OtherUsers || f.Owner == "" || f.Path == "" {
				continue
			}
			owners = append(owners, f.Owner)
			folders = append(folders, f)
		}
	}
	slices.Sort(owners)
	return slices.Compact(owners), folders, nil
}

// ValidOwner reports whether owner can name a user in a LIST pattern: not
// empty, not too long, no wildcard and no control character. Any other
// name could make one look-up list what belongs to many users.
// (OwnerFolders also refuses a name holding the namespace's delimiter.)
func ValidOwner(owner string) bool {
	if owner == "" || len(owner) > 256 {
		return false
	}
	for _, r := range owner {
		if r == '*' || r == '%' || r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// OwnerFolders lists the selectable folders of one owner with their
// states: one LIST-STATUS of the owner's part of the other-users
// namespace (LIST "" "shared/alice/*" RETURN (STATUS (...))), or a LIST
// and pipelined STATUS commands where the server has no LIST-STATUS.
// Its cost grows with that owner's folders, not with the directory.
// Owner "" lists the shared namespaces; the session's own user, its
// personal namespace. A name that is not a ValidOwner has no folders.
// Rights, ACL and annotations are not read (see Details).
func (s *Session) OwnerFolders(ctx context.Context, owner string) ([]Folder, error) {
	done, err := s.unselected(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []Folder
	add := func(pattern string, kind NamespaceKind) error {
		fs, err := s.list(ctx, pattern, true)
		for _, f := range fs {
			if f.Namespace == kind && (kind != OtherUsers || strings.EqualFold(f.Owner, owner)) {
				out = append(out, f)
			}
		}
		return err
	}
	personal := strings.EqualFold(owner, s.opts.User)
	for _, ns := range s.spaces {
		var err error
		switch {
		case ns.Kind == Shared && owner == "" && ns.Prefix != "":
			err = add(ns.Prefix+"*", Shared)
		case ns.Kind == OtherUsers && ValidOwner(owner) && !strings.ContainsRune(owner, delimOf(ns)) && !personal && ns.Prefix != "":
			s.touch(ns.Prefix + owner + string(delimOf(ns)))
			err = add(ns.Prefix+owner+string(delimOf(ns))+"*", OtherUsers)
		case ns.Kind == Personal && personal:
			err = s.listPersonal(ctx, ns, add)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := s.fillStates(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// VisibleFolders returns which of owner's folders named by paths (below
// the owner's part of the other-users namespace, "/"-separated, such as
// "Calendar") the session may see: one MYRIGHTS each, pipelined, and the
// names of those whose rights include l (lookup). A name that is not a
// ValidOwner, or an owner on a server without an other-users namespace,
// has none. Without the ACL extension every path is returned, for a
// LIST to tell.
//
// It is how a look-up tells a name that shares a calendar from one that
// does not without a LIST (Pool.FindOwner, which says on which session:
// on Dovecot, what a command that finds nothing visible in a user's
// namespace costs grows with the sharers the session holds).
func (s *Session) VisibleFolders(ctx context.Context, owner string, paths []string) ([]string, error) {
	var names []string
	for _, ns := range s.spaces {
		if ns.Kind != OtherUsers || ns.Prefix == "" || !ValidOwner(owner) || strings.ContainsRune(owner, delimOf(ns)) {
			continue
		}
		d := string(delimOf(ns))
		for _, p := range paths {
			if p != "" {
				names = append(names, ns.Prefix+owner+d+strings.ReplaceAll(p, "/", d))
			}
		}
		break
	}
	return s.visible(ctx, names)
}

// visible returns those of names whose rights (MYRIGHTS, pipelined)
// include l; all of them without the ACL extension.
func (s *Session) visible(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 || !s.features.ACL {
		return names, nil
	}
	done, err := s.unselected(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	s.touch(names[0])
	out := make([]Folder, len(names))
	for i, n := range names {
		out[i].Name = n
	}
	if err := s.readMyRights(ctx, out, s.sendMyRights(out)); err != nil {
		return nil, err
	}
	var vis []string
	for _, f := range out {
		if strings.ContainsRune(f.Rights, 'l') {
			vis = append(vis, f.Name)
		}
	}
	return vis, nil
}

func delimOf(ns Namespace) rune {
	if ns.Delim == 0 {
		return '/'
	}
	return ns.Delim
}

// listPersonal lists the personal namespace ns through add without
// listing the other namespaces: below its prefix when it has one; else
// its top level ("%"), then below each top-level folder that has
// children and is no other namespace's prefix.
func (s *Session) listPersonal(ctx context.Context, ns Namespace, add func(string, NamespaceKind) error) error {
	if ns.Prefix != "" {
		return add(ns.Prefix+"*", Personal)
	}
	var top []*imap.ListData
	err := s.observeList(func() (err error) {
		top, err = s.client.List("", "%", nil).Collect()
		return err
	})
	if err != nil {
		return opErr(ctx, "LIST", err)
	}
	if err := add("%", Personal); err != nil {
		return err
	}
	for _, l := range top {
		if slices.Contains(l.Attrs, imap.MailboxAttrHasNoChildren) {
			continue
		}
		if kind, _, _ := s.place(l.Mailbox+string(delimOf(ns)), l.Delim); kind != Personal {
			continue
		}
		if err := add(l.Mailbox+string(delimOf(ns))+"*", Personal); err != nil {
			return err
		}
	}
	return nil
}

// fillStates reads, with pipelined STATUS commands, the states of the
// folders the LIST did not give (a server without LIST-STATUS). The
// caller holds s.mu and has bound the connection.
func (s *Session) fillStates(ctx context.Context, fs []Folder) error {
	var names []string
	for _, f := range fs {
		if !f.HasState {
			names = append(names, f.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	states, err := s.states(ctx, names)
	if err != nil {
		return err
	}
	for i := range fs {
		if st, ok := states[fs[i].Name]; ok && !fs[i].HasState {
			fs[i].State, fs[i].HasState = st, true
		}
	}
	return nil
}

func (s *Session) statusOptions() *imap.StatusOptions { return stateItems(s.features.CondStore) }

// stateItems are the STATUS items of a State; HIGHESTMODSEQ only from a
// server with CONDSTORE.
func stateItems(condStore bool) *imap.StatusOptions {
	return &imap.StatusOptions{
		UIDValidity:   true,
		UIDNext:       true,
		NumMessages:   true,
		HighestModSeq: condStore,
	}
}

func stateOf(d *imap.StatusData) State {
	st := State{UIDValidity: d.UIDValidity, HighestModSeq: d.HighestModSeq, UIDNext: uint32(d.UIDNext)}
	if d.NumMessages != nil {
		st.Messages = *d.NumMessages
	}
	return st
}

// States reads the states of the named folders: pipelined STATUS commands,
// on a connection with nothing selected (a session's STATUS of its own
// selected folder lags behind, notably on Dovecot).
func (s *Session) States(ctx context.Context, names []string) (map[string]State, error) {
	done, err := s.unselected(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return s.states(ctx, names)
}

// states is States for a caller that holds s.mu, has bound the
// connection and selected nothing.
func (s *Session) states(ctx context.Context, names []string) (map[string]State, error) {
	for _, n := range names {
		s.touch(n)
	}
	out, err := statusAll(s.client, names, s.statusOptions(), isNo, s.observe)
	if err != nil {
		return nil, opErr(ctx, "STATUS", err)
	}
	return out, nil
}

// statusAll reads the states of names on client with pipelined STATUS
// commands, each run through observe. A folder whose STATUS fails with an
// error refused accepts is left out; the first other error is returned.
func statusAll(client *imapclient.Client, names []string, opts *imap.StatusOptions,
	refused func(error) bool, observe func(name string, f func() error) error) (map[string]State, error) {
	cmds := make([]*imapclient.StatusCommand, len(names))
	for i, n := range names {
		cmds[i] = client.Status(n, opts)
	}
	out := make(map[string]State, len(names))
	var first error
	for i, cmd := range cmds {
		err := observe("STATUS", func() error {
			d, err := cmd.Wait()
			if err == nil {
				out[names[i]] = stateOf(d)
			}
			return err
		})
		if err != nil && !refused(err) && first == nil {
			first = err
		}
	}
	return out, first
}

// unselected takes s for a command that reads folder states: it locks
// s.mu, binds the connection to ctx and unselects any folder, since a
// session's view of the folder it has selected lags (Dovecot answers
// STATUS for it from that view). done undoes the binding and the lock;
// on an error nothing is left held.
func (s *Session) unselected(ctx context.Context) (done func(), err error) {
	s.mu.Lock()
	release := s.bind(ctx)
	if err := s.unselect(); err != nil {
		release()
		s.mu.Unlock()
		return nil, opErr(ctx, "UNSELECT", err)
	}
	return func() { release(); s.mu.Unlock() }, nil
}

func (s *Session) unselect() error {
	if s.selected == "" {
		return nil
	}
	err := s.observe("UNSELECT", func() error { return s.client.Unselect().Wait() })
	if err == nil {
		s.selected = ""
	}
	return err
}
