package feed

import (
	"bytes"
	"errors"
	"sync"

	"github.com/emersion/go-ical"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

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
// snapshot keeps them for as long as the folder is published: a map per
// property is a large share of the heap a cached event costs (bench/scale
// measures it; the figures are in bench/README.md).
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
