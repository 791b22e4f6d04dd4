// Package feed assembles what fbpub publishes, free/busy answers and .ics
// feeds, from snapshots of the IMAP folders it may read, and caches them.
//
// A Cache keeps, per published folder, the parsed calendar objects and the
// IMAP state they came from. A request checks the folder states at most
// once per check interval; a folder whose state moved is fetched again,
// and concurrent requests for the same work share one IMAP round trip and
// one render (golang.org/x/sync/singleflight). The state is always read
// before the fetch, so a change that lands during a fetch moves the state
// past the snapshot's and is seen at the next check.
package feed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/metrics"
)

// Source is the IMAP side of the cache: *imapstore.Pool implements it.
type Source interface {
	Folders(ctx context.Context) ([]imapstore.Folder, error)
	States(ctx context.Context, names []string) (map[string]imapstore.State, error)
	Fetch(ctx context.Context, folder string, q imapstore.Query) (*imapstore.Listing, error)
}

// Options configure a Cache.
type Options struct {
	Source Source
	// CheckInterval is how long folder states are trusted before a request
	// reads them again. Zero means every request checks.
	CheckInterval time.Duration
	// Patterns select calendar folders by their path below the owner's
	// namespace (path.Match syntax on "/"-separated names). Nil means
	// "Calendar" and its subfolders.
	Patterns []string
	// Timeout bounds one shared refresh, whoever waits for it (default 60 s).
	Timeout time.Duration
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
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

// Folder is a published calendar folder.
type Folder struct {
	// Name is the IMAP folder name (decoded).
	Name string
	// Owner is whose calendar it is; Segments its path below the owner's
	// namespace, split at the server's hierarchy delimiter.
	Owner    string
	Segments []string
	Rights   string
	// RightsKnown is false on servers without ACL support.
	RightsKnown bool
	State       imapstore.State
}

// Path is the folder's path with "/" separators, as it appears in URLs.
func (f *Folder) Path() string { return strings.Join(f.Segments, "/") }

// Cache is safe for concurrent use.
type Cache struct {
	opts  Options
	log   *slog.Logger
	m     *metrics.Metrics
	group singleflight.Group

	mu sync.Mutex
	// dir is the published folder list and when it was read; guarded by mu.
	dir     []Folder
	dirTime time.Time
	// snaps holds one snapshot per folder name; guarded by mu.
	snaps map[string]*Snapshot

	answers *lru // rendered answers
}

// New makes a cache. It does no I/O.
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
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cache{opts: opts, log: opts.Logger.With("component", "feed"), m: opts.Metrics,
		snaps: map[string]*Snapshot{}, answers: newLRU(maxRendered)}
}

// Snapshot is the parsed content of one folder at one state. Snapshots are
// immutable once published; a refresh builds a new one.
type Snapshot struct {
	Folder  Folder
	State   imapstore.State
	Objects []*calendar.Object
	// Fetched is when the folder was read.
	Fetched time.Time
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

// Folders returns the published folders, read again when the check
// interval has passed.
func (c *Cache) Folders(ctx context.Context) ([]Folder, error) {
	c.mu.Lock()
	if c.dir != nil && c.opts.Now().Sub(c.dirTime) < c.opts.CheckInterval {
		dir := c.dir
		c.mu.Unlock()
		return dir, nil
	}
	c.mu.Unlock()
	v, err := c.shared(ctx, "state", "", c.readFolders)
	if err != nil {
		return nil, err
	}
	return v.([]Folder), nil
}

func (c *Cache) readFolders(ctx context.Context) (any, error) {
	checked := c.opts.Now()
	all, err := c.opts.Source.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var dir []Folder
	var needState []string
	for _, f := range all {
		segs := strings.Split(f.Path, string(delimOr(f.Delim)))
		if f.Owner == "" || !c.isCalendar(segs) {
			continue
		}
		if f.RightsKnown && !(strings.ContainsRune(f.Rights, 'l') && strings.ContainsRune(f.Rights, 'r')) {
			continue
		}
		if !f.HasState {
			needState = append(needState, f.Name)
		}
		dir = append(dir, Folder{Name: f.Name, Owner: f.Owner, Segments: segs, Rights: f.Rights, RightsKnown: f.RightsKnown, State: f.State})
	}
	if len(needState) > 0 {
		states, err := c.opts.Source.States(ctx, needState)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		for i := range dir {
			if st, ok := states[dir[i].Name]; ok {
				dir[i].State = st
			}
		}
	}
	slices.SortFunc(dir, func(a, b Folder) int { return strings.Compare(a.Name, b.Name) })
	c.mu.Lock()
	c.dir, c.dirTime = dir, checked
	// Forget snapshots of folders no longer published (a revoked grant).
	for name := range c.snaps {
		if !slices.ContainsFunc(dir, func(f Folder) bool { return f.Name == name }) {
			delete(c.snaps, name)
		}
	}
	c.mu.Unlock()
	c.m.FoldersPublished.Set(float64(len(dir)))
	return dir, nil
}

func delimOr(d rune) rune {
	if d == 0 {
		return '/'
	}
	return d
}

func (c *Cache) isCalendar(segs []string) bool {
	p := strings.Join(segs, "/")
	for _, pat := range c.opts.Patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// Owned returns the published folders of owner (compared without regard
// to case), or ErrNotFound.
func (c *Cache) Owned(ctx context.Context, owner string) ([]Folder, error) {
	dir, err := c.Folders(ctx)
	if err != nil {
		return nil, err
	}
	var out []Folder
	for _, f := range dir {
		if strings.EqualFold(f.Owner, owner) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Snapshot returns f's content at its current state, fetching the folder
// again when its state moved since the last snapshot.
func (c *Cache) Snapshot(ctx context.Context, f Folder) (*Snapshot, error) {
	c.mu.Lock()
	s := c.snaps[f.Name]
	c.mu.Unlock()
	if s != nil && s.State == f.State {
		return s, nil
	}
	v, err := c.shared(ctx, "sync", f.Name+"\x00"+stateKey(f.State), func(ctx context.Context) (any, error) {
		return c.sync(ctx, f)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Snapshot), nil
}

func stateKey(s imapstore.State) string {
	return fmt.Sprintf("%d.%d.%d.%d", s.UIDValidity, s.HighestModSeq, s.UIDNext, s.Messages)
}

// sync reads folder f in full and parses it.
func (c *Cache) sync(ctx context.Context, f Folder) (*Snapshot, error) {
	t0 := c.opts.Now()
	l, err := c.opts.Source.Fetch(ctx, f.Name, imapstore.Query{Want: calendar.IsCalendarType})
	kind := "full"
	if err != nil {
		c.m.Syncs.WithLabelValues(kind, "error").Inc()
		if errors.Is(err, imapstore.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s := &Snapshot{Folder: f, State: l.State, Fetched: t0}
	for _, msg := range l.Messages {
		if msg.Deleted {
			continue
		}
		s.Objects = append(s.Objects, c.parse(f, msg)...)
	}
	slices.SortStableFunc(s.Objects, func(a, b *calendar.Object) int { return strings.Compare(a.UID, b.UID) })
	c.m.Syncs.WithLabelValues(kind, "ok").Inc()
	c.m.SyncDuration.WithLabelValues(kind).Observe(time.Since(t0).Seconds())
	c.mu.Lock()
	if old := c.snaps[f.Name]; old == nil || !old.Fetched.After(t0) {
		c.snaps[f.Name] = s
	}
	c.mu.Unlock()
	return s, nil
}

// parse turns one message's calendar parts into objects. A part that
// cannot be used is skipped, counted and logged by folder and UID, never
// by content.
func (c *Cache) parse(f Folder, msg imapstore.Message) []*calendar.Object {
	var out []*calendar.Object
	for _, p := range msg.Parts {
		c.m.MessagesFetched.Inc()
		c.m.BytesFetched.Add(float64(len(p.Body)))
		if p.TooLarge {
			c.failed(f, msg.UID, calendar.ErrTooLarge)
			continue
		}
		objs, err := calendar.PartObjects(calendar.Part{
			MediaType: p.MediaType, Params: p.Params, Body: calendar.DecodeTransfer(p.Encoding, p.Body),
		})
		if err != nil {
			c.failed(f, msg.UID, err)
			continue
		}
		out = append(out, objs...)
	}
	return out
}

func (c *Cache) failed(f Folder, uid uint32, err error) {
	reason := Reason(err)
	c.m.ParseFailures.WithLabelValues(reason).Inc()
	c.log.Warn("skipped a message that could not be used", "folder", f.Name, "uid", uid, "reason", reason)
}

// Reason names the category of a parse error for logs and metrics.
func Reason(err error) string {
	switch {
	case errors.Is(err, calendar.ErrTooLarge):
		return "too_large"
	case errors.Is(err, calendar.ErrNoCalendar):
		return "no_calendar"
	case errors.Is(err, calendar.ErrUnsupported):
		return "unsupported"
	case errors.Is(err, calendar.ErrMalformed):
		return "malformed"
	}
	return "bad_value"
}

// etag derives an entity tag from the states of the folders that went into
// an answer and what identifies the answer itself.
func etag(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}
