package feed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"unique"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
	tzdb "github.com/fbpub/fbpub/internal/tz"
)

// message is what a snapshot keeps of one message: text, not go-ical
// trees. The trees of a cached event were about two thirds of its heap
// (bench/README.md, "Where a cached event's memory goes"); a render that
// needs trees (free/busy, the busy and reader views) decodes them from
// this text again (Snapshot.decoded), and they are garbage once no render
// holds them.
type message struct {
	// body is the message's VEVENTs as feed text (alarms removed), the
	// owner's view (events), then its VFREEBUSY and VAVAILABILITY
	// components (nearly always none), from byte nevents on: with zones,
	// the text its objects are decoded from (see text). One slice, not
	// two: a snapshot holds a message struct per event.
	body    []byte
	nevents uint32
	// master is a hash of the UID of the message's event when it holds
	// one event (a master, with or without overrides) and nothing else,
	// never 0; else 0. Two messages with one value may be two copies of
	// one event (see superseded). It fills what was padding.
	master uint32
	// zones are the message's VTIMEZONEs, in order, each with the TZID
	// its events refer to it by ("" when none does). Their text is
	// interned: most messages of a site carry the same few definitions.
	zones []zone
	// restricted says whether an event is confidential or private: only
	// then does the reader view differ from events.
	restricted bool
	deleted    bool
	// lazy holds the busy and reader views (see views.go), encoded the
	// first time a requester needs them: most folders are only ever read
	// by their owners or only ever asked for free/busy, which needs no
	// encoded view at all. Copies of a message share it; nil when the
	// message has no calendar data.
	lazy *lazyViews
}

// zone is one VTIMEZONE of a message.
type zone struct {
	// id is the TZID the message's events use for it, "" when they use
	// none (it is kept for the objects, as decoded, all the same).
	id   string
	text unique.Handle[string]
}

// lazyViews are a message's encoded busy and reader views. Two renders
// may encode one at the same time; both get equal bytes, and the first
// stored is kept.
type lazyViews struct {
	busy, reader atomic.Pointer[[]byte]
}

var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// view returns the message's events as a requester with access a sees
// them; objs returns the message's objects, decoded (called only when a
// view is encoded for the first time).
func (m *message) view(a acl.Access, objs func() []*calendar.Object) []byte {
	switch {
	case m.lazy == nil: // no calendar data
		return m.events()
	case a >= acl.OwnerAccess:
		return m.events()
	case a == acl.ReadAccess && m.restricted:
		return m.lazy.encode(&m.lazy.reader, func(enc *calendar.Encoder) {
			for _, o := range objs() {
				for _, ev := range readerEvents(o) {
					enc.Encode(ev)
				}
			}
		})
	case a == acl.ReadAccess:
		return m.events()
	}
	return m.lazy.encode(&m.lazy.busy, func(enc *calendar.Encoder) {
		for _, o := range objs() {
			for _, ev := range o.Events() {
				enc.Encode(busyOnly(ev))
			}
		}
	})
}

// events is the message's VEVENTs as feed text, alarms removed: the
// owner's view.
func (m *message) events() []byte { return m.body[:m.nevents:m.nevents] }

// encode returns *p, encoding it with f first when it is not yet.
func (l *lazyViews) encode(p *atomic.Pointer[[]byte], f func(*calendar.Encoder)) []byte {
	if v := p.Load(); v != nil {
		return *v
	}
	b := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(b)
	b.Reset()
	f(calendar.NewEncoder(b))
	v := bytes.Clone(b.Bytes())
	if !p.CompareAndSwap(nil, &v) {
		return *p.Load()
	}
	return v
}

// newMessage prepares a parsed message for rendering: it encodes what the
// snapshot keeps (see message), and the trees objs are not kept.
func newMessage(objs []*calendar.Object) message {
	if len(objs) == 0 {
		return message{}
	}
	m := message{lazy: &lazyViews{}}
	if len(objs) == 1 && objs[0].Master != nil {
		h := fnv.New32a()
		h.Write([]byte(objs[0].UID))
		m.master = h.Sum32() | 1
	}
	// Encoded in a pooled buffer, then copied once at its final size.
	b := encodeBuffers.Get().(*bytes.Buffer)
	defer encodeBuffers.Put(b)
	b.Reset()
	usedZones := calendar.UsedTimezones(objs)
	renames := zoneRenames(usedZones)
	enc := calendar.NewEncoder(b)
	for _, o := range objs {
		for _, ev := range o.Events() {
			enc.Encode(renameTZIDs(calendar.Sound(withoutAlarms(ev)), renames))
		}
		if r, _ := restricted(o); r {
			m.restricted = true
		}
	}
	m.nevents = uint32(b.Len())
	for _, o := range objs {
		for _, c := range o.FreeBusy {
			enc.Encode(renameTZIDs(c, renames))
		}
		for _, c := range o.Availability {
			enc.Encode(renameTZIDs(c, renames))
		}
	}
	if b.Len() > 0 {
		m.body = bytes.Clone(b.Bytes())
	}
	// The objects of one part hold the same VTIMEZONEs (calendar.Objects);
	// a message of several parts has the zones of each.
	var used map[*ical.Component]string
	for _, tz := range usedZones {
		if used == nil {
			used = map[*ical.Component]string{}
		}
		id, err := tz.Props.Text(ical.PropTimezoneID)
		if err != nil {
			id = tz.Props.Get(ical.PropTimezoneID).Value
		}
		used[tz] = id
	}
	seen := map[*ical.Component]bool{}
	for _, o := range objs {
		for _, tz := range o.Timezones {
			if seen[tz] {
				continue
			}
			seen[tz] = true
			sound := calendar.Sound(tz)
			if len(sound.Children) == 0 {
				continue // no observance was sound: no zone (clients refuse one without)
			}
			b.Reset()
			if calendar.NewEncoder(b).Encode(renameTZIDs(sound, renames)) != nil {
				continue
			}
			id := used[tz]
			if v := tz.Props.Get(ical.PropTimezoneID); v != nil && renames[v.Value] != "" {
				id = renames[v.Value]
			}
			m.zones = append(m.zones, zone{id: id, text: unique.Make(b.String())})
		}
	}
	if len(m.zones) > 0 {
		m.zones = m.zones[:len(m.zones):len(m.zones)]
	}
	return m
}

// zoneRenames gives the TZIDs of objs' own time zones, those no time zone
// database names (Outlook's "Customized Time Zone", whatever rules the
// sender's machine had), a name of their own: the TZID and a hash of the
// zone's rules. An answer carries one VTIMEZONE per TZID for the events
// of all its messages, and two messages that define one such TZID
// differently would otherwise both be read with the first's rules, hours
// off in every client while fbpub's free/busy, which reads each message
// with its own, has them right. A name already given keeps.
func zoneRenames(zones []*ical.Component) map[string]string {
	var out map[string]string
	for _, tz := range zones {
		id := tz.Props.Get(ical.PropTimezoneID)
		if id == nil || id.Value == "" {
			continue
		}
		if _, _, known := tzdb.Lookup(id.Value); known {
			continue
		}
		// The rules (observances) as written in the snapshot (Sound), so
		// that a name given is found again when the snapshot is read back.
		h := sha256.New()
		enc := calendar.NewEncoder(h)
		for _, ob := range calendar.Sound(tz).Children {
			enc.Encode(ob)
		}
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		suffix := " (" + hex.EncodeToString(sum[:4]) + ")"
		if strings.HasSuffix(id.Value, suffix) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[id.Value] = id.Value + suffix
	}
	return out
}

// renameTZIDs returns c, or a copy of it and of its components with the
// TZIDs renames names replaced: the TZID property of a VTIMEZONE and the
// TZID parameters. c is not modified.
func renameTZIDs(c *ical.Component, renames map[string]string) *ical.Component {
	if len(renames) == 0 {
		return c
	}
	return calendar.Rewrite(c, func(name string, p ical.Prop) (ical.Prop, bool) {
		if name == ical.PropTimezoneID {
			if to, ok := renames[p.Value]; ok {
				p.Value = to
			}
			return p, true
		}
		if to, ok := renames[p.Params.Get(ical.ParamTimezoneID)]; ok && p.Params.Get(ical.ParamTimezoneID) != "" {
			p.Params = maps.Clone(p.Params)
			p.Params.Set(ical.ParamTimezoneID, to)
		}
		return p, true
	}, func(*ical.Component) bool { return true })
}

// text returns the message's objects as one VCALENDAR, from which
// calendar.Decode and calendar.Objects make them again; nil when it has
// none.
func (m *message) text() []byte {
	if m.lazy == nil {
		return nil
	}
	const head, tail = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub//snapshot//EN\r\n", "END:VCALENDAR\r\n"
	n := len(head) + len(m.body) + len(tail)
	for _, z := range m.zones {
		n += len(z.text.Value())
	}
	b := make([]byte, 0, n)
	b = append(b, head...)
	for _, z := range m.zones {
		b = append(b, z.text.Value()...)
	}
	b = append(b, m.body...)
	return append(b, tail...)
}

// objects decodes the message's objects from its text. The text is
// fbpub's own encoding of objects that were decoded once, so an error is
// not expected; the message then has no objects.
func (m *message) objects() []*calendar.Object {
	t := m.text()
	if t == nil {
		return nil
	}
	cals, err := calendar.Decode(t)
	if err != nil {
		return nil
	}
	return calendar.Objects(cals)
}

// zoneTree returns the VTIMEZONE z, decoded. Trees are kept per text in a
// small table, shared by every message that carries the definition; the
// table is emptied when it grows past maxZoneTrees (a site has a few
// dozen zones; a flood of distinct ones must not grow it without bound).
func zoneTree(z zone) *ical.Component {
	zoneTrees.Lock()
	defer zoneTrees.Unlock()
	if c, ok := zoneTrees.m[z.text]; ok {
		return c
	}
	var c *ical.Component
	text := "BEGIN:VCALENDAR\r\n" + z.text.Value() + "END:VCALENDAR\r\n"
	if cals, err := calendar.Decode([]byte(text)); err == nil && len(cals) == 1 && len(cals[0].Children) == 1 {
		c = cals[0].Children[0]
	}
	if len(zoneTrees.m) >= maxZoneTrees {
		clear(zoneTrees.m)
	}
	zoneTrees.m[z.text] = c
	return c
}

const maxZoneTrees = 1024

var zoneTrees = struct {
	sync.Mutex
	m map[unique.Handle[string]]*ical.Component
}{m: map[unique.Handle[string]]*ical.Component{}}

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
