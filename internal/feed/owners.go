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
// owner's folders only: one LIST-STATUS of the owner's part of the
// other-users namespace, at most once per check interval (or only when the
// server announces a change, for an owner whose folders NOTIFY watches).
// The rights, the ACL and the annotations of a folder are read when the
// folder first appears, when its state moves (on Dovecot a SETACL moves
// HIGHESTMODSEQ), and at least every Revalidate. Finding owners runs in
// the background (Run): at start and every Discovery, on a session that
// logs in for it (a long-lived Dovecot session does not see users who
// started sharing after its login), plus a look-up when a request names
// an owner the cache does not know, rate-limited and remembered when it
// finds nothing. So what a request costs the server depends on the
// folders of the owner it reads, never on the size of the directory.

// DefaultDiscovery is how often Run looks for new owners when
// Options.Discovery is not set.
const DefaultDiscovery = 5 * time.Minute

// Look-ups of unknown owners are bounded to lookupRate a second, in
// bursts of lookupBurst: names made up by a client cannot make fbpub
// hammer the server with logins.
const (
	lookupRate  = 5
	lookupBurst = 20
	// maxMissing bounds the negative cache of unknown owners.
	maxMissing = 10000
)

// directory is what the cache knows of the owners and their folders. It
// is guarded by Cache.mu.
type directory struct {
	// owners by lower-cased name ("" for folders of no user).
	owners map[string]*ownerEntry
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
	// watched are the folders NOTIFY watches (SetWatched).
	watched map[string]bool
	// discovered is when the last discovery pass started.
	discovered time.Time
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
	// pushed is when the server last announced a change in one of the
	// folders (or Check asked for a check); set on the entry in place,
	// under Cache.mu.
	pushed time.Time
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
	return c.ownerFolders(ctx, owner, c.opts.CheckBudget)
}

// OwnerFolders returns owner's published folders with their states,
// checked as for a request, or ErrNotFound.
func (c *Cache) OwnerFolders(ctx context.Context, owner string) ([]Folder, error) {
	fs, _, err := c.ownerFolders(ctx, owner, 0)
	return fs, err
}

// ownerFolders is owned with a check budget (0: wait for the check).
func (c *Cache) ownerFolders(ctx context.Context, owner string, budget time.Duration) (fs []Folder, stale bool, err error) {
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
		return c.lookUp(ctx, owner, key)
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
// announces their changes, so there is nothing to poll until Revalidate.
// The caller holds c.mu.
func (c *Cache) watchedFresh(o *ownerEntry, arrived, pushed time.Time) bool {
	if c.dir.watched == nil || c.opts.Revalidate <= 0 || len(o.folders) == 0 || o.checked.IsZero() {
		return false
	}
	if !pushed.IsZero() && o.checked.Before(pushed) {
		return false
	}
	if !o.checked.After(arrived.Add(-c.opts.Revalidate)) {
		return false
	}
	for _, f := range o.folders {
		if !c.dir.watched[f.Name] {
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
			return c.checkOwner(ctx, name, false)
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

// lookUp finds the folders of an owner the cache does not know: on a
// session that logs in for it, at most lookupRate a second, and not
// again within NegativeTTL when it found nothing.
func (c *Cache) lookUp(ctx context.Context, owner, key string) ([]Folder, bool, error) {
	if !imapstore.ValidOwner(owner) {
		return nil, false, ErrNotFound
	}
	now := c.opts.Now()
	c.mu.Lock()
	if t, ok := c.dir.missing[owner]; ok && c.opts.NegativeTTL > 0 && now.Sub(t) < c.opts.NegativeTTL {
		c.mu.Unlock()
		return nil, false, ErrNotFound
	}
	c.mu.Unlock()
	v, err := c.shared(ctx, "state", key, func(ctx context.Context) (any, error) {
		c.mu.Lock()
		o := c.dir.owners[key]
		c.mu.Unlock()
		switch {
		case o != nil && !o.checked.IsZero():
			return ownerCheck{o.folders, o.checked}, nil
		case o != nil:
			// Discovery named them meanwhile: a plain check.
			return c.checkOwner(ctx, o.name, false)
		case !c.takeToken(now):
			return nil, errLookups
		}
		return c.checkOwner(ctx, owner, true)
	})
	if err != nil {
		if errors.Is(err, ErrUnavailable) && !errors.Is(err, errLookups) {
			c.setDown(true, err)
		}
		return nil, false, err
	}
	fs := v.(ownerCheck).folders
	if len(fs) == 0 {
		return nil, false, ErrNotFound
	}
	return fs, false, nil
}

// errLookups refuses a look-up beyond the rate limit: the server is not
// asked, and the client may try again.
var errLookups = fmt.Errorf("%w: too many look-ups of unknown owners", ErrUnavailable)

// takeToken takes one look-up from the rate limit's bucket.
func (c *Cache) takeToken(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := &c.dir
	if !d.tokensAt.IsZero() {
		d.tokens = min(lookupBurst, d.tokens+now.Sub(d.tokensAt).Seconds()*lookupRate)
	}
	d.tokensAt = now
	if d.tokens < 1 {
		return false
	}
	d.tokens--
	return true
}

// checkOwner reads owner's folders and their states (on a session that
// logs in for it when lookup is set), the details of those that are new,
// moved or due for re-validation, and publishes the result.
func (c *Cache) checkOwner(ctx context.Context, owner string, lookup bool) (ownerCheck, error) {
	checked := c.opts.Now()
	key := ownerKey(owner)
	var list []imapstore.Folder
	var err error
	if lookup {
		list, err = c.opts.Source.LookupOwner(ctx, owner)
	} else {
		list, err = c.opts.Source.OwnerFolders(ctx, owner)
	}
	if err != nil {
		return ownerCheck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c.mu.Lock()
	prev := c.dir.owners[key]
	c.mu.Unlock()
	var need []int
	detailsAt := make(map[string]time.Time, len(list))
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
	if len(need) > 0 {
		fs := make([]imapstore.Folder, len(need))
		for j, i := range need {
			fs[j] = list[i]
		}
		if err := c.opts.Source.Details(ctx, fs); err != nil {
			return ownerCheck{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		for j, i := range need {
			list[i] = fs[j]
		}
	}
	o := &ownerEntry{name: owner, listed: make(map[string]imapstore.Folder, len(list)), detailsAt: detailsAt, checked: checked}
	unknown := 0
	for i, d := range c.decide(list) {
		o.listed[list[i].Name] = list[i]
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
	c.publish(key, o, unknown)
	return ownerCheck{o.folders, checked}, nil
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
	}
	if prev := d.owners[key]; prev != nil {
		o.pushed = prev.pushed
		kept := make(map[string]bool, len(o.folders))
		for _, f := range o.folders {
			kept[f.Name] = true
		}
		for _, f := range prev.folders {
			if !kept[f.Name] {
				delete(c.snaps, f.Name)
				delete(d.folderOwner, f.Name)
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
	fs, _, err := c.counting(ctx, user)
	return fs, err
}

// counting returns the published folders that may count for user's
// free/busy (Folder.CountsFor decides): user's own, and those of other
// owners whose incidences-for annotation names readers or admins, each
// owner checked as for a request. ErrNotFound when there are none.
func (c *Cache) counting(ctx context.Context, user string) ([]Folder, bool, error) {
	own, stale, err := c.owned(ctx, user)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	// The other owners whose folders may count for user: a few, as few
	// folders carry the annotation.
	var others []string
	c.mu.Lock()
	for name := range c.dir.counting {
		if k := c.dir.folderOwner[name]; k != ownerKey(user) && !slices.Contains(others, k) {
			if o := c.dir.owners[k]; o != nil {
				others = append(others, o.name)
			}
		}
	}
	c.mu.Unlock()
	slices.Sort(others)
	var fs []Folder
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
// know is looked up (negative cache and rate limit aside).
func (c *Cache) Check(ctx context.Context, owner string) error {
	key := ownerKey(owner)
	c.mu.Lock()
	if o := c.dir.owners[key]; o != nil {
		o.pushed = c.opts.Now()
	}
	delete(c.dir.missing, owner)
	c.mu.Unlock()
	_, _, err := c.ownerFolders(ctx, owner, 0)
	if errors.Is(err, ErrNotFound) {
		return nil // the request that follows says so
	}
	return err
}

// Changed records that the server announced a change in folder (IMAP
// NOTIFY or IDLE): the next request for its owner checks again, whatever
// the check interval. An empty name means any folder may have changed.
func (c *Cache) Changed(folder string) {
	c.log.Debug("change announced", "folder", folder)
	now := c.opts.Now()
	c.mu.Lock()
	if key, ok := c.dir.folderOwner[folder]; ok && folder != "" {
		if o := c.dir.owners[key]; o != nil {
			o.pushed = now
		}
	} else {
		// A folder the cache does not publish (yet): it may be new.
		c.pushed = now
	}
	c.mu.Unlock()
	c.m.Pushes.Inc()
}

// SetWatched tells the cache which folders a NOTIFY connection watches
// now (nil when none does): for an owner whose folders are all watched,
// requests rely on the server's announcements instead of checking every
// interval, and checks come only with a change or every Revalidate.
func (c *Cache) SetWatched(folders []string) {
	var m map[string]bool
	if folders != nil {
		m = make(map[string]bool, len(folders))
		for _, f := range folders {
			m[f] = true
		}
	}
	c.mu.Lock()
	c.dir.watched = m
	c.mu.Unlock()
}

// Watchlist returns the names of the folders worth watching for pushed
// changes, best first: those requested since the last call, most
// requested first, then every other published folder by name. It starts
// counting requests anew. A watcher with few connections (IDLE) takes the
// head of the list; one that can watch everything (NOTIFY) takes it all.
// It runs in the background and walks the whole directory.
func (c *Cache) Watchlist() []string {
	c.mu.Lock()
	hits := c.hits
	c.hits = map[string]int{}
	published := make([]string, 0, len(c.dir.folderOwner))
	for name := range c.dir.folderOwner {
		published = append(published, name)
	}
	c.mu.Unlock()
	slices.Sort(published)
	names := make([]string, 0, len(published)+len(hits))
	for name := range hits {
		// A folder requested, then no longer published (a grant
		// revoked), is not watched.
		if _, ok := slices.BinarySearch(published, name); ok {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if hits[a] != hits[b] {
			return hits[b] - hits[a]
		}
		return strings.Compare(a, b)
	})
	for _, name := range published { // sorted by name
		if hits[name] == 0 {
			names = append(names, name)
		}
	}
	return names
}

// Discover looks for owners: it lists them on a session that logs in for
// it, checks those it does not know and those no check read within the
// discovery cadence (new folders, annotations, removed grants), and
// checks again the owners it knows that were not listed (they may have
// stopped sharing). It costs the whole directory: Run calls it in the
// background, never a request.
func (c *Cache) Discover(ctx context.Context) error {
	_, err, _ := c.group.Do("discover", func() (any, error) { return nil, c.discover(ctx) })
	return err
}

func (c *Cache) discover(ctx context.Context) error {
	start := c.opts.Now()
	names, err := c.opts.Source.Owners(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	listed := c.know(names)
	var errs []error
	check := func(name string) {
		key := ownerKey(name)
		_, err, _ := c.group.Do("state\x00"+key, func() (any, error) {
			c.mu.Lock()
			o := c.dir.owners[key]
			recent := o != nil && o.checked.After(start.Add(-c.opts.Discovery)) && !o.checked.Before(c.pushedFor(o))
			c.mu.Unlock()
			if recent {
				return ownerCheck{o.folders, o.checked}, nil
			}
			return c.checkOwner(ctx, name, false)
		})
		if err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	}
	for _, name := range names {
		check(name)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	c.mu.Lock()
	var gone []string
	for key, o := range c.dir.owners {
		if !listed[key] {
			gone = append(gone, o.name)
		}
	}
	c.dir.discovered = start
	c.mu.Unlock()
	slices.Sort(gone)
	for _, name := range gone {
		check(name)
	}
	return errors.Join(errs...)
}

// know records the owners a discovery listed, checked or not, and
// returns their keys: a request for one the pass has not reached yet
// checks them on a pooled session (which the listing's fresh session
// replaced), instead of a rate-limited look-up.
func (c *Cache) know(names []string) map[string]bool {
	listed := make(map[string]bool, len(names))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range names {
		key := ownerKey(name)
		listed[key] = true
		if c.dir.owners[key] == nil {
			c.dir.owners[key] = &ownerEntry{name: name}
		}
		delete(c.dir.missing, name)
	}
	return listed
}

// pushedFor is when a change was last announced for o; the caller holds
// c.mu.
func (c *Cache) pushedFor(o *ownerEntry) time.Time {
	if o.pushed.After(c.pushed) {
		return o.pushed
	}
	return c.pushed
}

// Rediscover asks Run for a discovery pass now (the server announced a
// new or renamed folder). It does not block.
func (c *Cache) Rediscover() {
	select {
	case c.discoverNow <- struct{}{}:
	default:
	}
}

// Run discovers owners at once, then every Options.Discovery and when
// Rediscover asks, until ctx ends. A failed pass is tried again sooner,
// with backoff. Requests do not wait for it: an owner it has not reached
// yet is looked up by the first request for them.
func (c *Cache) Run(ctx context.Context) {
	for failures := 0; ; {
		wait := c.opts.Discovery
		if err := c.Discover(ctx); err != nil && ctx.Err() == nil {
			failures++
			wait = min(wait, time.Second<<min(failures, 6))
			c.log.Warn("discovery of owners failed", "err", err, "retry_in", wait)
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.discoverNow:
			t.Stop()
		}
	}
}

// Folders runs a discovery pass and returns every published folder, by
// name. It costs the whole directory: for tools and tests.
func (c *Cache) Folders(ctx context.Context) ([]Folder, error) {
	if err := c.Discover(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	var out []Folder
	for _, key := range slices.Sorted(maps.Keys(c.dir.owners)) {
		out = append(out, c.dir.owners[key].folders...)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// setDown logs the start and the end of an IMAP outage once each.
func (c *Cache) setDown(down bool, err error) {
	c.mu.Lock()
	was := c.down
	c.down = down
	c.mu.Unlock()
	switch {
	case down && !was:
		c.log.Warn("IMAP unavailable: serving the last good answers, marked stale", "err", err)
	case !down && was:
		c.log.Info("IMAP available again")
	}
}
