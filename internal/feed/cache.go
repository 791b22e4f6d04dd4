package feed

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/metrics"
)

// Source is the IMAP side of the cache: *imapstore.Pool implements it.
type Source interface {
	// Folders lists every folder with its details: the whole directory,
	// read only by Explain.
	Folders(ctx context.Context) ([]imapstore.Folder, error)
	// Owners lists the owners whose folders the proxy sees, on a session
	// that logs in for it (discovery).
	Owners(ctx context.Context) ([]string, error)
	// OwnerFolders lists one owner's folders with their states;
	// LookupOwner does the same for an owner the cache does not know yet,
	// on a session recent enough to see a user who only just started
	// sharing (see imapstore.Pool.LookupOwner).
	OwnerFolders(ctx context.Context, owner string) ([]imapstore.Folder, error)
	LookupOwner(ctx context.Context, owner string) ([]imapstore.Folder, error)
	// Details reads the rights, ACL and annotations of the given folders.
	Details(ctx context.Context, fs []imapstore.Folder) error
	Fetch(ctx context.Context, folder string, q imapstore.Query) (*imapstore.Listing, error)
}

// Options configure a Cache.
type Options struct {
	Source Source
	// CheckInterval is how long an owner's folder states are trusted
	// before a request for that owner reads them again. Zero means every
	// request checks.
	CheckInterval time.Duration
	// Revalidate is how long the rights, ACL and annotations of a folder
	// whose state did not move are trusted before a check reads them
	// again. Zero means every check reads them.
	Revalidate time.Duration
	// RevalidateWatched is how long an owner whose folders a NOTIFY
	// connection all watches goes without a check when the server
	// announces no change (see SetWatched). Dovecot announces a SETACL and
	// a SETMETADATA on a watched folder as it does a new message, so this
	// only bounds what the server could change without a word (a global
	// ACL file, say). Zero means Revalidate.
	RevalidateWatched time.Duration
	// Discovery is how often Run looks for new and departed owners and
	// re-reads the owners no request asked for since (default
	// DefaultDiscovery).
	Discovery time.Duration
	// CheckBudget is how long a request waits for a check of states it
	// already holds an answer for, and for the read of a folder the check
	// found changed; past it, the request gets that answer marked stale
	// while the check or read goes on in the background. Zero means it
	// waits.
	CheckBudget time.Duration
	// NegativeTTL is how long an owner that a look-up did not find stays
	// unknown to requests (discovery may still find them). Zero means
	// every request for an unknown owner may look them up, within the
	// look-up rate (lookupRate).
	NegativeTTL time.Duration
	// Patterns select calendar folders by their path below the owner's
	// namespace (path.Match syntax on "/"-separated names). Nil means
	// "Calendar" and its subfolders.
	Patterns []string
	// Timeout bounds one shared refresh, whoever waits for it (default 60 s).
	Timeout time.Duration
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// StateDir, when set, is where snapshots and the directory of
	// owners persist across restarts (persist.go, dirstate.go).
	StateDir string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Policy decides what each requester sees of each folder; nil is the
	// zero Policy (free/busy for everyone, details for owners only).
	Policy *acl.Policy
	// Proxy is the proxy's login. It is not a person: the folders it may
	// read count for no free/busy of its own (incidences-for), and its
	// rights never make a folder's annotations untrusted.
	Proxy string
	// Metadata returns the server's rule for who may write a folder's
	// shared annotations (see acl.AnnotationsTrusted): the Kolab
	// annotations of a folder count only where its ACL lets no one else
	// write them but those who may delete its messages. Nil, or a nil
	// rule, is RFC 5464's (acl.RFCMetadata), which Dovecot follows.
	Metadata func() acl.MetadataRule
	// MaxBytes bounds the heap the cache's snapshots and rendered
	// answers hold (see snapMemory in snapshot.go); zero means no bound
	// but the answers' own (maxRendered).
	MaxBytes int64
}

// DefaultPatterns are the folder paths published when none are configured.
var DefaultPatterns = []string{"Calendar", "Calendar/*"}

// Errors of the cache, for the HTTP layer to map.
var (
	// ErrNotFound: no such owner or folder among the published ones.
	ErrNotFound = errors.New("feed: not found")
	// ErrUnavailable: IMAP could not be read and there is no earlier answer.
	ErrUnavailable = errors.New("feed: IMAP unavailable")
)

// Cache is safe for concurrent use.
type Cache struct {
	opts  Options
	log   *slog.Logger
	m     *metrics.Metrics
	group singleflight.Group

	mu sync.Mutex
	// dir is what the cache knows of the folders, owner by owner (see
	// owners.go); guarded by mu.
	dir directory
	// snaps holds one snapshot per folder name, changed only through
	// setSnap and dropSnap; guarded by mu.
	snaps map[string]*Snapshot
	// mem accounts for snaps; guarded by mu.
	mem snapMemory

	answers *lru // rendered answers

	// down is set while IMAP cannot be read; guarded by mu.
	down bool
	// loaded records the folders whose persisted snapshot was tried;
	// guarded by mu.
	loaded map[string]bool
	// annotationsNoted records the folders whose untrusted annotations
	// were logged; guarded by mu.
	annotationsNoted map[string]bool
	// aclNoted records the folders whose missing ACL was logged; guarded
	// by mu.
	aclNoted map[string]bool
	// pushed is when the server last announced that any folder may have
	// changed (Changed("")): no owner check that started before it is
	// fresh. Guarded by mu.
	pushed time.Time
	// hits counts requests per folder since the last call of Hot;
	// guarded by mu.
	hits map[string]int
	// discoverNow asks Run for a discovery pass (a token).
	discoverNow chan struct{}
	// rep is what the cache shares with other replicas; nil without
	// Redis (see Replicate).
	rep atomic.Pointer[replicas]
	// eager is set while this replica holds the IMAP watch (Eager).
	eager atomic.Bool
	// restored is when the persisted directory was read into dir (zero
	// when none was), restoredPass when the discovery pass it holds
	// started; dirDirty is set when owners' folders changed since the
	// directory was last written. Guarded by mu.
	restored, restoredPass time.Time
	dirDirty               bool
	// passing is closed when the discovery pass under way ends; nil when
	// none is. Guarded by mu.
	passing chan struct{}
	// saveMu orders the writes of the directory file (saveDirectory).
	saveMu sync.Mutex
	// roots are the folders look-ups ask about (patternRoots).
	roots []string
}

// New makes a cache. It does no IMAP I/O; with Options.StateDir, it
// reads the directory persisted there (restoreDirectory).
func New(opts Options) *Cache {
	if opts.Patterns == nil {
		opts.Patterns = DefaultPatterns
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Policy == nil {
		opts.Policy = &acl.Policy{}
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Discovery <= 0 {
		opts.Discovery = DefaultDiscovery
	}
	c := &Cache{opts: opts, log: opts.Logger.With("component", "feed"), m: opts.Metrics,
		snaps: map[string]*Snapshot{}, answers: newLRU(answerBound(opts.MaxBytes)), loaded: map[string]bool{}, aclNoted: map[string]bool{}, annotationsNoted: map[string]bool{}, hits: map[string]int{},
		dir: newDirectory(), discoverNow: make(chan struct{}, 1), roots: patternRoots(opts.Patterns)}
	c.restoreDirectory()
	return c
}

// shared runs f once for all concurrent callers with the same key, on a
// context detached from any one caller (so the first caller giving up does
// not fail the others) and bounded by the cache's timeout.
func (c *Cache) shared(ctx context.Context, op, key string, f func(context.Context) (any, error)) (any, error) {
	ch := c.group.DoChan(op+"\x00"+key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		return f(ctx)
	})
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case r := <-ch:
		if r.Shared {
			c.m.Shared.WithLabelValues(op).Inc()
		}
		return r.Val, r.Err
	}
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
