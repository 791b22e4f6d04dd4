package feed

import (
	"slices"
	"strings"

	"github.com/fbpub/fbpub/internal/imapstore"
)

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

// Settled tells the cache that folder's state is st now, and that the
// server announces its changes from here on (a NOTIFY SET took it in):
// when the cache holds that very state for it, nothing changed since its
// owner's last check, which still holds; otherwise the folder counts as
// changed (Changed).
func (c *Cache) Settled(folder string, st imapstore.State) {
	c.mu.Lock()
	held := false
	if key, ok := c.dir.folderOwner[folder]; ok {
		if o := c.dir.owners[key]; o != nil {
			f, ok := o.listed[folder]
			held = ok && f.HasState && f.State == st
		}
	}
	c.mu.Unlock()
	if !held {
		c.Changed(folder)
	}
}

// Watched says which folders a NOTIFY connection watches now: the server
// announces their changes (imapstore.Watcher is one). Watched is called on
// the request path, with the cache's lock held: it must not block.
type Watched interface {
	Watched(folder string) bool
}

// WatchedBy tells the cache to ask w, at each request, which folders
// NOTIFY watches (nil: none): for an owner whose folders are all watched,
// requests rely on the server's announcements instead of checking every
// interval, and checks come only with a change or every
// RevalidateWatched. Asked at each request, a folder stops counting as
// watched the moment w stops watching it (a NOTIFY connection lost, or its
// set being replaced), not at the next update of a list.
func (c *Cache) WatchedBy(w Watched) {
	c.mu.Lock()
	c.dir.watched = w
	c.mu.Unlock()
}

// SetWatched is WatchedBy for a fixed list of folders (nil: none): what
// another replica says its NOTIFY connections watch.
func (c *Cache) SetWatched(folders []string) {
	if folders == nil {
		c.WatchedBy(nil)
		return
	}
	m := make(folderSet, len(folders))
	for _, f := range folders {
		m[f] = true
	}
	c.WatchedBy(m)
}

// folderSet is a fixed set of folder names.
type folderSet map[string]bool

func (s folderSet) Watched(folder string) bool { return s[folder] }

// isHot reports whether a folder requested h times in a Watchlist period
// is worth moving a watch for, when the median folder requested in it was
// requested typical times: at least 5 times, and four times the median.
// Requests spread at random over thousands of folders seldom give one
// that much: at 50 a second over 4,500 folders (1,500 in half a minute,
// most folders requested once) some folder is requested 5 times about one
// period in ten, where before a watch moved every period.
func isHot(h, typical int) bool {
	return h >= max(5, 4*typical)
}

// Published returns a number that changes whenever a folder is
// published or stops being: a watcher compares it with the one of its
// last Watchlist to watch new folders soon after a first request for
// them, without walking the directory every time.
func (c *Cache) Published() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dir.folders
}

// Watchlist returns the names of the folders worth watching for pushed
// changes, best first, given those watched now (current): the folders
// requested far more than the others since the last call (see isHot), most
// requested first; then those of current that are still published; then
// the other folders requested, most requested first; then every other
// published folder by name. It starts counting requests anew. A watcher
// with few connections (IDLE) takes the head of the list; one with NOTIFY
// takes as much as its connections carry, all of it when they carry the
// directory.
//
// So a full watcher moves a watch only for a folder requested far more
// than the others: under requests spread over thousands of owners, the
// folders the last half minute happened to name (a few of them twice or
// three times) are no likelier to be asked for again than the others, and
// each move costs the server (with IDLE a login and a SELECT; with NOTIFY
// an EXAMINE and a state read of every folder of that connection). A team
// calendar that many clients poll is requested far more.
// It runs in the background and walks the whole directory.
func (c *Cache) Watchlist(current []string) []string {
	c.mu.Lock()
	hits := c.hits
	c.hits = map[string]int{}
	published := make([]string, 0, len(c.dir.folderOwner))
	for name := range c.dir.folderOwner {
		published = append(published, name)
	}
	c.mu.Unlock()
	slices.Sort(published)
	isPublished := func(name string) bool {
		_, ok := slices.BinarySearch(published, name)
		return ok
	}
	var requested []string
	for name := range hits {
		// A folder requested, then no longer published (a grant
		// revoked), is not watched.
		if isPublished(name) {
			requested = append(requested, name)
		}
	}
	slices.SortFunc(requested, func(a, b string) int {
		if hits[a] != hits[b] {
			return hits[b] - hits[a]
		}
		return strings.Compare(a, b)
	})
	// Hot folders come first in requested.
	hot, typical := 0, 1 // a folder requested alone is measured against 1
	if len(requested) >= 2 {
		typical = hits[requested[len(requested)/2]]
	}
	for hot < len(requested) && isHot(hits[requested[hot]], typical) {
		hot++
	}
	names := make([]string, 0, len(published)+len(current))
	listed := make(map[string]bool, len(published))
	add := func(name string) {
		if !listed[name] {
			listed[name] = true
			names = append(names, name)
		}
	}
	for _, name := range requested[:hot] {
		add(name)
	}
	for _, name := range current {
		if isPublished(name) {
			add(name)
		}
	}
	for _, name := range requested[hot:] {
		add(name)
	}
	for _, name := range published { // sorted by name
		add(name)
	}
	return names
}
