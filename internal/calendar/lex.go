package calendar

import (
	"bytes"
	"math"
	"strings"
	"sync"
	"unsafe"

	"github.com/emersion/go-ical"
)

// decodeFast parses every top-level component of data the way repeated
// calls to go-ical's (*ical.Decoder).Decode until io.EOF do, and builds the
// same *ical.Calendar values (reflect.DeepEqual), at a fraction of the cost:
// go-ical reads through a bufio.Reader, builds every line and every
// parameter value with a strings.Builder or string concatenation and grows
// every Props slice by appending.
//
// Here the text is unfolded once into a scratch buffer, and each line is
// split into spans of that buffer. When a component ends, everything it
// holds is allocated at its final size: the values of its properties and
// of their parameters are copied into one string of just those bytes, its
// properties into one slice (carved into the Props lists, capacities
// clipped so that an append by a caller never writes into a neighbour),
// its parameter value lists into another. Names are the ical constants
// (or those of knownNames) wherever the name is a common one, and a copy
// of their own otherwise. So a component keeps alive what it holds and
// nothing else: not the text, names, delimiters or folding, and not its
// parent or siblings, which matters when a cache keeps one VEVENT of a
// message. A property with parameters gets a Params map of its own, which
// a caller may modify; one without has nil Params, like a zero ical.Prop
// (go-ical gives it an empty map): Get, Values, len and range read a nil
// map as empty, and the properties of a calendar in IMAP mostly have no
// parameters, so an empty map for each was a sixth of the allocations of
// a cold folder read and some 240 octets of every cached event.
//
// The contract is the loop of Decode without its preliminaries (size
// limit, BOM, blank text):
//
//   - a calendar that go-ical cuts short with io.EOF (truncated text, and
//     the cases where its bufio use loses the last line, see unfoldLines)
//     ends the input: the calendars before it are returned, with a nil
//     error, and possibly none at all;
//   - any error or panic of go-ical, anywhere before that, gives
//     ErrMalformed and no calendars;
//   - once the components of the calendars decoded so far exceed
//     maxComponents, ErrTooLarge, at the same point Decode gives it.
//
// Data of 2 GiB or more (far above MaxPayload) is ErrTooLarge: spans are
// 32-bit. It never panics and uses no recursion, so nesting depth is
// bounded only by the input size. It may be called concurrently; the
// values it returns share no memory with data, nor, constants aside, with
// another call's.
func decodeFast(data []byte) (cals []*ical.Calendar, err error) {
	defer func() {
		// Nothing below is expected to panic; this keeps the promise
		// Decode makes even if something does.
		if r := recover(); r != nil {
			cals, err = nil, ErrMalformed
		}
	}()
	if len(data) >= math.MaxInt32 {
		return nil, ErrTooLarge
	}
	d := decoders.Get().(*fastDecoder)
	defer d.release()
	return d.decode(data)
}

// bufSize is the size of the bufio.Reader go-ical reads through (the
// bufio default, also the size of the pooled readers Decode hands it). Its
// ReadLine returns a line longer than that in pieces of bufSize bytes, which
// matters at the very end of the input; see physLine.
const bufSize = 4096

// physLine finds the physical line that starts at p, as go-ical's readLine
// sees it: its content ends before the next LF, less one CR right before
// that LF; a last line without LF keeps all its bytes. ok is false when
// readLine fails with io.EOF instead: at the end of data, or when the last
// line, without LF, is cut by bufio.Reader.ReadLine into pieces the last of
// which ends exactly at the end of data (ReadLine then reports io.EOF
// rather than the line).
func physLine(data []byte, p int) (end, next int, ok bool) {
	n := len(data)
	if p >= n {
		return 0, 0, false
	}
	if i := bytes.IndexByte(data[p:], '\n'); i >= 0 {
		end = p + i
		if end > p && data[end-1] == '\r' {
			end--
		}
		return end, p + i + 1, true
	}
	// No LF up to the end. ReadLine hands out full buffers while at least
	// bufSize bytes are left, keeping back a CR that ends one (it might
	// start a CRLF).
	q, pieces := p, false
	for n-q >= bufSize {
		pieces = true
		if data[q+bufSize-1] == '\r' {
			q += bufSize - 1
		} else {
			q += bufSize
		}
	}
	if pieces && q == n {
		return 0, 0, false
	}
	return n, n, true
}

// unfoldLines appends to buf the logical lines of data, as go-ical's
// readContinuedLine reads them, each followed by LF; empty lines (which
// go-ical skips) are left out. A physical line that starts with a space or
// a tab continues the previous one, without that first byte. Where go-ical
// meets io.EOF inside a logical line (a continuation line that is one
// space or tab and nothing more at the very end, or the piece case of
// physLine) it drops that line and stops, and so does this.
func unfoldLines(buf, data []byte) []byte {
	pos, n := 0, len(data)
	for pos < n {
		end, next, ok := physLine(data, pos)
		if !ok {
			break
		}
		start := len(buf)
		buf = append(buf, data[pos:end]...)
		pos = next
		for pos < n && (data[pos] == ' ' || data[pos] == '\t') {
			end, next, ok = physLine(data, pos+1)
			if !ok {
				return buf[:start]
			}
			buf = append(buf, data[pos+1:end]...)
			pos = next
		}
		if len(buf) > start {
			buf = append(buf, '\n')
		}
	}
	return buf
}

// span is a piece of the unfolded text: text[off:off+n].
type span struct{ off, n int32 }

// frame is a component being decoded.
type frame struct {
	name       string
	propStart  int // its properties are d.props[propStart:]
	childStart int // its children are d.children[childStart:]
}

// lexProp is a property of an open component: its value is a span of the
// text, its parameters are d.params[plo:phi].
type lexProp struct {
	name     string
	value    span
	plo, phi int32
}

// lexParam is one parameter of a lexProp; its values are d.pvals[vlo:vhi].
type lexParam struct {
	name     string
	vlo, vhi int32
}

// fastDecoder holds the scratch space of one decodeFast call; it is
// recycled through a pool. Nothing returned refers to it: names are
// constants or copies, values are copied out of text.
type fastDecoder struct {
	text     []byte // the unfolded text
	vbuf     []byte // the values of the component being closed
	stack    []frame
	props    []lexProp // properties of the open components, in order
	params   []lexParam
	pvals    []span
	children []*ical.Component // children of the open components
	groups   []int32           // group of each property of the component being closed
	firsts   []int32           // index of the first property of each group
	counts   []int32
	groupMap map[string]int32
}

var decoders = sync.Pool{New: func() any { return new(fastDecoder) }}

// maxScratch bounds the scratch slices kept in the pool, and
// maxTextScratch the text buffer.
const (
	maxScratch     = 4096
	maxTextScratch = 256 << 10
)

func (d *fastDecoder) release() {
	if cap(d.text) > maxTextScratch {
		d.text = nil
	}
	d.text = d.text[:0]
	if cap(d.vbuf) > maxTextScratch {
		d.vbuf = nil
	}
	d.vbuf = d.vbuf[:0]
	d.stack = keep(d.stack)
	d.props = keep(d.props)
	d.params = keep(d.params)
	d.pvals = keep(d.pvals)
	d.children = keep(d.children)
	d.groups = keep(d.groups)
	d.firsts = keep(d.firsts)
	d.counts = keep(d.counts)
	if len(d.groupMap) > maxScratch {
		d.groupMap = nil
	} else {
		clear(d.groupMap)
	}
	decoders.Put(d)
}

// keep empties a scratch slice for reuse, dropping what it refers to, or
// drops it altogether when it has grown large.
func keep[T any](s []T) []T {
	if cap(s) > maxScratch {
		return nil
	}
	clear(s[:cap(s)])
	return s[:0]
}

func (d *fastDecoder) decode(data []byte) ([]*ical.Calendar, error) {
	d.text = unfoldLines(d.text[:0], data)
	// d.text is not written again during this call; text views it, and
	// nothing returned is a substring of it.
	text := unsafe.String(unsafe.SliceData(d.text), len(d.text))

	var cals []*ical.Calendar
	total := 0    // components of the calendars in cals
	current := 0  // components of the top-level component being decoded
	build := true // false once current makes the total too large
	for pos := 0; pos < len(text); {
		i := strings.IndexByte(text[pos:], '\n')
		line, base := text[pos:pos+i], pos
		pos += i + 1

		plo, vlo := len(d.params), len(d.pvals)
		name, voff, ok := d.parseLine(line, base, build)
		if !ok {
			return nil, ErrMalformed
		}
		value := text[voff : base+len(line)]
		if name == "BEGIN" || name == "END" {
			// Their parameters are checked, and dropped.
			d.params, d.pvals = d.params[:plo], d.pvals[:vlo]
		}
		if len(d.stack) == 0 {
			if name != "BEGIN" {
				return nil, ErrMalformed
			}
			current = 1
			build = total+current <= maxComponents
			d.stack = append(d.stack, frame{name: upperName(value, build)})
			continue
		}
		switch name {
		case "BEGIN":
			current++
			if total+current > maxComponents {
				build = false
			}
			d.stack = append(d.stack, frame{
				name:       upperName(value, build),
				propStart:  len(d.props),
				childStart: len(d.children),
			})
		case "END":
			f := d.stack[len(d.stack)-1]
			d.stack = d.stack[:len(d.stack)-1]
			if !strings.EqualFold(value, f.name) {
				return nil, ErrMalformed
			}
			if len(d.stack) > 0 {
				if build {
					d.children = append(d.children, d.component(f, new(ical.Component)))
				}
				continue
			}
			if f.name != ical.CompCalendar {
				return nil, ErrMalformed
			}
			total += current
			if total > maxComponents {
				return nil, ErrTooLarge
			}
			// The Calendar and its component in one allocation: they
			// live and die together.
			cc := new(struct {
				cal  ical.Calendar
				comp ical.Component
			})
			cc.cal.Component = d.component(f, &cc.comp)
			cals = append(cals, &cc.cal)
		default:
			if build {
				d.props = append(d.props, lexProp{
					name:  name,
					value: span{int32(voff), int32(len(value))},
					plo:   int32(plo),
					phi:   int32(len(d.params)),
				})
			}
		}
	}
	// Text that ends inside a component: go-ical's Decode answers io.EOF,
	// and the component is dropped.
	return cals, nil
}

// component fills c with the component f, from the properties and
// children gathered since it began, and removes them from the scratch
// lists. Everything c refers to is allocated here, for c alone.
func (d *fastDecoder) component(f frame, c *ical.Component) *ical.Component {
	c.Name = f.name

	// Children, in order; nil when there are none, as go-ical leaves them.
	if kids := d.children[f.childStart:]; len(kids) > 0 {
		c.Children = append([]*ical.Component(nil), kids...)
		clear(kids)
		d.children = d.children[:f.childStart]
	}

	ps := d.props[f.propStart:]
	if len(ps) == 0 {
		c.Props = make(ical.Props)
		return c
	}
	// The parameters of ps, and their values, are the last in the scratch
	// lists: those of children already built were removed.
	plo := int(ps[0].plo)
	vlo := len(d.pvals)
	if plo < len(d.params) {
		vlo = int(d.params[plo].vlo)
	}
	pvals := d.pvals[vlo:]

	// The bytes of every value, gathered in the order they are used below,
	// become one string: one allocation, of just those bytes. Another
	// holds the parameter value lists.
	d.vbuf = d.vbuf[:0]
	for i := range ps {
		p := &ps[i]
		if p.phi > p.plo {
			for _, v := range d.pvals[d.params[p.plo].vlo:d.params[p.phi-1].vhi] {
				d.vbuf = append(d.vbuf, d.text[v.off:v.off+v.n]...)
			}
		}
		d.vbuf = append(d.vbuf, d.text[p.value.off:p.value.off+p.value.n]...)
	}
	vals := packedValues(d.vbuf)
	var lists []string
	if len(pvals) > 0 {
		lists = make([]string, len(pvals))
	}

	// Group the properties by name, groups in order of first appearance
	// and properties in order within a group, and lay the groups out one
	// after another in one slice.
	d.groups = d.groups[:0]
	d.firsts = d.firsts[:0]
	d.counts = d.counts[:0]
	useMap := len(ps) > 32
	if useMap {
		if d.groupMap == nil {
			d.groupMap = make(map[string]int32)
		} else {
			clear(d.groupMap)
		}
	}
	for i := range ps {
		g := int32(-1)
		if useMap {
			if x, ok := d.groupMap[ps[i].name]; ok {
				g = x
			}
		} else {
			for j, fi := range d.firsts {
				if ps[fi].name == ps[i].name {
					g = int32(j)
					break
				}
			}
		}
		if g < 0 {
			g = int32(len(d.firsts))
			d.firsts = append(d.firsts, int32(i))
			d.counts = append(d.counts, 0)
			if useMap {
				d.groupMap[ps[i].name] = g
			}
		}
		d.groups = append(d.groups, g)
		d.counts[g]++
	}
	dst := make([]ical.Prop, len(ps))
	props := make(ical.Props, len(d.firsts))
	// counts becomes the next free index of each group.
	off := int32(0)
	for g, n := range d.counts {
		start := off
		off += n
		props[ps[d.firsts[g]].name] = dst[start:off:off]
		d.counts[g] = start
	}
	for i := range ps {
		p := &ps[i]
		g := d.groups[i]
		at := d.counts[g]
		d.counts[g]++
		var params ical.Params
		if p.phi > p.plo {
			params = make(ical.Params, p.phi-p.plo)
		}
		for _, pa := range d.params[p.plo:p.phi] {
			n := int(pa.vhi - pa.vlo)
			vs := lists[:n:n]
			lists = lists[n:]
			for j, v := range d.pvals[pa.vlo:pa.vhi] {
				vs[j] = vals.next(v.n)
			}
			if old, dup := params[pa.name]; dup {
				params[pa.name] = append(old, vs...)
			} else {
				params[pa.name] = vs
			}
		}
		dst[at] = ical.Prop{Name: p.name, Params: params, Value: vals.next(p.value.n)}
	}
	c.Props = props
	clear(ps)
	d.props = d.props[:f.propStart]
	clear(d.params[plo:])
	d.params = d.params[:plo]
	d.pvals = d.pvals[:vlo]
	return c
}

// packedValues hands out, in order, the values copied into one string.
type packedValues string

// next returns the next n bytes of *v as a string, and drops them from *v.
// An empty value is "", which refers to no memory.
func (v *packedValues) next(n int32) string {
	if n == 0 {
		return ""
	}
	s := string((*v)[:n])
	*v = (*v)[n:]
	return s
}

// parseLine splits one logical line, which starts at offset base of the
// text, like go-ical's lineDecoder: the name runs to the first ';' or ':';
// each parameter name runs from a ';' to the next '=' anywhere in the rest
// of the line (so it may hold ':' or '"'); a parameter value is a quoted
// string or runs to the next ';', ',' or ':' and may not hold '"'; after a
// value must come ',' (another value), ';' (another parameter) or ':' (the
// property value, the rest of the line, which starts at text offset voff).
// Names and parameter names are upper-cased as strings.ToUpper does (see
// upperName). When build is set, the parameters are appended to d.params
// and their values to d.pvals. ok is false where go-ical returns an error
// or panics.
func (d *fastDecoder) parseLine(s string, base int, build bool) (name string, voff int, ok bool) {
	i := 0
	for i < len(s) && s[i] != ';' && s[i] != ':' {
		i++
	}
	if i == 0 || i == len(s) {
		return "", 0, false
	}
	name = upperName(s[:i], build)
	for s[i] == ';' {
		rest := s[i+1:]
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", 0, false
		}
		pname := rest[:eq]
		p := i + 1 + eq + 1
		vlo := len(d.pvals)
		for {
			var v span
			if p < len(s) && s[p] == '"' {
				q := strings.IndexByte(s[p+1:], '"')
				if q < 0 {
					return "", 0, false
				}
				v = span{int32(base + p + 1), int32(q)}
				p += q + 2
			} else {
				j := p
				for j < len(s) {
					c := s[j]
					if c == ';' || c == ',' || c == ':' {
						break
					}
					if c == '"' {
						return "", 0, false
					}
					j++
				}
				v = span{int32(base + p), int32(j - p)}
				p = j
			}
			if build {
				d.pvals = append(d.pvals, v)
			}
			if p >= len(s) {
				// go-ical indexes past the end of the line: a panic.
				return "", 0, false
			}
			c := s[p]
			if c == ',' {
				p++
				continue
			}
			if c == ';' || c == ':' {
				break
			}
			// Text right after a closing quote: go-ical panics.
			return "", 0, false
		}
		if build {
			d.params = append(d.params, lexParam{name: upperName(pname, true), vlo: int32(vlo), vhi: int32(len(d.pvals))})
		}
		i = p
	}
	// s[i] is ':' here.
	return name, base + i + 1, true
}

// upperName upper-cases a name exactly as strings.ToUpper does. A common
// name (see knownNames) comes back as its constant, whatever its case, so
// that it costs no allocation and shares no memory with the text. Any
// other name is a copy of its own when own is set, and may be a substring
// of s otherwise.
func upperName(s string, own bool) string {
	lower := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			u := strings.ToUpper(s)
			if k, ok := knownNames[u]; ok {
				return k
			}
			if own && u == s {
				// strings.ToUpper returns s itself when nothing changes.
				u = strings.Clone(u)
			}
			return u
		}
		if 'a' <= c && c <= 'z' {
			lower = true
		}
	}
	if !lower {
		if k, ok := knownNames[s]; ok {
			return k
		}
		if own {
			return strings.Clone(s)
		}
		return s
	}
	var b [32]byte
	if len(s) <= len(b) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b[i] = c
		}
		if k, ok := knownNames[string(b[:len(s)])]; ok {
			return k
		}
		return string(b[:len(s)])
	}
	return strings.ToUpper(s)
}

// knownNames are the names of components, properties and parameters
// upperName hands out as constants: those of RFC 5545 and RFC 7986, and
// the extensions the clients in testdata/corpus write most.
var knownNames = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{
		"BEGIN", "END",
		ical.CompCalendar, ical.CompEvent, ical.CompToDo, ical.CompJournal,
		ical.CompFreeBusy, ical.CompTimezone, ical.CompAlarm,
		ical.CompTimezoneStandard, ical.CompTimezoneDaylight,
		ical.PropCalendarScale, ical.PropMethod, ical.PropProductID, ical.PropVersion,
		ical.PropName, ical.PropRefreshInterval, ical.PropSource,
		ical.PropAttach, ical.PropCategories, ical.PropClass, ical.PropComment,
		ical.PropDescription, ical.PropGeo, ical.PropLocation, ical.PropPercentComplete,
		ical.PropPriority, ical.PropResources, ical.PropStatus, ical.PropSummary,
		ical.PropColor, ical.PropImage,
		ical.PropCompleted, ical.PropDateTimeEnd, ical.PropDue, ical.PropDateTimeStart,
		ical.PropDuration, ical.PropFreeBusy, ical.PropTransparency,
		ical.PropTimezoneID, ical.PropTimezoneName, ical.PropTimezoneOffsetFrom,
		ical.PropTimezoneOffsetTo, ical.PropTimezoneURL,
		ical.PropAttendee, ical.PropContact, ical.PropOrganizer, ical.PropRecurrenceID,
		ical.PropRelatedTo, ical.PropURL, ical.PropUID, ical.PropConference,
		ical.PropExceptionDates, ical.PropRecurrenceDates, ical.PropRecurrenceRule,
		ical.PropAction, ical.PropRepeat, ical.PropTrigger,
		ical.PropCreated, ical.PropDateTimeStamp, ical.PropLastModified, ical.PropSequence,
		ical.PropRequestStatus,
		"EXRULE", "TZUNTIL", "ACKNOWLEDGED",
		// Parameters.
		ical.ParamAltRep, ical.ParamCommonName, ical.ParamCalendarUserType,
		ical.ParamDelegatedFrom, ical.ParamDelegatedTo, ical.ParamDir,
		ical.ParamDisplay, ical.ParamEmail, ical.ParamEncoding, ical.ParamFormatType,
		ical.ParamFreeBusyType, ical.ParamFeature, ical.ParamLabel, ical.ParamLanguage,
		ical.ParamMember, ical.ParamParticipationStatus, ical.ParamRange,
		ical.ParamRelated, ical.ParamRelationshipType, ical.ParamRole, ical.ParamRSVP,
		ical.ParamSentBy, ical.ParamTimezoneID, ical.ParamValue,
		"SCHEDULE-STATUS", "SCHEDULE-AGENT", "X-NUM-GUESTS",
		// Common extensions.
		"X-WR-CALNAME", "X-WR-TIMEZONE", "X-WR-CALDESC", "X-WR-ALARMUID", "X-LIC-LOCATION",
		"X-MICROSOFT-CDO-BUSYSTATUS", "X-MICROSOFT-CDO-INTENDEDSTATUS",
		"X-MICROSOFT-CDO-ALLDAYEVENT", "X-MICROSOFT-CDO-IMPORTANCE",
		"X-MICROSOFT-CDO-INSTTYPE", "X-MICROSOFT-CDO-OWNERAPPTID",
		"X-MICROSOFT-CDO-APPT-SEQUENCE", "X-MICROSOFT-DISALLOW-COUNTER",
		"X-MICROSOFT-DONOTFORWARDMEETING", "X-ALT-DESC",
		"X-MOZ-GENERATION", "X-MOZ-LASTACK", "X-MOZ-RECEIVED-SEQUENCE",
		"X-MOZ-RECEIVED-DTSTAMP", "X-MOZ-SEND-INVITATIONS",
		"X-APPLE-TRAVEL-ADVISORY-BEHAVIOR", "X-APPLE-STRUCTURED-LOCATION",
		"X-GOOGLE-CONFERENCE", "X-KOLAB-VERSION",
	} {
		m[s] = s
	}
	return m
}()
