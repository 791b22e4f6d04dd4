package calendar

import (
	"bytes"
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
// Here the text is unfolded once into a single buffer that becomes one
// string; names, values and parameter values are substrings of it. Props,
// child lists, components and parameter value lists are carved out of a
// few slabs (with their capacity clipped, so an append by a caller never
// writes into a neighbour). What remains per property is the Params map,
// which callers modify and so must own.
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
// It never panics and uses no recursion, so nesting depth is bounded only
// by the input size. All returned strings share one allocation holding the
// unfolded text.
func decodeFast(data []byte) (cals []*ical.Calendar, err error) {
	defer func() {
		// Nothing below is expected to panic; this keeps the promise
		// Decode makes even if something does.
		if r := recover(); r != nil {
			cals, err = nil, ErrMalformed
		}
	}()
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

// unfoldLines turns data into its logical lines, as go-ical's
// readContinuedLine reads them, each followed by LF; empty lines (which
// go-ical skips) are left out. A physical line that starts with a space or
// a tab continues the previous one, without that first byte. Where go-ical
// meets io.EOF inside a logical line (a continuation line that is one
// space or tab and nothing more at the very end, or the piece case of
// physLine) it drops that line and stops, and so does this.
//
// It also counts the lines and, roughly, the BEGIN lines, so that the
// slabs can be sized.
func unfoldLines(buf, data []byte) (out []byte, lines, begins int) {
	pos, n := 0, len(data)
	for pos < n {
		end, next, ok := physLine(data, pos)
		if !ok {
			break
		}
		start := len(buf)
		if isBeginLine(data[pos:end]) {
			begins++
		}
		buf = append(buf, data[pos:end]...)
		pos = next
		for pos < n && (data[pos] == ' ' || data[pos] == '\t') {
			end, next, ok = physLine(data, pos+1)
			if !ok {
				return buf[:start], lines, begins
			}
			buf = append(buf, data[pos+1:end]...)
			pos = next
		}
		if len(buf) > start {
			buf = append(buf, '\n')
			lines++
		}
	}
	return buf, lines, begins
}

// isBeginLine is a cheap guess at whether a line is a BEGIN line, used
// only to size the slabs.
func isBeginLine(b []byte) bool {
	return len(b) > 5 && (b[5] == ':' || b[5] == ';') &&
		(b[0]|0x20) == 'b' && (b[1]|0x20) == 'e' && (b[2]|0x20) == 'g' && (b[3]|0x20) == 'i' && (b[4]|0x20) == 'n'
}

// frame is a component being decoded.
type frame struct {
	name       string
	propStart  int // its properties are d.props[propStart:]
	childStart int // its children are d.children[childStart:]
}

// param is one parameter of the line being decoded; its values are
// d.values[lo:hi].
type param struct {
	name   string
	lo, hi int
}

// fastDecoder holds the scratch space of one decodeFast call; it is
// recycled through a pool.
type fastDecoder struct {
	stack    []frame
	props    []ical.Prop       // properties of the open components
	children []*ical.Component // children of the open components
	params   []param
	values   []string
	groups   []int32 // group of each property of the component being closed
	firsts   []int32 // index of the first property of each group
	counts   []int32
	groupMap map[string]int32

	// Slabs the results are carved from.
	propSlab  []ical.Prop
	compSlab  []ical.Component
	childSlab []*ical.Component
	valueSlab []string
}

var decoders = sync.Pool{New: func() any { return new(fastDecoder) }}

// maxScratch bounds the scratch slices kept in the pool.
const maxScratch = 4096

func (d *fastDecoder) release() {
	d.stack = keep(d.stack)
	d.props = keep(d.props)
	d.children = keep(d.children)
	d.params = keep(d.params)
	d.values = keep(d.values)
	d.groups = keep(d.groups)
	d.firsts = keep(d.firsts)
	d.counts = keep(d.counts)
	if len(d.groupMap) > maxScratch {
		d.groupMap = nil
	} else {
		clear(d.groupMap)
	}
	d.propSlab, d.compSlab, d.childSlab, d.valueSlab = nil, nil, nil, nil
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
	buf, lines, begins := unfoldLines(make([]byte, 0, len(data)+1), data)
	if len(buf) == 0 {
		return nil, nil
	}
	// buf is never written again: the string may share its memory.
	text := unsafe.String(unsafe.SliceData(buf), len(buf))

	// Nothing is built past maxComponents, whatever the guess says.
	begins = min(begins, lines, maxComponents+1)
	d.compSlab = make([]ical.Component, begins)
	if np := lines - 2*begins; np > 0 {
		d.propSlab = make([]ical.Prop, np)
	}
	if begins > 1 {
		d.childSlab = make([]*ical.Component, begins-1)
	}

	var cals []*ical.Calendar
	total := 0    // components of the calendars in cals
	current := 0  // components of the top-level component being decoded
	build := true // false once current makes the total too large
	for len(text) > 0 {
		i := strings.IndexByte(text, '\n')
		line := text[:i]
		text = text[i+1:]

		name, value, params, ok := d.parseLine(line, build)
		if !ok {
			return nil, ErrMalformed
		}
		if len(d.stack) == 0 {
			if name != "BEGIN" {
				return nil, ErrMalformed
			}
			d.stack = append(d.stack, frame{name: upperName(value)})
			current = 1
			build = total+current <= maxComponents
			continue
		}
		switch name {
		case "BEGIN":
			d.stack = append(d.stack, frame{
				name:       upperName(value),
				propStart:  len(d.props),
				childStart: len(d.children),
			})
			current++
			if total+current > maxComponents {
				build = false
			}
		case "END":
			f := d.stack[len(d.stack)-1]
			d.stack = d.stack[:len(d.stack)-1]
			if !strings.EqualFold(value, f.name) {
				return nil, ErrMalformed
			}
			var comp *ical.Component
			if build {
				comp = d.component(f)
			}
			if len(d.stack) > 0 {
				if build {
					d.children = append(d.children, comp)
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
			cals = append(cals, &ical.Calendar{Component: comp})
		default:
			if build {
				d.props = append(d.props, ical.Prop{Name: name, Params: params, Value: value})
			}
		}
	}
	// Text that ends inside a component: go-ical's Decode answers io.EOF,
	// and the component is dropped.
	return cals, nil
}

// component builds the component f from the properties and children
// gathered since it began, and removes them from the scratch lists.
func (d *fastDecoder) component(f frame) *ical.Component {
	var c *ical.Component
	if len(d.compSlab) > 0 {
		c = &d.compSlab[0]
		d.compSlab = d.compSlab[1:]
	} else {
		c = new(ical.Component)
	}
	c.Name = f.name

	// Children, in order; nil when there are none, as go-ical leaves them.
	if kids := d.children[f.childStart:]; len(kids) > 0 {
		var dst []*ical.Component
		if len(d.childSlab) >= len(kids) {
			dst = d.childSlab[:len(kids):len(kids)]
			d.childSlab = d.childSlab[len(kids):]
		} else {
			dst = make([]*ical.Component, len(kids))
		}
		copy(dst, kids)
		c.Children = dst
		clear(kids)
		d.children = d.children[:f.childStart]
	}

	ps := d.props[f.propStart:]
	if len(ps) == 0 {
		c.Props = make(ical.Props)
		return c
	}
	// Group the properties by name, groups in order of first appearance
	// and properties in order within a group, and lay the groups out one
	// after another in one slab piece.
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
			if x, ok := d.groupMap[ps[i].Name]; ok {
				g = x
			}
		} else {
			for j, fi := range d.firsts {
				if ps[fi].Name == ps[i].Name {
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
				d.groupMap[ps[i].Name] = g
			}
		}
		d.groups = append(d.groups, g)
		d.counts[g]++
	}
	var dst []ical.Prop
	if len(d.propSlab) >= len(ps) {
		dst = d.propSlab[:len(ps):len(ps)]
		d.propSlab = d.propSlab[len(ps):]
	} else {
		dst = make([]ical.Prop, len(ps))
	}
	props := make(ical.Props, len(d.firsts))
	if len(d.firsts) == len(ps) {
		// Every name once: the common case.
		copy(dst, ps)
		for i := range dst {
			props[dst[i].Name] = dst[i : i+1 : i+1]
		}
	} else {
		// counts becomes the next free index of each group.
		off := int32(0)
		for g, n := range d.counts {
			start := off
			off += n
			props[ps[d.firsts[g]].Name] = dst[start:off:off]
			d.counts[g] = start
		}
		for i := range ps {
			g := d.groups[i]
			dst[d.counts[g]] = ps[i]
			d.counts[g]++
		}
	}
	c.Props = props
	clear(ps)
	d.props = d.props[:f.propStart]
	return c
}

// parseLine splits one logical line like go-ical's lineDecoder: the name
// runs to the first ';' or ':'; each parameter name runs from a ';' to the
// next '=' anywhere in the rest of the line (so it may hold ':' or '"');
// a parameter value is a quoted string or runs to the next ';', ',' or
// ':' and may not hold '"'; after a value must come ',' (another value),
// ';' (another parameter) or ':' (the property value, the rest of the
// line). Names and parameter names are upper-cased with strings.ToUpper.
// ok is false where go-ical returns an error or panics. params is nil
// unless build is set.
func (d *fastDecoder) parseLine(s string, build bool) (name, value string, params ical.Params, ok bool) {
	i := 0
	for i < len(s) && s[i] != ';' && s[i] != ':' {
		i++
	}
	if i == 0 || i == len(s) {
		return "", "", nil, false
	}
	name = upperName(s[:i])
	d.params = d.params[:0]
	d.values = d.values[:0]
	for s[i] == ';' {
		rest := s[i+1:]
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return "", "", nil, false
		}
		pname := rest[:eq]
		p := i + 1 + eq + 1
		lo := len(d.values)
		for {
			var v string
			if p < len(s) && s[p] == '"' {
				q := strings.IndexByte(s[p+1:], '"')
				if q < 0 {
					return "", "", nil, false
				}
				v = s[p+1 : p+1+q]
				p += q + 2
			} else {
				j := p
				for j < len(s) {
					c := s[j]
					if c == ';' || c == ',' || c == ':' {
						break
					}
					if c == '"' {
						return "", "", nil, false
					}
					j++
				}
				v = s[p:j]
				p = j
			}
			if build {
				d.values = append(d.values, v)
			}
			if p >= len(s) {
				// go-ical indexes past the end of the line: a panic.
				return "", "", nil, false
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
			return "", "", nil, false
		}
		if build {
			d.params = append(d.params, param{name: upperName(pname), lo: lo, hi: len(d.values)})
		}
		i = p
	}
	// s[i] is ':' here.
	value = s[i+1:]
	if !build {
		return name, value, nil, true
	}
	params = make(ical.Params, len(d.params))
	for _, pa := range d.params {
		vs := d.carveValues(d.values[pa.lo:pa.hi])
		if old, dup := params[pa.name]; dup {
			params[pa.name] = append(old, vs...)
		} else {
			params[pa.name] = vs
		}
	}
	return name, value, params, true
}

// carveValues copies vs into a piece of the value slab.
func (d *fastDecoder) carveValues(vs []string) []string {
	n := len(vs)
	if len(d.valueSlab) < n {
		size := 2 * cap(d.valueSlab)
		if size < 16 {
			size = 16
		}
		if size > 1024 {
			size = 1024
		}
		if size < n {
			size = n
		}
		d.valueSlab = make([]string, size)
	}
	dst := d.valueSlab[:n:n]
	d.valueSlab = d.valueSlab[n:]
	copy(dst, vs)
	return dst
}

// upperName upper-cases a name exactly as strings.ToUpper does, returning
// the ical constants for the usual names written in lower case so that
// they cost no allocation either.
func upperName(s string) string {
	lower := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return strings.ToUpper(s)
		}
		if 'a' <= c && c <= 'z' {
			lower = true
		}
	}
	if !lower {
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
	}
	return strings.ToUpper(s)
}

// knownNames are the names of components, properties and parameters
// upperName hands out without allocating.
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
		// Parameters.
		ical.ParamAltRep, ical.ParamCommonName, ical.ParamCalendarUserType,
		ical.ParamDelegatedFrom, ical.ParamDelegatedTo, ical.ParamDir,
		ical.ParamDisplay, ical.ParamEmail, ical.ParamEncoding, ical.ParamFormatType,
		ical.ParamFreeBusyType, ical.ParamFeature, ical.ParamLabel, ical.ParamLanguage,
		ical.ParamMember, ical.ParamParticipationStatus, ical.ParamRange,
		ical.ParamRelated, ical.ParamRelationshipType, ical.ParamRole, ical.ParamRSVP,
		ical.ParamSentBy, ical.ParamTimezoneID, ical.ParamValue,
		// Common extensions.
		"X-WR-CALNAME", "X-WR-TIMEZONE", "X-WR-CALDESC", "X-LIC-LOCATION",
		"X-MICROSOFT-CDO-BUSYSTATUS", "X-MICROSOFT-CDO-ALLDAYEVENT",
		"X-MOZ-GENERATION", "X-MOZ-LASTACK", "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR",
		"SCHEDULE-STATUS", "SCHEDULE-AGENT", "X-NUM-GUESTS",
	} {
		m[s] = s
	}
	return m
}()
