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

// lookUp finds the folders of an owner the cache does not know, at most
// lookupRate a second. Once a discovery pass has listed the owners (within
// two cadences), a name it did not list is not listed: the next pass
// names them if they start sharing, and on Dovecot a LIST of a name
// that shares nothing costs what the pass did. Where the Source can find
// owners by the publication's fixed folders (ownerFinder: one MYRIGHTS
// of their Calendar, with the default patterns), a name is asked about
// that way, so that a user who starts sharing is published at the first
// request after, not at the next pass (up to 45 minutes apart at 20,000
// sharers). Without such a Source, it is not found without a word to the
// server. Before a pass has succeeded, or when force is set (the Kolab
// trigger), the name is also listed. A name not found is not looked up
// again within NegativeTTL, nor before the next pass, which would find
// them if they started sharing meanwhile: each name that shares nothing
// costs the server at most one question per pass (6.4 ms of Dovecot's CPU
// at 20,000 mailboxes).
func (c *Cache) lookUp(ctx context.Context, owner, key string, force bool) ([]Folder, bool, error) {
	if !imapstore.ValidOwner(owner) {
		return nil, false, ErrNotFound
	}
	now := c.opts.Now()
	c.mu.Lock()
	if t, ok := c.dir.missing[owner]; ok && c.opts.NegativeTTL > 0 && (now.Sub(t) < c.opts.NegativeTTL || c.sincePass(t, now)) {
		c.mu.Unlock()
		return nil, false, ErrNotFound
	}
	c.mu.Unlock()
	v, err := c.shared(ctx, "state", key, func(ctx context.Context) (any, error) {
		c.mu.Lock()
		o := c.dir.owners[key]
		c.mu.Unlock()
		if o == nil && c.awaitFirstPass(ctx) {
			c.mu.Lock()
			o = c.dir.owners[key]
			c.mu.Unlock()
		}
		switch {
		case o != nil && !o.checked.IsZero():
			return ownerCheck{o.folders, o.checked}, nil
		case o != nil:
			// Discovery named them meanwhile: a plain check.
			return c.checkOwner(ctx, o.name, checkStates)
		case !force && c.listedRecently(now):
			// A name the last discovery pass did not list is
			// answered as it found it: nobody publishes under it,
			// unless the proxy may see one of the publication's
			// fixed folders of theirs (findOwner), the first request
			// after they started sharing. Else until the next pass,
			// or the trigger, finds otherwise.
			if !c.canFind() || !c.takeToken(now) {
				return ownerCheck{}, nil
			}
			oc, err := c.lookUpReplicated(ctx, owner, checkFind)
			if err != nil {
				// The pass's answer stands; the next request asks again.
				c.log.Debug("could not ask about an owner the last discovery pass did not list", "owner", owner, "err", err)
				return ownerCheck{}, nil
			}
			return oc, nil
		}
		if !c.takeToken(now) {
			if c.listedRecently(now) {
				return ownerCheck{}, nil // as above
			}
			return nil, errLookups
		}
		return c.lookUpReplicated(ctx, owner, checkLookup)
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

// Starting says that Run is about to start, before the goroutine that
// runs it does: a look-up made in between waits for its first pass as
// for a pass under way (see awaitFirstPass).
func (c *Cache) Starting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.passing == nil {
		c.passing = make(chan struct{})
	}
}

// firstPassUnderWay returns a channel closed when the discovery pass
// under way ends, when no pass has succeeded yet and one is under way
// (Run starts one at once); nil otherwise.
func (c *Cache) firstPassUnderWay() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dir.discovered.IsZero() || c.passing == nil {
		return nil
	}
	return c.passing
}

// awaitFirstPass waits for the first discovery pass when one is under way
// and reports whether it succeeded: a look-up made meanwhile is answered
// from that pass rather than list the owner apart, since on Dovecot the
// first LIST of a session, the look-up's as the pass's, sets up every
// sharer's namespace (tens of seconds at 20,000), and two at once take
// twice the server's CPU for no sooner an answer. It reports false when
// no first pass is under way, when it failed, or when ctx ended first:
// the owner is then looked up as before.
func (c *Cache) awaitFirstPass(ctx context.Context) bool {
	pass := c.firstPassUnderWay()
	if pass == nil {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-pass:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.dir.discovered.IsZero()
}

// sincePass reports whether t is after the start of the last discovery
// pass, and that pass within two cadences before now. The caller holds
// c.mu.
func (c *Cache) sincePass(t, now time.Time) bool {
	d := c.dir.discovered
	return !d.IsZero() && t.After(d) && now.Sub(d) < 2*c.cadence()
}

// cadence is how often discovery passes come (see discoveryShare):
// Options.Discovery, or discoveryShare times what the last pass took when
// that is longer. What counts on passes (a listing's age, a pass's
// authority on who shares) counts on this, or it would lapse between
// passes where listing the directory is slow. The caller holds c.mu.
func (c *Cache) cadence() time.Duration {
	return max(c.opts.Discovery, shareSpacing(c.dir.passTook))
}

// listedRecently reports whether a discovery pass listed every owner
// within two discovery cadences before now.
func (c *Cache) listedRecently(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dir.discovered
	return !d.IsZero() && now.Sub(d) < 2*c.cadence()
}

// ownerFinder is what a Source offers, beside Source, when it can tell
// whether a name shares by the rights on named folders of theirs, before
// it lists them (imapstore.Pool.FindOwner).
type ownerFinder interface {
	FindOwner(ctx context.Context, owner string, paths []string) ([]imapstore.Folder, error)
}

// canFind reports whether look-ups can ask about a name by the
// publication's fixed folders (ownerFinder, and patterns that name one).
func (c *Cache) canFind() bool {
	_, ok := c.opts.Source.(ownerFinder)
	return ok && len(c.roots) > 0
}

// patternRoots are the folders every calendar a pattern selects lies in
// or below: each pattern's leading segments without a wildcard
// ("Calendar" for "Calendar" and "Calendar/*"). A pattern whose first
// segment has one (matching "*") gives none.
func patternRoots(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		var lit []string
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || strings.ContainsAny(seg, `*?[\`) {
				break
			}
			lit = append(lit, seg)
		}
		if r := strings.Join(lit, "/"); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// findOwner lists an owner the cache does not know (mode checkFind or
// checkLookup): by the publication's fixed folders when the Source can
// (canFind), and, for checkLookup when that finds nothing or fails, by
// listing the name (Source.LookupOwner), which needs one session where
// finding needs two (a server's limit of connections may allow one).
func (c *Cache) findOwner(ctx context.Context, owner string, mode checkMode) ([]imapstore.Folder, error) {
	if c.canFind() {
		list, err := c.opts.Source.(ownerFinder).FindOwner(ctx, owner, c.roots)
		if mode == checkFind || err == nil && len(list) > 0 {
			return list, err
		}
	}
	return c.opts.Source.LookupOwner(ctx, owner)
}

// errLookups refuses a look-up beyond the rate limit when no recent
// discovery pass can answer for the name: the server is not asked, and
// the client may try again.
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

// Discover looks for owners: it lists them on a session that logs in for
// it, and checks again the owners it knows whose folders may have
// changed in ways a check of their states does not see: new or removed
// folders, a user who stopped sharing. Owners it finds and no request
// has asked for are only named (a request checks them), so a pass costs
// one listing of the directory plus the owners that changed. A Source
// without a listing of the folders (directoryLister) makes a pass check
// every owner no check read within the discovery cadence. It costs the
// whole directory: Run calls it in the background, never a request.
func (c *Cache) Discover(ctx context.Context) error {
	_, err, _ := c.group.Do("discover", func() (any, error) {
		c.mu.Lock()
		done := c.passing // made by Starting, or here
		if done == nil {
			done = make(chan struct{})
			c.passing = done
		}
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.passing = nil
			c.mu.Unlock()
			close(done)
		}()
		return nil, c.discover(ctx)
	})
	return err
}

// directoryLister is what a Source offers, beside Source, when it can
// list every owner's folders in one go (imapstore.Pool does: one LIST of
// the other-users namespace, see Session.Directory).
type directoryLister interface {
	Directory(ctx context.Context) (owners []string, folders []imapstore.Folder, err error)
}

func (c *Cache) discover(ctx context.Context) error {
	start := c.opts.Now()
	var names []string
	var byOwner map[string][]imapstore.Folder // nil: no listing of folders
	var err error
	if dl, ok := c.opts.Source.(directoryLister); ok {
		var folders []imapstore.Folder
		names, folders, err = dl.Directory(ctx)
		byOwner = map[string][]imapstore.Folder{}
		for _, f := range folders {
			byOwner[ownerKey(f.Owner)] = append(byOwner[ownerKey(f.Owner)], f)
		}
	} else {
		names, err = c.opts.Source.Owners(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	listed := c.know(names)
	var errs []error
	// check lists an owner's folders again, unless a check listed them
	// since the pass started, or (with recentDoes) they were listed
	// within the cadence and checked since the last announced change.
	check := func(name string, recentDoes bool) {
		key := ownerKey(name)
		_, err, _ := c.group.Do("state\x00"+key, func() (any, error) {
			c.mu.Lock()
			o := c.dir.owners[key]
			pushed := c.pushed
			if o != nil {
				pushed = c.pushedFor(o)
			}
			recent := o != nil && !o.listedAt.Before(start)
			if recentDoes && o != nil {
				recent = recent || o.checked.After(start.Add(-c.opts.Discovery)) && !o.checked.Before(pushed) &&
					!o.listedAt.Before(start.Add(-c.opts.Discovery))
			}
			c.mu.Unlock()
			if recent {
				return ownerCheck{o.folders, o.checked}, nil
			}
			if recentDoes {
				// Another replica's check within the cadence does as well.
				return c.checkShared(ctx, name, checkList, func(t time.Time) bool {
					return t.After(start.Add(-c.opts.Discovery)) && !t.Before(pushed)
				})
			}
			return c.checkOwner(ctx, name, checkList)
		})
		if err != nil && len(errs) < 3 {
			errs = append(errs, err)
		}
	}
	var changed []string
	if byOwner != nil {
		changed = c.relisted(byOwner, start)
	}
	for _, name := range changed {
		check(name, false)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
	for _, name := range names {
		if byOwner != nil && byOwner[ownerKey(name)] != nil {
			continue // relisted did what was needed
		}
		check(name, true)
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
		check(name, false)
	}
	c.saveDirectory()
	return errors.Join(errs...)
}

// relisted brings what the cache knows of the owners in byOwner (their
// folders, as a discovery pass that started at start listed them) up to
// date, and returns those that need a check: the owners some request
// read whose folders are not the ones that read found. An owner no
// request read gets the listed folders, which its first check reads the
// states of; one whose folders are as read is marked listed at start.
func (c *Cache) relisted(byOwner map[string][]imapstore.Folder, start time.Time) (changed []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, fs := range byOwner {
		o := c.dir.owners[key]
		if o == nil {
			continue // know named every owner listed
		}
		same := len(fs) == len(o.listed)
		for _, f := range fs {
			if _, ok := o.listed[f.Name]; !ok {
				same = false
			}
		}
		switch {
		case o.checked.IsZero():
			// Entries are replaced, never changed: readers may hold
			// this one.
			n := &ownerEntry{name: o.name, pushed: o.pushed, listedAt: start, listed: make(map[string]imapstore.Folder, len(fs)),
				detailsAt: map[string]time.Time{}}
			for _, f := range fs {
				n.listed[f.Name] = f
				if at := o.detailsAt[f.Name]; !at.IsZero() {
					// Restored from the state directory: the details
					// and the state they were read at hold as for a
					// check (reuseDetails).
					n.listed[f.Name], n.detailsAt[f.Name] = o.listed[f.Name], at
				}
			}
			c.dir.owners[key] = n
		case same && o.listedAt.Before(start):
			n := *o
			n.listedAt = start
			c.dir.owners[key] = &n
		case same:
			// A check listed them since the pass started.
		default:
			changed = append(changed, o.name)
		}
	}
	slices.Sort(changed)
	return changed
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

// Rediscover asks Run for a discovery pass now (the server announced a
// new or renamed folder). It does not block.
func (c *Cache) Rediscover() {
	select {
	case c.discoverNow <- struct{}{}:
	default:
	}
}

// Discovery's pace. A failed pass is tried again after
// discoveryRetry, doubling with each failure up to the cadence; and no
// pass starts sooner after the last one ended than discoveryShare times
// what that one took, so that listing the directory takes at most about
// a hundredth of the server's time however large the directory. At
// 20,000 sharers Dovecot takes 25-30 s of its CPU for it, on a session of
// its own (see imapstore.Pool.Directory), so passes come every 45 minutes
// or so: at 20 times (every 10 minutes) bench/scale measured them at 5-10 %
// of a core, more than the requests cost it.
const (
	discoveryRetry = 30 * time.Second
	discoveryShare = 100
)

// shareSpacing is how long after a pass that took took the next one
// starts at the latest, by discoveryShare, unless Options.Discovery is
// longer. It is short enough for the next pass to replace the listings'
// session before Dovecot sets every sharer up in it again
// (imapstore.SharersRetry after its first LIST, the last pass's): that
// would cost a LIST that comes later (a look-up) what a pass costs,
// on the request path. That session listed when the last pass began,
// took before it ended, and is replaced when the next one ends. With
// passes of 36 s or more (beyond about 20,000 sharers on Dovecot) this
// bounds the pace, and passes take a little more than a hundredth of the
// server's time.
func shareSpacing(took time.Duration) time.Duration {
	return max(min(discoveryShare*took, imapstore.SharersRetry-10*time.Minute-2*took), 0)
}

// Run discovers owners at once, then every Options.Discovery (see
// discoveryShare) and when Rediscover asks, until ctx ends. A failed pass
// is tried again with backoff (discoveryRetry), never at once. Requests
// do not wait for it: an owner it has not reached yet is looked up by the
// first request for them. With Options.StateDir, it also writes the
// directory when owners' folders changed, at most every dirSaveEvery, and
// before it returns.
func (c *Cache) Run(ctx context.Context) {
	var saves <-chan time.Time
	if c.opts.StateDir != "" {
		t := time.NewTicker(dirSaveEvery)
		defer t.Stop()
		saves = t.C
	}
	defer c.saveDirectoryIfDirty()
	for failures := 0; ; {
		t0 := time.Now()
		err := c.Discover(ctx)
		took := time.Since(t0)
		c.mu.Lock()
		if err == nil {
			c.dir.passTook = took
		}
		wait := max(c.cadence(), shareSpacing(took))
		c.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			failures++
			// Backoff, but not sooner than the pass's own share of the
			// server's time allows, within an hour: a pass that ran into
			// its 10-minute limit would otherwise wait 16 hours.
			wait = max(min(wait, discoveryRetry<<min(failures-1, 6)), min(discoveryShare*took, time.Hour))
			c.log.Warn("discovery of owners failed", "err", err, "took", took, "retry_in", wait)
		} else if err == nil {
			failures = 0
			c.mu.Lock()
			known := len(c.dir.owners)
			c.mu.Unlock()
			c.log.Info("owners discovered", "owners", known, "took", took.Round(time.Millisecond), "next_in", wait.Round(time.Second))
		}
		t := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
				break waiting
			case <-c.discoverNow:
				t.Stop()
				break waiting
			case <-saves:
				c.saveDirectoryIfDirty()
			}
		}
	}
}

// Folders runs a discovery pass and returns every published folder, by
// name. It costs the whole directory: for tools and tests.
func (c *Cache) Folders(ctx context.Context) ([]Folder, error) {
	if err := c.Discover(ctx); err != nil {
		return nil, err
	}
	// The owners the pass named and no request read yet.
	c.mu.Lock()
	var unread []string
	for _, o := range c.dir.owners {
		if o.checked.IsZero() {
			unread = append(unread, o.name)
		}
	}
	c.mu.Unlock()
	slices.Sort(unread)
	for _, name := range unread {
		key := ownerKey(name)
		if _, err, _ := c.group.Do("state\x00"+key, func() (any, error) { return c.checkOwner(ctx, name, checkStates) }); err != nil {
			return nil, err
		}
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
