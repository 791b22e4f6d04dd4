package upload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-ical"
	"github.com/fbpub/fbpub/internal/calendar"
)

// object is one uploaded calendar object, ready to be written.
type object struct {
	uid     string
	version version
	hash    string // of its content, DTSTAMP left out
	obj     *calendar.Object
}

// ridKey identifies an override within its series: its RECURRENCE-ID as
// written, with the zone it is in.
func ridKey(ev *ical.Component) string {
	p := ev.Props.Get(ical.PropRecurrenceID)
	if p == nil {
		return ""
	}
	return strings.ToUpper(strings.TrimSpace(p.Value)) + "\x00" + p.Params.Get(ical.ParamTimezoneID)
}

// version orders copies of one event: SEQUENCE, then LAST-MODIFIED,
// else DTSTAMP.
type version struct {
	seq   int
	stamp time.Time
}

func (v version) compare(w version) int {
	if v.seq != w.seq {
		return v.seq - w.seq
	}
	return v.stamp.Compare(w.stamp)
}

func versionOf(o *calendar.Object) version {
	var v version
	for _, ev := range o.Events() {
		if p := ev.Props.Get(ical.PropSequence); p != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(p.Value)); err == nil && n > v.seq {
				v.seq = n
			}
		}
		for _, name := range []string{ical.PropLastModified, ical.PropDateTimeStamp} {
			if p := ev.Props.Get(name); p != nil {
				if t, err := time.Parse("20060102T150405Z", strings.TrimSpace(p.Value)); err == nil {
					if t.After(v.stamp) {
						v.stamp = t
					}
					break
				}
			}
		}
	}
	return v
}

// contentHash identifies an object's content: its events (the overrides
// in RECURRENCE-ID order) and the zones they use, encoded canonically,
// without DTSTAMP (clients rewrite it on every export) and without alarms
// (fbpub's feeds leave them out, so a client that edits a feed and
// uploads it never has them).
func contentHash(o *calendar.Object) string {
	h := sha256.New()
	enc := calendar.NewEncoder(h)
	for _, tz := range calendar.UsedTimezones([]*calendar.Object{o}) {
		enc.Encode(tz)
	}
	overrides := slices.Clone(o.Overrides)
	slices.SortStableFunc(overrides, func(a, b *ical.Component) int { return strings.Compare(ridKey(a), ridKey(b)) })
	var events []*ical.Component
	if o.Master != nil {
		events = append(events, o.Master)
	}
	for _, ev := range append(events, overrides...) {
		enc.Encode(compared(ev))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// compared returns what of an event contentHash compares: a shallow copy
// without DTSTAMP and without alarms.
func compared(ev *ical.Component) *ical.Component {
	cp := &ical.Component{Name: ev.Name, Props: ical.Props{}}
	for _, ch := range ev.Children {
		if ch.Name != ical.CompAlarm {
			cp.Children = append(cp.Children, ch)
		}
	}
	for name, ps := range ev.Props {
		if name != ical.PropDateTimeStamp {
			cp.Props[name] = ps
		}
	}
	return cp
}

// generatedUID is the UID fbpub gives an uploaded event that has none:
// derived from what contentHash compares, so that the same event
// uploaded again, with a new DTSTAMP as clients write on every export,
// gets the same UID and is found unchanged rather than deleted and added.
// It has the form of the UIDs calendar.Objects derives.
func generatedUID(ev *ical.Component) string {
	cp := compared(ev)
	delete(cp.Props, ical.PropUID) // absent or blank
	h := sha256.New()
	calendar.NewEncoder(h).Encode(cp)
	return "fbpub-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// utf8Text returns body, in the named charset ("" is UTF-8), as UTF-8: an
// upload is stored as UTF-8, so text that is not valid in its charset is
// an *EncodingError rather than stored with the invalid octets under a
// UTF-8 label, or with U+FFFD in their place. Other charsets are
// converted as MIME parts are (calendar.ToUTF8); one it does not know is
// ErrCharset.
func utf8Text(body []byte, charset string) ([]byte, error) {
	if charset == "" || isUTF8(charset) {
		if utf8.Valid(body) {
			return body, nil
		}
		return nil, &EncodingError{Charset: charset, Line: lineOf(body, invalidAt(body))}
	}
	out, err := calendar.ToUTF8(charset, body)
	if errors.Is(err, calendar.ErrCharset) {
		return nil, fmt.Errorf("%w: %q", ErrCharset, charset)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	// ToUTF8 writes U+FFFD for octets that are not valid in the charset.
	if i := bytes.Index(out, replacement); i >= 0 && !bytes.Contains(body, replacement) {
		return nil, &EncodingError{Charset: charset, Line: lineOf(out, i)}
	}
	if !utf8.Valid(out) { // mislabelled text ToUTF8 passed on as it was
		return nil, &EncodingError{Charset: charset, Line: lineOf(out, invalidAt(out))}
	}
	return out, nil
}

// replacement is U+FFFD in UTF-8.
var replacement = []byte("\uFFFD")

// isUTF8 reports whether a charset label names UTF-8.
func isUTF8(label string) bool {
	label = strings.TrimSpace(label)
	return strings.EqualFold(label, "utf-8") || strings.EqualFold(label, "utf8")
}

// invalidAt returns the offset of the first octet of b that is not valid
// UTF-8, or len(b).
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// lineOf returns the line (from 1) that holds offset i of text.
func lineOf(text []byte, i int) int { return 1 + bytes.Count(text[:i], []byte("\n")) }

// tooMany is the error for an upload of more than MaxEvents events.
func (s *Service) tooMany() error {
	return fmt.Errorf("%w: the calendar holds more than %d events, the most one upload may hold (upload.max_events); nothing was changed", ErrTooMany, s.opts.MaxEvents)
}

// split parses the upload into objects by UID. An upload that holds one
// event twice (two masters with one UID, or two overrides with one
// RECURRENCE-ID) is a *DuplicateError: only one of them could be stored.
func (s *Service) split(body []byte) ([]object, error) {
	// Counted before parsing, so that an upload far over the limit costs
	// one pass over its bytes, not a parse.
	if beginLines(body) > s.opts.MaxEvents {
		return nil, s.tooMany()
	}
	cals, err := calendar.Decode(body)
	if errors.Is(err, calendar.ErrTooLarge) {
		return nil, fmt.Errorf("%w: the calendar holds more components than fbpub reads at once, or more than %d bytes; nothing was changed", ErrTooMany, calendar.MaxPayload)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	var out []object
	events := 0
	seen := map[string]bool{}
	for _, o := range calendar.Objects(cals) {
		if len(o.Events()) == 0 {
			continue // VFREEBUSY and the like: not events
		}
		events += len(o.Events())
		if events > s.opts.MaxEvents {
			return nil, s.tooMany()
		}
		noUID := false
		for _, ev := range o.Events() {
			if p := ev.Props.Get(ical.PropUID); p == nil || strings.TrimSpace(p.Value) == "" {
				// Objects gave it a UID from its whole text, DTSTAMP
				// included; it is alone in its object. Give it one that
				// stays when only DTSTAMP changes, and write it.
				o.UID = generatedUID(ev)
				ev.Props.SetText(ical.PropUID, o.UID)
				noUID = true
			}
		}
		if seen[o.UID] {
			// Objects makes a second master with one UID an object of its
			// own.
			return nil, &DuplicateError{UID: o.UID, NoUID: noUID}
		}
		seen[o.UID] = true
		rids := map[string]bool{}
		for _, ov := range o.Overrides {
			k := ridKey(ov)
			if rids[k] {
				return nil, &DuplicateError{UID: o.UID, RecurrenceID: ov.Props.Get(ical.PropRecurrenceID).Value}
			}
			rids[k] = true
		}
		out = append(out, object{uid: o.UID, version: versionOf(o), hash: contentHash(o), obj: o})
	}
	return out, nil
}

// beginLines counts the lines of body that begin a VEVENT. It counts
// fewer than the calendar decodes to only where a BEGIN line is folded
// (split counts again after the parse), and more only where a VEVENT is
// nested in another component, which the parse builds all the same.
func beginLines(body []byte) int {
	n := 0
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) >= len("BEGIN:VEVENT") && bytes.EqualFold(bytes.TrimRight(line, " \t\r"), []byte("BEGIN:VEVENT")) {
			n++
		}
	}
	return n
}

// asKolab hashes the uploaded objects as a Kolab folder would hold them,
// so that an event the folder holds unchanged is seen as unchanged.
func asKolab(incoming []object) {
	for i := range incoming {
		if o := viaXCal(incoming[i].obj); o != nil {
			incoming[i].hash = contentHash(o)
		}
	}
}

// viaXCal returns o as it reads back from Kolab format 3, or nil.
func viaXCal(o *calendar.Object) *calendar.Object {
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Children = append(calendar.UsedTimezones([]*calendar.Object{o}), o.Events()...)
	var x bytes.Buffer
	if err := calendar.EncodeXCal(&x, cal); err != nil {
		return nil
	}
	objs, err := calendar.PartObjects(calendar.Part{MediaType: "application/calendar+xml", Body: x.Bytes()})
	if err != nil || len(objs) != 1 {
		return nil
	}
	return objs[0]
}
