package imapstore

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// A cold read of a folder of small messages used to fetch every message
// whole (BODY.PEEK[]<0.n>) and split its MIME structure here. Asking for
// each message's BODYSTRUCTURE and the one part that holds its calendar
// instead costs the server less (Dovecot answers BODYSTRUCTURE from its
// cache; for the test bed's 10,000 messages it sends 5.5 MB instead of
// 9.6 MB, in 120-128 ms of CPU instead of 127-141) and fbpub no MIME
// splitting.
// Which part that is, the body structure of the folder's last message
// tells (probe); a message whose structure says otherwise has its parts
// fetched after the first round, as go-imap reads them.

// structure is what the bulk reader keeps of a message's BODYSTRUCTURE:
// the single parts whose media type the query wants, in the order of the
// structure, with their bodies still empty. ok is false when the
// structure holds something the reader does not model (an RFC 2047
// encoded parameter value, nesting deeper than maxBodyDepth); the
// message's parts are then read with go-imap.
type structure struct {
	wanted []Part
	ok     bool
}

// maxBodyDepth bounds the multipart nesting the reader follows.
const maxBodyDepth = 16

// maxStructLiteral bounds a literal inside a body structure (a parameter
// value sent as a literal).
const maxStructLiteral = 1 << 20

// bodyStructure reads a body structure (RFC 3501 "body") at p. The parts
// it wants are those whose media type (lower case) want accepts; a part
// larger than maxPart is marked TooLarge. It returns errBulkSyntax only
// for text that is not a well-formed value.
func (r *fetchReader) bodyStructure(p *lineParser, want func(string) bool, maxPart uint32) (*structure, error) {
	s := &structure{ok: true}
	var path [maxBodyDepth + 1]int
	err := r.body(p, s, path[:0], want, maxPart)
	return s, err
}

// body reads one body at path (empty for the message itself); path has
// room for maxBodyDepth+1 numbers.
func (r *fetchReader) body(p *lineParser, s *structure, path []int, want func(string) bool, maxPart uint32) error {
	if !p.byte('(') {
		return p.fail()
	}
	if len(path) >= maxBodyDepth {
		s.ok = false
		return r.skipList(p)
	}
	if p.next('(') {
		// Multipart: the children, then the subtype and extension data,
		// which do not matter here.
		for n := 1; p.next('('); n++ {
			if err := r.body(p, s, append(path, n), want, maxPart); err != nil {
				return err
			}
			if rest := p.rest(); len(rest) > 1 && rest[0] == ' ' && rest[1] == '(' {
				p.sp()
			}
		}
		return r.skipList(p)
	}
	if len(path) == 0 {
		path = append(path, 1) // a message that is not multipart has part 1
	}
	// body-type-1part: type SP subtype SP params SP id SP description SP
	// encoding SP octets, then what depends on the type and extension
	// data, none of which matters here.
	mt, wanted, ok, err := r.mediaType(p, want)
	if err != nil {
		return err
	}
	if !ok {
		s.ok = false
		return r.skipList(p)
	}
	if !wanted {
		return r.skipList(p)
	}
	part := Part{Path: slices.Clone(path), MediaType: mt}
	if part.Params, ok, err = r.params(p); err != nil {
		return err
	}
	fields := ok && p.sp()
	for i := 0; fields && i < 3; i++ { // id, description, encoding
		var v []byte
		var isString bool
		if v, isString, err = r.text(p); err != nil {
			return err
		}
		if i == 2 {
			part.Encoding = r.intern(v, true)
		}
		fields = (isString || v == nil) && p.sp()
	}
	var size uint64
	if fields {
		size, fields = p.number()
	}
	if !fields || size > 1<<32-1 {
		s.ok = false
		return r.skipList(p)
	}
	if part.Encoding == "" {
		part.Encoding = "7bit" // as go-imap reads a NIL encoding
	}
	part.TooLarge = uint32(size) > maxPart
	s.wanted = append(s.wanted, part)
	return r.skipList(p)
}

// mediaType reads a single part's type and subtype strings and the space
// after them, and returns its media type in lower case and whether want
// accepts it. ok is false for anything else.
func (r *fetchReader) mediaType(p *lineParser, want func(string) bool) (mt string, wanted, ok bool, err error) {
	typ, isString, err := r.text(p)
	if err != nil || !isString || !p.sp() {
		return "", false, false, err
	}
	buf := append(r.mt[:0], typ...)
	buf = append(buf, '/')
	sub, isString, err := r.text(p)
	if err != nil || !isString || !p.sp() {
		return "", false, false, err
	}
	buf = append(buf, sub...)
	for i, c := range buf {
		if 'A' <= c && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	r.mt = buf
	// A folder's messages have a handful of media types: each is made a
	// string, lower-cased and asked about once.
	if known, ok := r.types[string(buf)]; ok {
		return known.mt, known.wanted, true, nil
	}
	mt = strings.ToLower(string(buf))
	wanted = want(mt)
	if len(r.types) < maxInterned {
		if r.types == nil {
			r.types = map[string]knownType{}
		}
		r.types[string(buf)] = knownType{mt, wanted}
	}
	return mt, wanted, true, nil
}

// knownType is a media type the reader met before, and whether it is
// wanted.
type knownType struct {
	mt     string
	wanted bool
}

// maxInterned bounds the media types and strings a reader keeps.
const maxInterned = 64

// intern returns b as a string (in lower case if lower), the same string
// for the same text: parameter names and values and encodings repeat
// from message to message.
func (r *fetchReader) intern(b []byte, lower bool) string {
	m := &r.strings
	if lower {
		m = &r.lower
	}
	if v, ok := (*m)[string(b)]; ok {
		return v
	}
	v := string(b)
	if lower {
		v = strings.ToLower(v)
	}
	if len(*m) < maxInterned {
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[string(b)] = v
	}
	return v
}

// params reads a body-fld-param: NIL or a list of name and value
// strings, names in lower case. ok is false for a list the reader does
// not model: an odd count, values that are not strings, an empty name or
// an RFC 2047 encoded value (go-imap decodes those). The parts of a folder's
// messages have the same parameters (charset=utf-8, method=PUBLISH), so
// a map equal to the one returned before is that one again: callers
// must not modify it.
func (r *fetchReader) params(p *lineParser) (map[string]string, bool, error) {
	r.pairs = r.pairs[:0]
	if !p.word("NIL") {
		if !p.byte('(') {
			return map[string]string{}, false, nil
		}
		// odd passes over the rest of a list the reader does not model.
		odd := func() (map[string]string, bool, error) {
			return map[string]string{}, false, r.skipList(p)
		}
		for i := 0; !p.byte(')'); i++ {
			if i > 0 && !p.sp() {
				return odd()
			}
			name, ok, err := r.text(p)
			if err != nil {
				return nil, false, err
			}
			if !ok || len(name) == 0 || !p.sp() {
				return odd() // go-imap takes an empty name for none
			}
			k := r.intern(name, true)
			value, ok, err := r.text(p)
			if err != nil {
				return nil, false, err
			}
			if !ok || bytes.Contains(value, []byte("=?")) {
				return odd()
			}
			r.pairs = append(r.pairs, [2]string{k, r.intern(value, false)})
		}
	}
	if last := r.lastParams; last != nil && len(last) <= len(r.pairs) {
		same := true
		for _, kv := range r.pairs {
			if v, ok := last[kv[0]]; !ok || v != kv[1] {
				same = false
				break
			}
		}
		// Equal unless a name came twice (the last value counts).
		if same && len(last) == len(r.pairs) {
			return last, true, nil
		}
	}
	params := make(map[string]string, len(r.pairs))
	for _, kv := range r.pairs {
		params[kv[0]] = kv[1]
	}
	r.lastParams = params
	return params, true, nil
}

// text reads a string (quoted or a literal) and reports true, or NIL
// (nil, false). Anything else is not consumed and gives (nil, false)
// too. The text is valid until the next line is read.
func (r *fetchReader) text(p *lineParser) ([]byte, bool, error) {
	switch {
	case p.word("NIL"):
		return nil, false, nil
	case p.byte('"'):
		s := p.rest()
		if end := bytes.IndexByte(s, '"'); end >= 0 && bytes.IndexByte(s[:end], '\\') < 0 {
			p.i += end + 1
			return s[:end:end], true, nil
		}
		v, ok := p.quoted()
		if !ok {
			return nil, false, p.fail()
		}
		return v, true, nil
	case p.next('{'):
		v, err := r.literal(p, maxStructLiteral)
		return v, err == nil, err
	}
	return nil, false, nil
}

// literal reads a literal ({n} at the end of the line, then n octets) of
// at most max octets into a buffer of its size; parsing goes on on the
// line after it.
func (r *fetchReader) literal(p *lineParser, max uint64) ([]byte, error) {
	if !p.byte('{') {
		return nil, p.fail()
	}
	n, ok := p.number()
	if !ok || !p.byte('}') || p.end() != nil || n > max {
		return nil, p.fail()
	}
	v := make([]byte, n)
	if _, err := io.ReadFull(r.br, v); err != nil {
		return nil, err
	}
	line, err := r.line()
	if err != nil {
		return nil, err
	}
	p.reset(line)
	return v, nil
}

// skipList skips the values up to and including the ")" that closes the
// list being read: atoms, strings, literals and nested lists.
func (r *fetchReader) skipList(p *lineParser) error {
	depth := 1
	for depth > 0 {
		if p.i == len(p.all) {
			return p.fail()
		}
		switch c := p.all[p.i]; {
		case c == '(':
			depth++
			p.i++
		case c == ')':
			depth--
			p.i++
		case c == ' ':
			p.i++
		case c == '"':
			if !p.skipQuoted() {
				return p.fail()
			}
		case c == '{':
			if _, err := r.literal(p, maxStructLiteral); err != nil {
				return err
			}
		case isAtomChar(c) || c == '\\':
			p.atom()
			if c == '\\' {
				p.i++
			}
		default:
			return p.fail()
		}
	}
	return nil
}

// structureFetch asks for every message's UID, flags (and MODSEQ, which
// CONDSTORE adds), body structure (the parts of it q wants), and first
// q.WholeBelow octets of the part at path.
func structureFetch(path []int, q Query) bulkFetch {
	n := q.WholeBelow
	key := pathKey(path)
	size := strconv.FormatUint(uint64(n), 10)
	return bulkFetch{
		items:     "UID FLAGS BODYSTRUCTURE BODY.PEEK[" + key + "]<0." + size + ">",
		name:      "BODY[" + key + "]<0>",
		section:   &imap.FetchItemBodySection{Part: path, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: int64(n)}},
		max:       int(n),
		structure: true,
		want:      q.Want,
		maxPart:   q.MaxPart,
	}
}
