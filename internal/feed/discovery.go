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
			if c.listedRecently(now) {
				// Beyond the rate, a name the last discovery pass
				// did not list is answered as it found it: nobody
				// publishes under it (until the next pass, or a
				// look-up the rate allows, finds otherwise).
				return ownerCheck{}, nil
			}
			return nil, errLookups
		}
		return c.lookUpReplicated(ctx, owner)
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

// listedRecently reports whether a discovery pass listed every owner
// within two discovery cadences before now.
func (c *Cache) listedRecently(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.dir.discovered
	return !d.IsZero() && now.Sub(d) < 2*c.opts.Discovery
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
			pushed := c.pushed
			if o != nil {
				pushed = c.pushedFor(o)
			}
			c.mu.Unlock()
			recent := func(t time.Time) bool { return t.After(start.Add(-c.opts.Discovery)) && !t.Before(pushed) }
			if o != nil && recent(o.checked) {
				return ownerCheck{o.folders, o.checked}, nil
			}
			return c.checkReplicated(ctx, name, recent)
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
