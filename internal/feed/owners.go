package feed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/imapstore"
)

// Freshness, owner by owner.
//
// A request reads one owner's folders, so it checks the states of that
// owner's folders only, at most once per check interval (or only when the
// server announces a change, for an owner whose folders NOTIFY watches):
// a STATUS of each folder the owner is known to have (listed within
// relistAfter), else one LIST-STATUS of the owner's part of the
// other-users namespace. STATUS is what costs the server least: on
// Dovecot a small fraction of the LIST of one owner, which walks the
// shared namespaces the session has set up (bench/scale -probe measures
// both; bench/README.md has the figures). New folders of a known
// owner are found by discovery's listing of the directory (within the
// discovery cadence); a folder that does not answer STATUS (removed,
// renamed, or no longer the proxy's to read) makes the check list the
// owner at once.
// The rights, the ACL and the annotations of a folder are read when the
// folder first appears, when its state moves (on Dovecot a SETACL moves
// HIGHESTMODSEQ), and at least every Revalidate. Finding owners runs in
// the background (Run, in discovery.go): at start and every Discovery,
// on a session that logs in for it (a long-lived Dovecot session does not
// see users who started sharing after its login), plus a look-up when a
// request names an owner the cache does not know, rate-limited and
// remembered when it finds nothing. So what a request costs the server
// depends on the folders of the owner it reads, never on the size of the
// directory.

// directory is what the cache knows of the owners and their folders. It
// is guarded by Cache.mu.
type directory struct {
	// owners by lower-cased name ("" for folders of no user).
	owners map[string]*ownerEntry
	// folders counts the changes of folderOwner's names (Published).
	folders uint64
	// folderOwner maps a published folder's name to its owner's key,
	// for announced changes.
	folderOwner map[string]string
	// counting holds the published folders whose incidences-for
	// annotation makes them count for users other than their owner.
	counting map[string]bool
	// missing is when a look-up last found no folders of an owner, by
	// the name as asked (a spelling the server does not know must not
	// hide the owner under another).
	missing map[string]time.Time
	// watched says which folders NOTIFY watches (SetWatched, WatchedBy);
	// nil when none.
	watched Watched
	// discovered is when the last discovery pass started, and passTook
	// how long the last that succeeded took (see Cache.cadence).
	discovered time.Time
	passTook   time.Duration
	// tokens and tokensAt are the look-up rate limit's bucket.
	tokens   float64
	tokensAt time.Time
	// published and aclUnknown count the published folders, for the
	// gauges.
	published, aclUnknown int
}

func newDirectory() directory {
	return directory{owners: map[string]*ownerEntry{}, folderOwner: map[string]string{}, counting: map[string]bool{},
		missing: map[string]time.Time{}, tokens: lookupBurst}
}

// ownerEntry is one owner's folders. An entry is replaced, never changed,
// by a check: readers may keep the one they took under Cache.mu.
type ownerEntry struct {
	name string // as the server spells it
	// listed are the owner's folders the proxy sees, by name, with the
	// details last read for each (detailsAt).
	listed    map[string]imapstore.Folder
	detailsAt map[string]time.Time
	// folders are the published ones, sorted by name.
	folders []Folder
	// checked is when the check that built the entry started; zero for
	// an owner discovery named and no check read yet.
	checked time.Time
	// listedAt is when a LIST last named the owner's folders (listed):
	// a check of the owner, or a discovery pass that found the same
	// names. Zero when no listing did.
	listedAt time.Time
	// pushed is when the server last announced a change in one of the
	// folders (or Check asked for a check); set on the entry in place,
	// under Cache.mu.
	pushed time.Time
	// relist says the next check lists the owner's folders rather than
	// read the states of those listed (Trigger); set in place, under
	// Cache.mu.
	relist bool
}

// ownerCheck is the result of one check of an owner.
type ownerCheck struct {
	folders []Folder
	checked time.Time
}

func ownerKey(owner string) string { return strings.ToLower(owner) }

// owned returns the published folders of owner (compared without regard
// to case), or ErrNotFound; stale is set when their states could not be
// read (IMAP down, or slower than the check budget) and they are the last
// ones fbpub had.
func (c *Cache) owned(ctx context.Context, owner string) ([]Folder, bool, error) {
	return c.ownerFolders(ctx, owner, c.opts.CheckBudget, false)
}

// OwnerFolders returns owner's published folders with their states,
// checked as for a request, or ErrNotFound.
func (c *Cache) OwnerFolders(ctx context.Context, owner string) ([]Folder, error) {
	fs, _, err := c.ownerFolders(ctx, owner, 0, false)
	return fs, err
}

// ownerFolders is owned with a check budget (0: wait for the check);
// force looks up an owner the cache does not know even when the last
// discovery pass did not list them (see lookUp).
func (c *Cache) ownerFolders(ctx context.Context, owner string, budget time.Duration, force bool) (fs []Folder, stale bool, err error) {
	key := ownerKey(owner)
	arrived := c.opts.Now()
	c.mu.Lock()
	o := c.dir.owners[key]
	pushed := c.pushed
	if o != nil && o.pushed.After(pushed) {
		pushed = o.pushed
	}
	fresh := o != nil && c.fresh(o, arrived, pushed)
	c.mu.Unlock()
	if fresh {
		if len(o.folders) == 0 {
			return nil, false, ErrNotFound
		}
		return o.folders, false, nil
	}
	if o == nil {
		return c.lookUp(ctx, owner, key, force)
	}
	fs, stale, err = c.recheck(ctx, o.name, key, arrived, pushed, budget)
	if err == nil || !errors.Is(err, ErrUnavailable) {
		if err == nil && !stale {
			c.setDown(false, nil)
		}
		if err == nil && len(fs) == 0 {
			return nil, false, ErrNotFound
		}
		return fs, stale, err
	}
	c.setDown(true, err)
	if o.checked.IsZero() {
		return nil, false, err // named by discovery, never read
	}
	if len(o.folders) == 0 {
		return nil, false, ErrNotFound
	}
	return o.folders, true, nil
}

// fresh reports whether o's states do for a request that arrived at
// arrived: its check started after the request arrived or within the
// check interval before, and after the last announced change (pushed); or
// NOTIFY watches every one of its folders and its check is not older
// than Revalidate. The caller holds c.mu.
func (c *Cache) fresh(o *ownerEntry, arrived, pushed time.Time) bool {
	return c.goodCheck(o.checked, arrived, pushed) || c.watchedFresh(o, arrived, pushed)
}

func (c *Cache) goodCheck(t, arrived, pushed time.Time) bool {
	if t.IsZero() || (!pushed.IsZero() && t.Before(pushed)) {
		return false
	}
	return !t.Before(arrived) || (c.opts.CheckInterval > 0 && t.After(arrived.Add(-c.opts.CheckInterval)))
}

// watchedFresh: with NOTIFY watching all of o's folders, the server
// announces their changes, so there is nothing to poll until
// RevalidateWatched (Revalidate when unset). The caller holds c.mu.
func (c *Cache) watchedFresh(o *ownerEntry, arrived, pushed time.Time) bool {
	bound := c.opts.RevalidateWatched
	if bound <= 0 {
		bound = c.opts.Revalidate
	}
	if c.dir.watched == nil || bound <= 0 || len(o.folders) == 0 || o.checked.IsZero() {
		return false
	}
	if !pushed.IsZero() && o.checked.Before(pushed) {
		return false
	}
	if !o.checked.After(arrived.Add(-bound)) {
		return false
	}
	for _, f := range o.folders {
		if !c.dir.watched.Watched(f.Name) {
			return false
		}
	}
	return true
}

// recheck reads a known owner's states again, sharing the read with
// concurrent requests, but never one that started too early for this
// one. With a budget, it waits that long and then answers the folders it
// had, marked stale, while the check goes on.
func (c *Cache) recheck(ctx context.Context, name, key string, arrived, pushed time.Time, budget time.Duration) ([]Folder, bool, error) {
	good := func(t time.Time) bool { return c.goodCheck(t, arrived, pushed) }
	var timeout <-chan time.Time
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		timeout = t.C
	}
	for {
		ch := c.group.DoChan("state\x00"+key, func() (any, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
			defer cancel()
			// Re-check inside the shared call: a check that finished
			// between this caller's look and its joining may do.
			c.mu.Lock()
			o := c.dir.owners[key]
			c.mu.Unlock()
			if o != nil && good(o.checked) {
				return ownerCheck{o.folders, o.checked}, nil
			}
			return c.checkReplicated(ctx, name, good)
		})
		select {
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		case <-timeout:
			// The check goes on, detached, for whoever comes next.
			c.mu.Lock()
			o := c.dir.owners[key]
			c.mu.Unlock()
			if o == nil || len(o.folders) == 0 {
				// Nothing to fall back on: wait for the check.
				r := <-ch
				if r.Err != nil {
					return nil, false, r.Err
				}
				return r.Val.(ownerCheck).folders, false, nil
			}
			c.log.Debug("check slower than its budget: answering stale", "owner", name, "budget", budget)
			return o.folders, true, nil
		case r := <-ch:
			if r.Shared {
				c.m.Shared.WithLabelValues("state").Inc()
			}
			if r.Err != nil {
				return nil, false, r.Err
			}
			if v := r.Val.(ownerCheck); good(v.checked) {
				return v.folders, false, nil
			}
			// That check started before this request arrived: again.
		}
	}
}

// checkMode says how checkOwner finds an owner's folders.
type checkMode int

const (
	// checkStates reads the states of the folders the owner is known
	// to have, when that is cheaper than a LIST and they were listed
	// recently enough (knownStates); else it is checkList.
	checkStates checkMode = iota
	// checkList lists the owner's folders with their states.
	checkList
	// checkLookup lists them on a session recent enough to see a user
	// who only just started sharing (Source.LookupOwner).
	checkLookup
	// checkFind looks for them by the publication's fixed folders
	// only, listing them only if the proxy may see one (findOwner).
	checkFind
)

// maxStatusFolders is how many known folders an owner may have for a
// check to read their states one STATUS each rather than LIST them: a
// few STATUS commands cost the server less than one LIST (see above),
// dozens of them do not, and count as commands.
const maxStatusFolders = 4

// stateReader is what a Source offers, beside Source, when it can read
// the states of named folders (imapstore.Pool does: pipelined STATUS).
type stateReader interface {
	States(ctx context.Context, names []string) (map[string]imapstore.State, error)
}

// checkOwner reads owner's folders and their states (mode says how),
// the details of those that are new, moved or due for re-validation, and
// publishes the result.
func (c *Cache) checkOwner(ctx context.Context, owner string, mode checkMode) (ownerCheck, error) {
	checked := c.opts.Now()
	key := ownerKey(owner)
	c.mu.Lock()
	prev := c.dir.owners[key]
	c.mu.Unlock()
	var list []imapstore.Folder
	listedAt := checked
	var err error
	switch {
	case mode == checkLookup || mode == checkFind:
		list, err = c.findOwner(ctx, owner, mode)
	case mode == checkStates && c.statesWillDo(prev, checked):
		var ok bool
		if list, ok, err = c.knownStates(ctx, prev); err == nil && ok {
			listedAt = prev.listedAt
			break
		}
		fallthrough
	default:
		if err == nil {
			list, err = c.opts.Source.OwnerFolders(ctx, owner)
		}
	}
	if err != nil {
		return ownerCheck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	need, detailsAt := c.reuseDetails(list, prev, checked)
	if err := c.readDetails(ctx, list, need); err != nil {
		return ownerCheck{}, err
	}
	o, unknown := c.buildEntry(owner, list, detailsAt, checked)
	o.listedAt = listedAt
	c.publish(key, o, unknown)
	return ownerCheck{o.folders, checked}, nil
}

// relistAfter is how old a listing of an owner's folders may be for a
// check to read their states only: discovery lists them every cadence,
// and a pass that failed or is late does not leave an owner unlisted for
// longer than twice that. The caller holds c.mu.
func (c *Cache) relistAfter() time.Duration { return 2 * c.cadence() }

// statesWillDo reports whether a check of prev's owner at now may read
// the states of the folders prev lists, not list them again.
func (c *Cache) statesWillDo(prev *ownerEntry, now time.Time) bool {
	if _, ok := c.opts.Source.(stateReader); !ok || prev == nil || len(prev.listed) == 0 {
		return false
	}
	if c.restoredListing(prev, now) {
		return len(prev.listed) <= maxRestoredStatus // see dirstate.go
	}
	c.mu.Lock()
	relist, asked := c.relistAfter(), prev.relist
	c.mu.Unlock()
	return !asked && len(prev.listed) <= maxStatusFolders && !prev.listedAt.IsZero() && now.Sub(prev.listedAt) < relist
}

// knownStates reads the states of prev's folders, one STATUS each, and
// returns them as a listing would, with what prev knew of each. It
// reports false when a folder did not answer: it was removed or renamed,
// or the proxy may no longer read it, and only a LIST tells which.
func (c *Cache) knownStates(ctx context.Context, prev *ownerEntry) ([]imapstore.Folder, bool, error) {
	names := slices.Sorted(maps.Keys(prev.listed))
	states, err := c.opts.Source.(stateReader).States(ctx, names)
	if err != nil {
		return nil, false, err
	}
	list := make([]imapstore.Folder, 0, len(names))
	for _, name := range names {
		st, ok := states[name]
		if !ok {
			return nil, false, nil
		}
		f := prev.listed[name]
		f.State, f.HasState = st, true
		list = append(list, f)
	}
	return list, true, nil
}

// reuseDetails carries over from prev, the owner's last check, the
// details of the folders in list whose state did not move and that were
// validated within Revalidate before checked. It returns the indexes in
// list of the folders whose details must be read, and when the details of
// each folder were read (checked for those).
func (c *Cache) reuseDetails(list []imapstore.Folder, prev *ownerEntry, checked time.Time) (need []int, detailsAt map[string]time.Time) {
	detailsAt = make(map[string]time.Time, len(list))
	for i, f := range list {
		var old imapstore.Folder
		var ok bool
		if prev != nil {
			old, ok = prev.listed[f.Name]
		}
		if !ok || old.State != f.State || old.HasState != f.HasState || c.opts.Revalidate <= 0 ||
			!prev.detailsAt[f.Name].After(checked.Add(-c.opts.Revalidate)) {
			need = append(need, i)
			detailsAt[f.Name] = checked
			continue
		}
		// Unchanged and recently validated: its details still hold.
		st, has := f.State, f.HasState
		list[i] = old
		list[i].State, list[i].HasState = st, has
		detailsAt[f.Name] = prev.detailsAt[f.Name]
	}
	return need, detailsAt
}

// readDetails reads the rights, ACL and annotations of the folders of
// list at the indexes need, in place.
func (c *Cache) readDetails(ctx context.Context, list []imapstore.Folder, need []int) error {
	if len(need) == 0 {
		return nil
	}
	fs := make([]imapstore.Folder, len(need))
	for j, i := range need {
		fs[j] = list[i]
	}
	if err := c.opts.Source.Details(ctx, fs); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for j, i := range need {
		list[i] = fs[j]
	}
	return nil
}

// buildEntry builds the entry of owner from the folders a check listed,
// with their details: the published ones sorted by name, and how many of
// those have no usable ACL.
func (c *Cache) buildEntry(owner string, list []imapstore.Folder, detailsAt map[string]time.Time, checked time.Time) (o *ownerEntry, unknown int) {
	o = &ownerEntry{name: owner, listed: make(map[string]imapstore.Folder, len(list)), detailsAt: detailsAt, checked: checked}
	for i, d := range c.decide(list) {
		o.listed[list[i].Name] = list[i]
		if d.Untrusted != "" {
			c.noteAnnotations(d)
		}
		if d.Reason != "" {
			continue
		}
		f := d.Folder
		f.checked = checked
		if !f.ACLKnown {
			unknown++
			c.noteACL(f, d.ACLError)
		}
		o.folders = append(o.folders, f)
	}
	slices.SortFunc(o.folders, func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	if len(o.folders) > 0 && o.folders[0].Owner != "" {
		o.name = o.folders[0].Owner // as the server spells it
	}
	return o, unknown
}

// publish replaces owner key's entry by o (or removes it when the proxy
// sees none of the owner's folders), and forgets the snapshots of the
// folders no longer published (a revoked grant). Its cost grows with the
// owner's folders.
func (c *Cache) publish(key string, o *ownerEntry, unknown int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := &c.dir
	if cur := d.owners[key]; cur != nil && cur.checked.After(o.checked) {
		return // a later check got there first
	} else if persistChanged(cur, o) {
		c.dirDirty = true // for the state directory (dirstate.go)
	}
	if prev := d.owners[key]; prev != nil {
		o.pushed = prev.pushed
		kept := make(map[string]bool, len(o.folders))
		for _, f := range o.folders {
			kept[f.Name] = true
		}
		for _, f := range prev.folders {
			if !kept[f.Name] {
				c.dropSnap(f.Name)
				delete(d.folderOwner, f.Name)
				d.folders++
				delete(d.counting, f.Name)
			}
			d.published--
			if !f.ACLKnown {
				d.aclUnknown--
			}
		}
	}
	if len(o.listed) == 0 {
		delete(d.owners, key)
		if len(d.missing) >= maxMissing {
			clear(d.missing)
		}
		d.missing[o.name] = o.checked
	} else {
		d.owners[key] = o
		delete(d.missing, o.name)
	}
	for _, f := range o.folders {
		if _, ok := d.folderOwner[f.Name]; !ok {
			d.folders++
		}
		d.folderOwner[f.Name] = key
		if f.IncidencesFor == "readers" || f.IncidencesFor == "admins" {
			d.counting[f.Name] = true
		} else {
			delete(d.counting, f.Name)
		}
	}
	d.published += len(o.folders)
	d.aclUnknown += unknown
	c.m.FoldersPublished.Set(float64(d.published))
	c.m.FoldersACLUnknown.Set(float64(d.aclUnknown))
}

// Counting returns the published folders whose events count for user's
// free/busy, whoever may see them, checked as for a request; ErrNotFound
// when there are none. It costs what one user's free/busy costs, not a
// walk of the directory.
func (c *Cache) Counting(ctx context.Context, user string) ([]Folder, error) {
	fs, _, err := c.counting(ctx, user, nil)
	return fs, err
}

// counting returns the published folders that may count for user's
// free/busy (Folder.CountsFor decides): user's own, and those of other
// owners whose incidences-for annotation names readers or admins, each
// owner checked as for a request. ErrNotFound when there are none. The
// folders are appended to fs, which must be empty: a caller may pass an
// array it reuses, so that a request for a cached answer allocates
// nothing here.
func (c *Cache) counting(ctx context.Context, user string, fs []Folder) ([]Folder, bool, error) {
	own, stale, err := c.owned(ctx, user)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	// The other owners whose folders may count for user: a few, as few
	// folders carry the annotation. None for the proxy, which is no one
	// whose free/busy others' folders make.
	var buf [4]string
	others := buf[:0]
	counting := c.opts.Proxy == "" || ownerKey(user) != ownerKey(c.opts.Proxy)
	c.mu.Lock()
	for name := range c.dir.counting {
		if !counting {
			break
		}
		if k := c.dir.folderOwner[name]; k != ownerKey(user) && !slices.Contains(others, k) {
			if o := c.dir.owners[k]; o != nil {
				others = append(others, o.name)
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(others)
	for _, f := range own {
		if f.CountsFor(user, c.opts.Policy) {
			fs = append(fs, f)
		}
	}
	for _, other := range others {
		theirs, st, err := c.owned(ctx, other)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		stale = stale || st
		for _, f := range theirs {
			if f.CountsFor(user, c.opts.Policy) {
				fs = append(fs, f)
			}
		}
	}
	if len(fs) == 0 {
		return nil, false, ErrNotFound
	}
	return fs, stale, nil
}

// Check forces a check of owner's folder states, whatever the check
// interval: the Kolab trigger URL calls it after a client wrote a folder,
// and an upload before and after it writes. An owner the cache does not
// know is looked up (within the look-up rate), even when the last
// discovery pass did not list them: they may have just started sharing.
func (c *Cache) Check(ctx context.Context, owner string) error {
	return c.check(ctx, owner, false)
}

// Trigger is Check for the Kolab trigger URL, which a client calls after
// it wrote a folder of owner's, a folder it has just created included:
// the check lists the owner's folders, so that a new one is published
// at once, not at the next discovery pass.
func (c *Cache) Trigger(ctx context.Context, owner string) error {
	return c.check(ctx, owner, true)
}

func (c *Cache) check(ctx context.Context, owner string, relist bool) error {
	key := ownerKey(owner)
	c.mu.Lock()
	if o := c.dir.owners[key]; o != nil {
		o.pushed = c.opts.Now()
		o.relist = o.relist || relist
	}
	delete(c.dir.missing, owner)
	c.mu.Unlock()
	_, _, err := c.ownerFolders(ctx, owner, 0, true)
	if errors.Is(err, ErrNotFound) {
		return nil // the request that follows says so
	}
	return err
}

// pushedFor is when a change was last announced for o; the caller holds
// c.mu.
func (c *Cache) pushedFor(o *ownerEntry) time.Time {
	if o.pushed.After(c.pushed) {
		return o.pushed
	}
	return c.pushed
}
