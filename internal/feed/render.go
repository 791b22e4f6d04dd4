package feed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// Rendered is a rendered response body with what HTTP caching needs. It
// is shared by every request that gets it, and never modified.
type Rendered struct {
	Body []byte
	// ETag is a strong entity tag derived from the IMAP states that went
	// into the answer and what was asked; equal ETags mean equal content
	// (up to DTSTAMP).
	ETag string
	// Modified is when fbpub first saw the newest of those states.
	Modified time.Time
	// hitAnswer and staleAnswer are the answers of the requests that find
	// this rendering cached (see cached), set by newRendered.
	hitAnswer, staleAnswer Answer

	gzipOnce sync.Once
	gzipped  []byte
	gzipSize atomic.Int64 // cap(gzipped), once made: for the answer cache's size
}

// newRendered returns the Rendered of body, with the answers that
// requests finding it cached share (see cached).
func newRendered(body []byte, etag string, modified time.Time) *Rendered {
	r := &Rendered{Body: body, ETag: etag, Modified: modified}
	r.hitAnswer = Answer{Rendered: r, Result: "hit"}
	r.staleAnswer = Answer{Rendered: r, Stale: true, Result: "stale"}
	return r
}

// Gzipped returns Body compressed with gzip, computed once per rendering.
func (r *Rendered) Gzipped() []byte {
	r.gzipOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestSpeed)
		zw.Write(r.Body)
		zw.Close()
		r.gzipped = b.Bytes()
		r.gzipSize.Store(int64(cap(r.gzipped)))
	})
	return r.gzipped
}

// Answer is one request's answer: a shared rendering, and how the cache
// came by it. An Answer may be shared by many requests (the answer of a
// cache hit is); it is never modified.
type Answer struct {
	*Rendered
	// Stale is set when IMAP could not be read and the answer comes from
	// the last data fbpub had.
	Stale bool
	// Result is "hit" (rendered before), "miss" (rendered for this
	// request, or one it waited for) or "stale". The caller counts it in
	// fbpub_cache_requests_total, as only the caller knows whether the
	// client already held the answer ("not_modified").
	Result string
}

// FreeBusyQuery asks for an owner's free/busy.
type FreeBusyQuery struct {
	Owner string
	// Folder limits the answer to one folder (path segments); nil covers
	// all of the owner's published folders.
	Folder []string
	Window freebusy.Window
	// Organizer is the owner's calendar address for ORGANIZER and the
	// PARTSTAT rule ("mailto:alice@example.org").
	Organizer string
	// Zone places the owner's floating and all-day times; nil means UTC.
	Zone *time.Location
	// Viewer is who asks; the cache's Policy decides which folders count
	// for them and, in the extended view, what they may read.
	Viewer acl.Requester
	// Extended asks for Kolab 2's extended view (.xfb): one FREEBUSY line
	// per occurrence, annotated with its UID, summary and location where
	// the viewer may read them.
	Extended bool
	// OffHours marks the window's time outside the owner's working hours
	// BUSY-UNAVAILABLE (see offHours); the extended view ignores it.
	OffHours bool
	// WorkingHours is the owner's configured pattern of working hours,
	// used where no VAVAILABILITY says otherwise; nil is the whole day.
	WorkingHours *availability.Hours
}

// FreeBusy renders the VFREEBUSY of q.
//
// A request for an answer rendered before allocates nothing: the folders,
// snapshots and key it needs are built in arrays on the stack (a request
// over more folders than they hold spills to the heap), and the answer is
// the one kept with the rendering (see cached). Only a rendering copies
// them.
func (c *Cache) FreeBusy(ctx context.Context, q FreeBusyQuery) (*Answer, error) {
	var (
		folderBuf [4]Folder
		snapBuf   [8]*Snapshot
		levelBuf  [8]acl.Access
		keyBuf    [512]byte
	)
	snaps, levels := snapBuf[:0], levelBuf[:0]
	var stale bool
	var err error
	if q.Folder == nil {
		var fs []Folder
		if fs, stale, err = c.counting(ctx, q.Owner, folderBuf[:0]); err == nil {
			snaps, levels, stale, err = c.snapshotsOf(ctx, fs, q.Viewer, stale, snaps, levels)
		}
	} else {
		snaps, levels, stale, err = c.snapshots(ctx, q.Owner, q.Folder, q.Viewer)
	}
	if err != nil {
		return nil, err
	}
	zone := q.Zone
	if zone == nil {
		zone = time.UTC
	}
	key := appendFreeBusyKey(keyBuf[:0], q, zone, snaps, levels)
	// The key is only looked up here: the lookup keeps no reference to it,
	// so it may point into keyBuf.
	if a := c.cached(unsafe.String(unsafe.SliceData(key), len(key)), stale); a != nil {
		return a, nil
	}
	// The rendering may outlive this call (it is shared, and finishes
	// for the others when this request goes away): it gets copies.
	return c.renderFreeBusy(ctx, q, string(key), slices.Clone(snaps), slices.Clone(levels), stale, zone)
}

// appendFreeBusyKey appends the render key of q over snaps to k: the
// fields of renderKey's layout (each ended by NUL), then statesKey's. The
// access levels are part of the extended view's key (what a viewer may
// read of each folder decides what it shows); the plain view shows only
// times, and which folders count for the viewer is in the states.
func appendFreeBusyKey(k []byte, q FreeBusyQuery, zone *time.Location, snaps []*Snapshot, levels []acl.Access) []byte {
	view := "freebusy"
	if q.Extended {
		view = "xfreebusy"
	}
	k = append(append(k, view...), 0)
	k = append(append(k, q.Owner...), 0)
	for i, s := range q.Folder {
		if i > 0 {
			k = append(k, '/')
		}
		k = append(k, s...)
	}
	k = append(k, 0)
	k = append(append(k, q.Organizer...), 0)
	k = append(append(k, zone.String()...), 0)
	k = append(strconv.AppendInt(k, q.Window.Start.Unix(), 10), 0)
	k = append(strconv.AppendInt(k, q.Window.End.Unix(), 10), 0)
	switch {
	case q.Extended:
		k = appendLevelsKey(k, levels)
	case q.OffHours:
		k = appendOffHoursKey(k, q.WorkingHours)
	}
	k = append(k, 0)
	for _, s := range snaps {
		k = append(k, s.key...)
	}
	return k
}

// renderFreeBusy is FreeBusy's slow path, apart so that the closure it
// makes (and the copies of q, snaps and levels it holds) are only
// allocated when an answer is rendered.
func (c *Cache) renderFreeBusy(ctx context.Context, q FreeBusyQuery, key string, snaps []*Snapshot, levels []acl.Access, stale bool, zone *time.Location) (*Answer, error) {
	return c.render(ctx, "freebusy", key, snaps, stale, func() ([]byte, error) {
		// The objects of exactly the folders of this answer, those the
		// viewer may see: Compute unites them by UID, so an override
		// stored in a folder left out cannot move or free time here.
		var objs []*calendar.Object
		access := map[*calendar.Object]acl.Access{}
		for i, s := range snaps {
			so := s.Objects()
			objs = append(objs, so...)
			if q.Extended {
				for _, o := range so {
					access[o] = levels[i]
				}
			}
		}
		res := freebusy.Compute(objs, q.Window, &freebusy.Options{
			Owner:       q.Organizer,
			Expand:      &calendar.Options{Zone: zone},
			Occurrences: q.Extended,
		})
		if res.Truncated > 0 {
			c.m.ExpansionLimits.Add(float64(res.Truncated))
		}
		reply := freebusy.Reply{
			Organizer: q.Organizer,
			UID:       "fbpub-freebusy-" + strings.ToLower(q.Owner),
			Stamp:     c.opts.Now(),
			Window:    q.Window,
			Periods:   res.Periods,
		}
		if q.OffHours && !q.Extended {
			reply.Periods = freebusy.Merge(append(res.Periods, offHours(q, snaps, zone)...))
		}
		if q.Extended {
			series := seriesOf(snaps, levels)
			reply.Periods = make([]freebusy.Period, len(res.Occurrences))
			reply.Details = map[int][]freebusy.Detail{}
			for i, oc := range res.Occurrences {
				reply.Periods[i] = oc.Period
				if d := detail(oc, access[oc.Object], series); d != nil {
					reply.Details[i] = d
				}
			}
		}
		var b bytes.Buffer
		if err := reply.Encode(&b); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	})
}

// CalendarQuery asks for an owner's events as an iCalendar feed.
type CalendarQuery struct {
	Owner string
	// Folder selects one folder (path segments); nil means all of the
	// owner's published folders.
	Folder []string
	// Name is the calendar's display name (X-WR-CALNAME).
	Name string
	// Refresh is how often clients should poll (REFRESH-INTERVAL and
	// X-PUBLISHED-TTL); zero leaves both out.
	Refresh time.Duration
	// Viewer is who asks: the cache's Policy decides, per folder, whether
	// they get its events as stored, in the reader view or in the busy
	// view (see views.go), or not at all.
	Viewer acl.Requester
}

// Calendar renders the events of q as one VCALENDAR: the VTIMEZONEs its
// events use, then every VEVENT with its alarms removed (a subscriber
// should not get the owner's reminders).
func (c *Cache) Calendar(ctx context.Context, q CalendarQuery) (*Answer, error) {
	snaps, levels, stale, err := c.snapshots(ctx, q.Owner, q.Folder, q.Viewer)
	if err != nil {
		return nil, err
	}
	key := renderKey("calendar", q.Owner, strings.Join(q.Folder, "/"), q.Name, q.Refresh.String(), levelsKey(levels)) + statesKey(snaps)
	return c.render(ctx, "calendar", key, snaps, stale, func() ([]byte, error) {
		cal := ical.NewComponent(ical.CompCalendar)
		cal.Props.SetText(ical.PropVersion, "2.0")
		cal.Props.SetText(ical.PropProductID, freebusy.ProdID)
		cal.Props.SetText(ical.PropCalendarScale, "GREGORIAN")
		cal.Props.SetText(ical.PropMethod, "PUBLISH")
		if q.Name != "" {
			p := ical.NewProp("X-WR-CALNAME")
			p.SetText(q.Name)
			p.Params.Del(ical.ParamValue) // TEXT is its default type
			cal.Props.Set(p)
		}
		if q.Refresh > 0 {
			d := isoDuration(q.Refresh)
			p := ical.NewProp("REFRESH-INTERVAL")
			p.Params.Set(ical.ParamValue, "DURATION")
			p.Value = d
			cal.Props.Set(p)
			ttl := ical.NewProp("X-PUBLISHED-TTL")
			ttl.Value = d
			cal.Props.Set(ttl)
		}
		// The events were encoded when their messages were parsed: the
		// feed is the header, the zones its events use, and that text.
		head, err := calendar.Marshal(cal)
		if err != nil {
			return nil, err
		}
		// Each message's view, and the zones the views refer to (see
		// messageView): a reader's view of one message may depend on
		// the others.
		series := seriesOf(snaps, levels)
		older := superseded(snaps, levels)
		zones := map[string]*ical.Component{}
		n := 0
		for _, s := range snaps {
			n += len(s.msgs)
		}
		bodies := make([][]byte, 0, n)
		size := len(head)
		for i, s := range snaps {
			objs := s.messageObjects()
			for j := range s.msgs {
				if m := &s.msgs[j]; !m.deleted && !older[m] {
					v := messageView(m, func() []*calendar.Object { return objs(j) }, levels[i], series, zones)
					bodies = append(bodies, v)
					size += len(v)
				}
			}
		}
		// Views encoded for this answer are kept with the messages.
		c.remeasure(snaps)
		var b bytes.Buffer
		b.Grow(size + 64<<10) // the events, and room for the zones
		b.Write(bytes.TrimSuffix(head, []byte("END:VCALENDAR\r\n")))
		ids := make([]string, 0, len(zones))
		for id := range zones {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		enc := calendar.NewEncoder(&b)
		for _, id := range ids {
			if err := enc.Encode(zones[id]); err != nil {
				return nil, err
			}
		}
		for _, v := range bodies {
			b.Write(v)
		}
		b.WriteString("END:VCALENDAR\r\n")
		return b.Bytes(), nil
	})
}

// superseded returns the messages of snaps that hold an older copy of an
// event another message of the answer holds: two masters of one UID, as
// clients that replace a message by appending the new copy first leave
// for a while, and an interrupted upload for longer. Free/busy counts the
// newest only (calendar.Unite); so does the feed, which then gives one
// master per UID as RFC 5545 has it, and which an upload of it back
// accepts (it refuses two). The newest is the one calendar.VersionOf
// orders last, the later message on a tie, as Unite has it. Only messages
// holding one event and nothing else are dropped, and only those of
// folders the requester may see (levels) count: a copy they cannot see
// hides nothing from them. Messages are decoded only when two hold
// events whose UIDs hash alike (message.master); nil when none do.
func superseded(snaps []*Snapshot, levels []acl.Access) map[*message]bool {
	type at struct{ s, j int }
	first := map[uint32]at{}
	var alike map[uint32][]at
	for i, s := range snaps {
		if levels[i] == acl.NoAccess {
			continue
		}
		for j := range s.msgs {
			m := &s.msgs[j]
			if m.deleted || m.master == 0 {
				continue
			}
			f, ok := first[m.master]
			if !ok {
				first[m.master] = at{i, j}
				continue
			}
			if alike == nil {
				alike = map[uint32][]at{}
			}
			if len(alike[m.master]) == 0 {
				alike[m.master] = []at{f}
			}
			alike[m.master] = append(alike[m.master], at{i, j})
		}
	}
	if alike == nil {
		return nil
	}
	objs := make([]func(int) []*calendar.Object, len(snaps))
	older := map[*message]bool{}
	type newest struct {
		m *message
		v calendar.Version
	}
	for _, ats := range alike {
		byUID := map[string]newest{}
		for _, a := range ats {
			if objs[a.s] == nil {
				objs[a.s] = snaps[a.s].messageObjects()
			}
			os := objs[a.s](a.j)
			if len(os) != 1 || os[0].Master == nil {
				continue
			}
			m, v := &snaps[a.s].msgs[a.j], calendar.VersionOf(os[0].Events()...)
			if w, ok := byUID[os[0].UID]; !ok {
				byUID[os[0].UID] = newest{m, v}
			} else if v.Compare(w.v) >= 0 {
				older[w.m] = true
				byUID[os[0].UID] = newest{m, v}
			} else {
				older[m] = true
			}
		}
	}
	return older
}

// withoutAlarms returns ev without VALARM components, at any depth (an
// X- component may hold one), and without components nested more than
// maxNesting below it. The properties are shared with ev, which stays
// untouched.
func withoutAlarms(ev *ical.Component) *ical.Component { return stripped(ev, 0) }

// maxNesting bounds the depth of the components kept inside an event
// (VEVENT > X-… > …): Python's icalendar recurses once per level, and a
// thousand levels, stored by a colleague, made it refuse the whole feed.
const maxNesting = 4

func stripped(c *ical.Component, depth int) *ical.Component {
	if depth >= maxNesting {
		if len(c.Children) == 0 {
			return c
		}
		return &ical.Component{Name: c.Name, Props: c.Props}
	}
	var children []*ical.Component // a copy, made at the first change
	for i, ch := range c.Children {
		var r *ical.Component
		if ch.Name != ical.CompAlarm {
			r = stripped(ch, depth+1)
		}
		if r == ch && children == nil {
			continue
		}
		if children == nil {
			children = slices.Clone(c.Children[:i])
		}
		if r != nil {
			children = append(children, r)
		}
	}
	if children == nil {
		return c
	}
	return &ical.Component{Name: c.Name, Props: c.Props, Children: children}
}

func isoDuration(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 60 {
		s = 60
	}
	switch {
	case s%86400 == 0:
		return fmt.Sprintf("P%dD", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("PT%dH", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("PT%dM", s/60)
	}
	return fmt.Sprintf("PT%dS", s)
}

// snapshots returns the current snapshots of owner's folders that viewer
// may see, or of the one folder named by segments, with what viewer may
// see of each. A folder viewer may not see is never read.
//
// While IMAP cannot be read, the last snapshots fbpub holds are used and
// stale is set; only when it holds none does the caller get
// ErrUnavailable.
func (c *Cache) snapshots(ctx context.Context, owner string, folder []string, viewer acl.Requester) (out []*Snapshot, levels []acl.Access, stale bool, err error) {
	owned, stale, err := c.owned(ctx, owner)
	if err != nil {
		return nil, nil, false, err
	}
	var fs []Folder
	for _, f := range owned {
		if folder == nil || f.Path() == strings.Join(folder, "/") {
			fs = append(fs, f)
		}
	}
	return c.snapshotsOf(ctx, fs, viewer, stale, nil, nil)
}

// snapshotsOf returns the current snapshots of the folders fs that viewer
// may see, appended to out, and what viewer may see of each, appended to
// levels; both must be empty (a caller may pass arrays it reuses). A
// folder viewer may not see is never read.
func (c *Cache) snapshotsOf(ctx context.Context, fs []Folder, viewer acl.Requester, stale bool, out []*Snapshot, levels []acl.Access) (_ []*Snapshot, _ []acl.Access, _ bool, err error) {
	for _, f := range fs {
		a := c.Access(viewer, f)
		if a == acl.NoAccess {
			continue
		}
		s, err := c.snapshotWithin(ctx, f, c.opts.CheckBudget)
		if errors.Is(err, errSyncPending) {
			stale, err = true, nil
		}
		if errors.Is(err, ErrUnavailable) {
			c.mu.Lock()
			s = c.snaps[f.Name]
			c.mu.Unlock()
			if s != nil {
				c.setDown(true, err)
				stale, err = true, nil
			}
		}
		if err != nil {
			return nil, nil, false, err
		}
		out = append(out, s)
		levels = append(levels, a)
	}
	if len(out) == 0 {
		return nil, nil, false, ErrNotFound
	}
	return out, levels, stale, nil
}

// Access is what viewer may see of f under the cache's Policy.
func (c *Cache) Access(viewer acl.Requester, f Folder) acl.Access {
	return c.opts.Policy.Access(viewer, acl.Folder{Owner: f.Owner, ACL: f.ACL, ACLKnown: f.ACLKnown})
}

func levelsKey(levels []acl.Access) string { return string(appendLevelsKey(nil, levels)) }

// appendLevelsKey appends levelsKey's text to k.
func appendLevelsKey(k []byte, levels []acl.Access) []byte {
	for _, a := range levels {
		k = append(append(k, a.String()...), ',')
	}
	return k
}

func renderKey(parts ...string) string { return strings.Join(parts, "\x00") + "\x00" }

func statesKey(snaps []*Snapshot) string {
	if len(snaps) == 1 {
		return snaps[0].key
	}
	n := 0
	for _, s := range snaps {
		n += len(s.key)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range snaps {
		b.WriteString(s.key)
	}
	return b.String()
}

// cached returns the answer for key when it was rendered before, else
// nil: the rendering's own hit or stale answer, shared by every request
// that gets it, so that a hit allocates nothing. key is not kept.
func (c *Cache) cached(key string, stale bool) *Answer {
	r := c.answers.get(key)
	if r == nil {
		return nil
	}
	hit, staleHit := &r.hitAnswer, &r.staleAnswer
	if hit.Rendered == nil {
		// Not made by newRendered: no answers kept with it.
		hit = &Answer{Rendered: r, Result: "hit"}
		staleHit = &Answer{Rendered: r, Stale: true, Result: "stale"}
	}
	if stale {
		return staleHit
	}
	return hit
}

// render returns the cached answer for key, or renders it once for all
// concurrent callers.
func (c *Cache) render(ctx context.Context, view, key string, snaps []*Snapshot, stale bool, f func() ([]byte, error)) (*Answer, error) {
	answer := func(r *Rendered, result string) *Answer {
		if stale {
			return &Answer{Rendered: r, Stale: true, Result: "stale"}
		}
		return &Answer{Rendered: r, Result: result}
	}
	if r := c.answers.get(key); r != nil {
		return answer(r, "hit"), nil
	}
	v, err := c.shared(ctx, "render", key, func(context.Context) (any, error) {
		if r := c.answers.get(key); r != nil {
			return r, nil
		}
		t0 := time.Now()
		body, err := f()
		if err != nil {
			return nil, err
		}
		c.m.Renders.WithLabelValues(view).Inc()
		c.m.RenderSeconds.WithLabelValues(view).Observe(time.Since(t0).Seconds())
		if cap(body)-len(body) > len(body)/8 {
			// A buffer grown by doubling: the answer cache keeps it for
			// as long as the answer holds.
			body = bytes.Clone(body)
		}
		var modified time.Time
		for _, s := range snaps {
			if s.Fetched.After(modified) {
				modified = s.Fetched
			}
		}
		r := newRendered(body, etag(key), modified)
		c.answers.put(key, r)
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return answer(v.(*Rendered), "miss"), nil
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
