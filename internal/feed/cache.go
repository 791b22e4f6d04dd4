// Package feed assembles what fbpub publishes, free/busy answers and .ics
// feeds, from snapshots of the IMAP folders it may read, and caches them.
//
// A Cache keeps, per published folder, the parsed calendar objects and the
// IMAP state they came from. A request checks the states of the folders
// of the owner it reads at most once per check interval (see owners.go:
// what a request costs does not depend on the size of the directory); a
// folder whose state moved is fetched again,
// and concurrent requests for the same work share one IMAP round trip and
// one render (golang.org/x/sync/singleflight). The state is always read
// before the fetch, so a change that lands during a fetch moves the state
// past the snapshot's and is seen at the next check.
package feed

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-ical"
	"golang.org/x/sync/singleflight"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
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
	// LookupOwner does the same on a session that logs in for it, for an
	// owner the cache does not know yet.
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
	// Discovery is how often Run looks for new and departed owners and
	// re-reads the owners no request asked for since (default
	// DefaultDiscovery).
	Discovery time.Duration
	// CheckBudget is how long a request waits for a check of states it
	// already holds an answer for; past it, the request gets that answer
	// marked stale while the check goes on in the background. Zero means
	// it waits for the check.
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
	// StateDir, when set, is where snapshots persist across restarts.
	StateDir string
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Policy decides what each requester sees of each folder; nil is the
	// zero Policy (free/busy for everyone, details for owners only).
	Policy *acl.Policy
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
	// ACL is the folder's access control list, when the proxy may read it
	// (ACLKnown): it decides who else sees what (Options.Policy).
	ACL      acl.ACL
	ACLKnown bool
	// IncidencesFor is Kolab's incidences-for annotation: whose
	// free/busy the folder counts for (see CountsFor).
	IncidencesFor string
	State         imapstore.State

	// checked is when the folder list holding this entry was read.
	checked time.Time
}

// CountsFor reports whether f's events make user busy, as Kolab's
// incidences-for annotation says: "readers", every user with the r right
// on the folder; "admins", every user with the a right; "nobody", no one;
// unset, the owner alone. The owner counts for "readers" and "admins"
// too. Rights come from the folder's ACL; where it is unknown, only the
// owner counts. groups and semantics are those of the access policy.
func (f *Folder) CountsFor(user string, p *acl.Policy) bool {
	isOwner := f.Owner != "" && strings.EqualFold(f.Owner, user)
	var need acl.Rights
	switch f.IncidencesFor {
	case "nobody":
		return false
	case "readers":
		need = acl.Read
	case "admins":
		need = acl.Administer
	default:
		return isOwner
	}
	if isOwner {
		return true
	}
	if !f.ACLKnown || user == "" {
		return false
	}
	var o *acl.Options
	if p.Semantics != nil {
		o = p.Semantics(f.Owner)
	}
	return f.ACL.EffectiveWith(p.Groups.Requester(user), o).Has(need)
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
	// dir is what the cache knows of the folders, owner by owner (see
	// owners.go); guarded by mu.
	dir directory
	// snaps holds one snapshot per folder name; guarded by mu.
	snaps map[string]*Snapshot

	answers *lru // rendered answers

	// down is set while IMAP cannot be read; guarded by mu.
	down bool
	// loaded records the folders whose persisted snapshot was tried;
	// guarded by mu.
	loaded map[string]bool
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
	return &Cache{opts: opts, log: opts.Logger.With("component", "feed"), m: opts.Metrics,
		snaps: map[string]*Snapshot{}, answers: newLRU(maxRendered), loaded: map[string]bool{}, aclNoted: map[string]bool{}, hits: map[string]int{},
		dir: newDirectory(), discoverNow: make(chan struct{}, 1)}
}

// Snapshot is the parsed content of one folder at one state. Snapshots are
// immutable once published; a refresh builds a new one.
type Snapshot struct {
	Folder Folder
	State  imapstore.State
	// Objects are the calendar objects of the folder's messages that are
	// not flagged \Deleted, ordered by message UID.
	Objects []*calendar.Object
	// Fetched is when the folder was read.
	Fetched time.Time
	// Digest summarises the UIDs and \Deleted flags the snapshot holds;
	// on a server without CONDSTORE it is what reveals a flag change.
	Digest string

	// uids lists the folder's messages in ascending UID order, and msgs
	// holds each one's parsed content at the same index: slices, not a
	// map, because every sync and render walks them all.
	uids []uint32
	msgs []message
	// checked is the folder-list check this snapshot was validated for.
	checked time.Time
	// key names the folder and its content in render keys (setKey).
	key string
}

// setKey computes s.key once the snapshot is complete.
func (s *Snapshot) setKey() {
	s.key = s.Folder.Name + "=" + stateKey(s.State) + "/" + s.Digest + ";"
}

type message struct {
	objects []*calendar.Object
	deleted bool
	// events is the objects' VEVENTs as feed text (alarms removed),
	// encoded once when the message is parsed, so that rendering a feed
	// after a change re-encodes only what changed. zones are the
	// VTIMEZONEs those events refer to, by TZID.
	events []byte
	zones  map[string]*ical.Component
	// restricted says whether an event is confidential or private: only
	// then does the reader view differ from events.
	restricted bool
	// lazy holds the busy and reader views (see views.go), encoded the
	// first time a requester needs them: most folders are only ever read
	// by their owners or only ever asked for free/busy, which needs no
	// encoded view at all. Copies of a message share it.
	lazy *lazyViews
}

var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type lazyViews struct {
	busyOnce, readerOnce sync.Once
	busy, reader         []byte
}

// view returns the message's events as a requester with access a sees
// them.
func (m *message) view(a acl.Access) []byte {
	switch {
	case m.lazy == nil: // no calendar data
		return m.events
	case a >= acl.OwnerAccess:
		return m.events
	case a == acl.ReadAccess && m.restricted:
		m.lazy.readerOnce.Do(func() {
			var b bytes.Buffer
			enc := calendar.NewEncoder(&b)
			for _, o := range m.objects {
				for _, ev := range readerEvents(o) {
					enc.Encode(ev)
				}
			}
			m.lazy.reader = b.Bytes()
		})
		return m.lazy.reader
	case a == acl.ReadAccess:
		return m.events
	}
	m.lazy.busyOnce.Do(func() {
		var b bytes.Buffer
		enc := calendar.NewEncoder(&b)
		for _, o := range m.objects {
			for _, ev := range o.Events() {
				enc.Encode(busyOnly(ev))
			}
		}
		m.lazy.busy = b.Bytes()
	})
	return m.lazy.busy
}

// newMessage prepares a parsed message for rendering.
func newMessage(objs []*calendar.Object) message {
	compact(objs)
	m := message{objects: objs, lazy: &lazyViews{}}
	// Encoded in a pooled buffer, then copied once at its final size.
	b := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(b)
	b.Reset()
	enc := calendar.NewEncoder(b)
	for _, o := range objs {
		for _, ev := range o.Events() {
			enc.Encode(withoutAlarms(ev))
		}
		if r, _ := restricted(o); r {
			m.restricted = true
		}
	}
	if b.Len() > 0 {
		m.events = bytes.Clone(b.Bytes())
	}
	for _, tz := range calendar.UsedTimezones(objs) {
		if m.zones == nil {
			m.zones = map[string]*ical.Component{}
		}
		id, err := tz.Props.Text(ical.PropTimezoneID)
		if err != nil {
			id = tz.Props.Get(ical.PropTimezoneID).Value
		}
		m.zones[id] = tz
	}
	return m
}

// compact drops the empty parameter map that go-ical's decoder makes for
// every property of the trees objs hold (and their timezones'), before a
// snapshot keeps them for as long as the folder is published: about a
// seventh of the heap a cached event costs (bench/README.md, bench/scale).
// Nothing edits a cached tree (calendar.Object is immutable), and every
// reader of a property's parameters (Get, range, len) reads a nil map as
// an empty one; code that adds parameters does so on properties of its own.
// It runs before the message is shared, so it needs no lock.
func compact(objs []*calendar.Object) {
	var seen map[*ical.Component]bool // VTIMEZONEs are shared by the objects of a message
	var walk func(c *ical.Component)
	walk = func(c *ical.Component) {
		if c == nil {
			return
		}
		if c.Name == ical.CompTimezone {
			if seen[c] {
				return
			}
			if seen == nil {
				seen = map[*ical.Component]bool{}
			}
			seen[c] = true
		}
		for _, ps := range c.Props {
			for i := range ps {
				if len(ps[i].Params) == 0 {
					ps[i].Params = nil
				}
			}
		}
		for _, ch := range c.Children {
			walk(ch)
		}
	}
	for _, o := range objs {
		walk(o.Master)
		for _, list := range [][]*ical.Component{o.Overrides, o.FreeBusy, o.Availability, o.Timezones} {
			for _, c := range list {
				walk(c)
			}
		}
	}
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

// noteACL says once per folder, in the log, that its ACL cannot be used:
// its details then go to its owner and the configured readers only.
func (c *Cache) noteACL(f Folder, err error) {
	c.mu.Lock()
	seen := c.aclNoted[f.Name]
	c.aclNoted[f.Name] = true
	c.mu.Unlock()
	if seen {
		return
	}
	if err != nil {
		c.log.Warn("folder ACL unreadable; details go to the owner and configured readers only", "folder", f.Name, "err", err)
		return
	}
	c.log.Info("folder ACL not available to the proxy (GETACL needs the a right); details go to the owner and configured readers only", "folder", f.Name)
}

// Decision says whether a folder the proxy can see is published, and if
// not, why.
type Decision struct {
	Folder Folder
	// Reason is empty for a published folder.
	Reason string
	// ACLError says why the folder's ACL, though read, is not used.
	ACLError error
	hasState bool
}

// decide applies the publication rules to the folders the proxy sees: a
// calendar folder with an owner — a folder whose Kolab folder-type
// annotation says event (or event.*) whatever its name, one that names
// another type never, one without annotation by the configured patterns — that the
// proxy may list and read (l and r; on a server without ACLs, any folder
// it can select).
func (c *Cache) decide(all []imapstore.Folder) []Decision {
	var out []Decision
	for _, f := range all {
		segs := strings.Split(f.Path, string(delimOr(f.Delim)))
		d := Decision{Folder: Folder{Name: f.Name, Owner: f.Owner, Segments: segs, Rights: f.Rights, RightsKnown: f.RightsKnown, State: f.State,
			IncidencesFor: f.IncidencesFor}, hasState: f.HasState}
		if f.ACLKnown {
			// A partly readable ACL is not used: a dropped negative
			// entry would show too much.
			if a, err := acl.Parse(f.ACL); err == nil {
				d.Folder.ACL, d.Folder.ACLKnown = a, true
			} else {
				d.ACLError = err
			}
		}
		switch {
		case f.Type != "" && f.Type != "event" && !strings.HasPrefix(f.Type, "event."):
			d.Reason = fmt.Sprintf("a Kolab %q folder, not a calendar", f.Type)
		case f.Type == "" && !c.isCalendar(segs):
			d.Reason = "not a calendar folder (publish.folders)"
		case f.Owner == "" && f.IncidencesFor != "readers" && f.IncidencesFor != "admins":
			d.Reason = "no owner: a shared folder outside any user's namespace, and no incidences-for annotation says whose free/busy it counts for"
		case f.RightsKnown && !(strings.ContainsRune(f.Rights, 'l') && strings.ContainsRune(f.Rights, 'r')):
			d.Reason = fmt.Sprintf("the proxy may not read it (rights %q, needs l and r)", f.Rights)
		}
		out = append(out, d)
	}
	return out
}

// Explain reads the folder list now and says, for every folder the proxy
// can see, whether it is published and why not: what `fbpub check` prints.
func (c *Cache) Explain(ctx context.Context) ([]Decision, error) {
	all, err := c.opts.Source.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return c.decide(all), nil
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

// Snapshot returns f's content at its current state. With CONDSTORE an
// unchanged (UIDVALIDITY, HIGHESTMODSEQ) means an unchanged folder; without
// it, a flag change moves no state, so the folder is re-read (UIDs and
// flags only, plus any new message) once per folder-list check.
func (c *Cache) Snapshot(ctx context.Context, f Folder) (*Snapshot, error) {
	c.mu.Lock()
	prev := c.snaps[f.Name]
	c.hits[f.Name]++
	c.mu.Unlock()
	if prev == nil {
		if prev = c.loadOnce(f); prev != nil {
			c.mu.Lock()
			if c.snaps[f.Name] == nil {
				c.snaps[f.Name] = prev
			}
			prev = c.snaps[f.Name]
			c.mu.Unlock()
		}
	}
	if prev.covers(f) {
		return prev, nil
	}
	return c.syncShared(ctx, f, prev)
}

// syncShared is Snapshot's slow path, apart so that the closure it makes
// (and the copies of f and prev the closure holds) are only allocated here.
func (c *Cache) syncShared(ctx context.Context, f Folder, prev *Snapshot) (*Snapshot, error) {
	// With CONDSTORE the state names the content, so every request that
	// saw this state may share one sync. Without it, the same state may
	// hide a flag change, so only requests of one check share.
	key := f.Name + "\x00" + stateKey(f.State)
	if f.State.HighestModSeq == 0 {
		key += "\x00" + f.checked.String()
	}
	v, err := c.shared(ctx, "sync", key, func(ctx context.Context) (any, error) {
		// A request that found the snapshot stale may get here just
		// after a sync for the same state finished: look again first,
		// or it would sync a second time (seen by TestHerd under load).
		c.mu.Lock()
		cur := c.snaps[f.Name]
		c.mu.Unlock()
		if cur.covers(f) {
			return cur, nil
		}
		if cur != nil {
			prev = cur
		}
		return c.sync(ctx, f, prev)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Snapshot), nil
}

func stateKey(s imapstore.State) string {
	return fmt.Sprintf("%d.%d.%d.%d", s.UIDValidity, s.HighestModSeq, s.UIDNext, s.Messages)
}

// sync brings folder f up to date. With a previous snapshot at the same
// UIDVALIDITY it fetches only what changed: the UID list, the flags of
// changed messages (CHANGEDSINCE with CONDSTORE, all flags without), and
// the calendar parts of new messages. Otherwise it reads the folder whole.
func (c *Cache) sync(ctx context.Context, f Folder, prev *Snapshot) (*Snapshot, error) {
	t0 := c.opts.Now()
	start := time.Now()
	kind := "incremental"
	if prev == nil || prev.State.UIDValidity != f.State.UIDValidity {
		prev, kind = nil, "full"
	}
	l, parsed, err := c.fetch(ctx, f, prev)
	if err == nil && prev != nil && l.State.UIDValidity != prev.State.UIDValidity {
		// UIDVALIDITY moved under us: every UID we knew is void.
		prev, kind = nil, "full"
		l, parsed, err = c.fetch(ctx, f, nil)
	}
	if err != nil {
		c.m.Syncs.WithLabelValues(kind, "error").Inc()
		if errors.Is(err, imapstore.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s := &Snapshot{Folder: f, State: l.State, Fetched: t0, checked: f.checked,
		uids: make([]uint32, 0, len(l.UIDs)), msgs: make([]message, 0, len(l.UIDs)), Objects: make([]*calendar.Object, 0, len(l.UIDs))}
	fresh := make(map[uint32]imapstore.Message, len(l.Messages))
	for _, m := range l.Messages {
		fresh[m.UID] = m
	}
	d := sha256.New()
	var line []byte
	next := 0 // l.UIDs ascend, like prev's: one walk finds the known ones
	for _, uid := range l.UIDs {
		var m message
		if old, ok := prev.messageFrom(&next, uid); ok {
			m = old
		} else if pm, ok := parsed.get(uid); ok {
			m = pm
		} else if fm, ok := fresh[uid]; ok {
			m = newMessage(c.parse(f, fm))
		}
		if del, ok := l.Deleted[uid]; ok || l.FlagsComplete {
			m.deleted = del
		}
		s.uids = append(s.uids, uid)
		s.msgs = append(s.msgs, m)
		line = strconv.AppendUint(line[:0], uint64(uid), 10)
		if m.deleted {
			d.Write(append(line, '-', ';'))
			continue
		}
		d.Write(append(line, ';'))
		s.Objects = append(s.Objects, m.objects...)
	}
	s.Digest = hex.EncodeToString(d.Sum(nil)[:12])
	s.setKey()
	if prev != nil && prev.State == s.State && prev.Digest == s.Digest {
		kind = "unchanged"
		s.Fetched = prev.Fetched
	}
	c.m.Syncs.WithLabelValues(kind, "ok").Inc()
	c.m.SyncDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	c.mu.Lock()
	if old := c.snaps[f.Name]; old == nil || !old.checked.After(s.checked) {
		c.snaps[f.Name] = s
	}
	c.mu.Unlock()
	if kind != "unchanged" {
		c.save(s)
	}
	return s, nil
}

// fetch reads folder f (incrementally from prev, when given), parsing the
// messages that arrive whole on every core while the rest is read. It
// returns the listing and the messages parsed so far, by UID.
func (c *Cache) fetch(ctx context.Context, f Folder, prev *Snapshot) (*imapstore.Listing, parsedSet, error) {
	q := c.query(prev)
	// Messages go to the workers in batches, and each worker keeps what
	// it parsed until the end: a hand-off per message woke a goroutine
	// per message, a measurable share of a cold read.
	const batch = 64
	jobs := make(chan []imapstore.Message, 8)
	results := make(parsedSet, runtime.GOMAXPROCS(0))
	if prev == nil && f.State.Messages > 0 {
		// A folder read from scratch: its lists are sized once for
		// their share of the count the check read (with a quarter
		// more, as the shares are uneven), not grown by copying.
		per := int(min(f.State.Messages, 1<<20))*5/4/len(results) + batch
		for i := range results {
			results[i].uids = make([]uint32, 0, per)
			results[i].msgs = make([]message, 0, per)
		}
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			for msgs := range jobs {
				for _, msg := range msgs {
					results[i].add(msg.UID, newMessage(c.parse(f, msg)))
				}
			}
		})
	}
	var pending []imapstore.Message
	q.Received = func(m imapstore.Message) {
		pending = append(pending, m)
		if len(pending) == batch {
			jobs <- pending
			pending = make([]imapstore.Message, 0, batch)
		}
	}
	l, err := c.opts.Source.Fetch(ctx, f.Name, q)
	if len(pending) > 0 {
		jobs <- pending
	}
	close(jobs)
	wg.Wait()
	return l, results, err
}

// parsedSet holds the messages the workers parsed, one list per worker.
// Messages arrive, and go to the workers in batches, in ascending UID
// order, so each list ascends: a walk in UID order finds each message
// at the head of one of them, without the maps whose inserts and look-ups
// were a measurable share of the work after the last byte.
type parsedSet []parsedList

type parsedList struct {
	uids     []uint32
	msgs     []message
	next     int  // where the walk goes on
	unsorted bool // a UID came out of order: look up by binary search
}

func (p *parsedList) add(uid uint32, m message) {
	if n := len(p.uids); n > 0 && p.uids[n-1] >= uid {
		p.unsorted = true
	}
	p.uids = append(p.uids, uid)
	p.msgs = append(p.msgs, m)
}

// get returns the message with uid. Called with ascending UIDs, it finds
// each at the head of a list.
func (p parsedSet) get(uid uint32) (message, bool) {
	for i := range p {
		l := &p[i]
		if l.unsorted {
			// Sort the list once, then go on as for any other.
			order := make([]int, len(l.uids))
			for j := range order {
				order[j] = j
			}
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(l.uids[a], l.uids[b]) })
			uids, msgs := make([]uint32, len(order)), make([]message, len(order))
			for j, k := range order {
				uids[j], msgs[j] = l.uids[k], l.msgs[k]
			}
			l.uids, l.msgs, l.next, l.unsorted = uids, msgs, 0, false
		}
		if l.next > 0 && l.next <= len(l.uids) && l.uids[l.next-1] >= uid {
			// Asked out of order: look it up.
			if j, ok := slices.BinarySearch(l.uids, uid); ok {
				return l.msgs[j], true
			}
			continue
		}
		for l.next < len(l.uids) && l.uids[l.next] < uid {
			l.next++
		}
		if l.next < len(l.uids) && l.uids[l.next] == uid {
			return l.msgs[l.next], true
		}
	}
	return message{}, false
}

// loadOnce loads folder f's persisted snapshot, once per folder for the
// life of the cache.
func (c *Cache) loadOnce(f Folder) *Snapshot {
	if c.opts.StateDir == "" {
		return nil
	}
	v, _, _ := c.group.Do("load\x00"+f.Name, func() (any, error) {
		c.mu.Lock()
		done := c.loaded[f.Name]
		c.loaded[f.Name] = true
		c.mu.Unlock()
		if done {
			return (*Snapshot)(nil), nil
		}
		return c.load(f), nil
	})
	return v.(*Snapshot)
}

// wholeBelow bounds what the first round trip of a folder read from
// scratch fetches of each message: the message whole, or the part the
// folder keeps its calendar in (see imapstore.Query.WholeBelow). Calendar
// messages are small, and one round trip instead of a body structure
// first and then the parts is much faster (see BenchmarkFolder10k).
const wholeBelow = 64 << 10

func (c *Cache) query(prev *Snapshot) imapstore.Query {
	q := imapstore.Query{Want: calendar.IsCalendarType, WholeBelow: wholeBelow}
	if prev != nil {
		q.Known = func(uid uint32) bool { _, ok := slices.BinarySearch(prev.uids, uid); return ok }
		q.ChangedSince = prev.State.HighestModSeq
		q.Previous = prev.uids
	}
	return q
}

// covers reports whether s is at least as new as the state f was checked
// at. With CONDSTORE a snapshot whose HIGHESTMODSEQ is not below the
// checked one is: it was read after that check. (Dovecot's LIST-STATUS
// may answer from its mailbox list index, which can lag a moment behind
// the SELECT the snapshot was read at; equality alone would then resync
// for nothing.) Without CONDSTORE only an equal state read at or after
// the check will do, since flag changes move no state.
func (s *Snapshot) covers(f Folder) bool {
	if s == nil || s.State.UIDValidity != f.State.UIDValidity {
		return false
	}
	if f.State.HighestModSeq != 0 {
		return s.State.HighestModSeq >= f.State.HighestModSeq
	}
	return s.State == f.State && !s.checked.Before(f.checked)
}

// messageFrom returns the message with uid, looking from index *next on
// and moving *next past it: callers asking for ascending UIDs walk the
// snapshot once.
func (s *Snapshot) messageFrom(next *int, uid uint32) (message, bool) {
	if s == nil {
		return message{}, false
	}
	i := *next
	for i < len(s.uids) && s.uids[i] < uid {
		i++
	}
	*next = i
	if i < len(s.uids) && s.uids[i] == uid {
		*next = i + 1
		return s.msgs[i], true
	}
	return message{}, false
}

// parse turns one message's calendar parts into objects. A part that
// cannot be used is skipped, counted and logged by folder and UID, never
// by content.
func (c *Cache) parse(f Folder, msg imapstore.Message) []*calendar.Object {
	var out []*calendar.Object
	if msg.Raw != nil {
		c.m.MessagesFetched.Inc()
		c.m.BytesFetched.Add(float64(len(msg.Raw)))
		parts, err := calendar.MessageParts(msg.Raw)
		if err != nil {
			c.failed(f, msg.UID, err)
			return nil
		}
		for _, p := range parts {
			objs, err := calendar.PartObjects(p)
			if err != nil {
				c.failed(f, msg.UID, err)
				continue
			}
			out = append(out, objs...)
		}
		return out
	}
	if len(msg.Parts) == 0 {
		// No part of a calendar type, as a whole message with none is.
		c.failed(f, msg.UID, calendar.ErrNoCalendar)
		return nil
	}
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
