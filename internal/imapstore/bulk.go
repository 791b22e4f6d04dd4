package imapstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

// The first round of a folder read from scratch, UID FETCH 1:* of every
// message's first WholeBelow octets, is most of a cold build, and go-imap
// spends most of fbpub's CPU on it: it hands every message and every item
// through channels between goroutines, with some twenty allocations per
// message (for a folder of 10,000 small messages on the test bed Dovecot,
// ~95 ms of client CPU, against ~23 ms for a reader that parses the
// answer where it arrives). So that round runs on a connection of fbpub's own,
// a bulkConn, read on the caller's goroutine into buffers of the announced
// size. It understands only what that command brings; anything else ends
// it with errBulkSyntax, and the caller fetches with go-imap instead.

// errBulkSyntax means the server answered something the bulk reader does
// not understand; the fetch falls back to go-imap.
var errBulkSyntax = errors.New("imapstore: bulk fetch: unexpected response")

// bulkIdle is how long a bulk connection is kept after a fetch (see
// bulkSlot).
const bulkIdle = time.Minute

// bulkConn is a logged-in connection of fbpub's own, driven synchronously
// by one goroutine at a time (its session's).
type bulkConn struct {
	conn    net.Conn
	br      *bufio.Reader // maxLine octets: a longer line is an error
	timeout time.Duration
	observe func(command string, err error, d time.Duration)
	tag     int
	moved   time.Time // when the deadline was last moved on
}

// dialBulk connects and logs in as opts say. The password never appears
// in an error.
func dialBulk(ctx context.Context, opts *Options) (*bulkConn, error) {
	d := net.Dialer{Timeout: opts.timeout()}
	raw, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("imapstore: connect %s: %w", opts.Addr, err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	_ = raw.SetDeadline(time.Now().Add(opts.timeout()))
	conn, br, g, err := handshake(ctx, raw, opts)
	if err != nil {
		raw.Close()
		return nil, err
	}
	b := &bulkConn{conn: conn, br: bufio.NewReaderSize(br, maxLine), timeout: opts.timeout(), observe: opts.Observe}
	if g.kind != "PREAUTH" {
		if _, err := b.exec("LOGIN", nil, loginArgs(opts)...); err != nil {
			conn.Close()
			return nil, loginError(ctx, opts, err)
		}
	}
	return b, nil
}

// close logs out briefly and closes the connection.
func (b *bulkConn) close() {
	_ = b.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(b.conn, "Z LOGOUT\r\n")
	b.conn.Close()
}

// progress moves the deadline a timeout ahead, at most once a second: a
// long answer that keeps arriving does not time out, a stalled one does.
func (b *bulkConn) progress() {
	if now := time.Now(); now.Sub(b.moved) > time.Second {
		_ = b.conn.SetDeadline(now.Add(b.timeout))
		b.moved = now
	}
}

// line reads the next line, without its CRLF (a bare LF is accepted). It
// points into the reader's buffer, valid until the next read.
func (b *bulkConn) line() ([]byte, error) {
	b.progress()
	line, err := b.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("imapstore: response line too long")
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// exec sends a command and reads its responses on this goroutine: the
// tagged one is returned (a NO or BAD as an *imap.Error), untagged ones go
// to untagged, when set, as raw lines. name, when not empty, is reported
// to Options.Observe.
func (b *bulkConn) exec(name string, untagged func(line []byte) error, args ...cmdArg) (*response, error) {
	t0 := time.Now()
	r, err := b.exec1(untagged, args)
	if name != "" && b.observe != nil {
		b.observe(name, err, time.Since(t0))
	}
	return r, err
}

func (b *bulkConn) exec1(untagged func(line []byte) error, args []cmdArg) (*response, error) {
	b.tag++
	tag := "B" + strconv.Itoa(b.tag)
	chunks := encodeArgs(args, false)
	chunks[0] = append([]byte(tag+" "), chunks[0]...)
	_ = b.conn.SetDeadline(time.Now().Add(b.timeout))
	b.moved = time.Now()
	for i, chunk := range chunks {
		if i > 0 {
			if _, err := b.await("+", untagged); err != nil {
				return nil, err
			}
		}
		if _, err := b.conn.Write(chunk); err != nil {
			return nil, err
		}
	}
	return b.await(tag, untagged)
}

// await reads responses until the one tagged tag ("+" for a continuation
// request).
func (b *bulkConn) await(tag string, untagged func(line []byte) error) (*response, error) {
	for {
		line, err := b.line()
		if err != nil {
			return nil, err
		}
		if bytes.HasPrefix(line, []byte("* ")) && !isBye(line) {
			if untagged != nil {
				if err := untagged(line); err != nil {
					return nil, err
				}
			} else if _, err := parseResponse(b.br, string(line)); err != nil {
				return nil, err // read to its end, literals included
			}
			continue
		}
		r, err := parseResponse(b.br, string(line))
		switch {
		case err != nil:
			return nil, err
		case r.tag == "*": // BYE
			return nil, fmt.Errorf("imapstore: server said BYE: %s", r.text)
		case r.tag != tag:
			return nil, fmt.Errorf("%w: %s %s", errBulkSyntax, r.tag, r.kind)
		case r.tag != "+" && r.kind != "OK":
			return r, statusError(r)
		}
		return r, nil
	}
}

func isBye(line []byte) bool {
	return len(line) >= 5 && bytes.EqualFold(line[2:5], []byte("BYE"))
}

// examine selects folder read-only, with CONDSTORE when the server has
// it, and returns its state. A refusal is ErrNotFound.
func (b *bulkConn) examine(folder string, condStore bool, probe *Query, changed func()) (State, *structure, error) {
	var st State
	untagged := func(line []byte) error {
		r, err := parseResponse(b.br, string(line))
		if err != nil {
			return err
		}
		// EXISTS and the codes of OK make the state; other data (FLAGS,
		// news of the folder selected before) does not matter here.
		switch {
		case r.kind == "EXISTS":
			n, err := strconv.ParseUint(r.num, 10, 32)
			if err != nil {
				return fmt.Errorf("%w: EXISTS %s", errBulkSyntax, r.num)
			}
			st.Messages = uint32(n)
		case r.kind == "OK":
			return stateCode(&st, r.text)
		}
		return nil
	}
	args := []cmdArg{atomArg("EXAMINE"), stringArg(mutf7.Encode(folder))}
	if condStore {
		args = append(args, listArg(atomArg("CONDSTORE")))
	}
	var err, probeErr error
	var last *structure
	if probe == nil {
		_, err = b.exec("SELECT", untagged, args...)
	} else {
		// The body structure of the folder's last message (see plan),
		// asked in the same round trip: a server answers pipelined
		// commands in order, and if EXAMINE fails, FETCH fails too.
		r := &fetchReader{br: b.br, line: b.line, f: bulkFetch{structure: true, want: probe.Want, maxPart: probe.MaxPart}}
		probed := func(line []byte) error {
			m, err := r.response(line)
			switch {
			case err != nil:
				return err
			case m != nil && r.structure != nil:
				last = r.structure
			case r.changed:
				changed()
			}
			return nil
		}
		err, probeErr = b.execTwo(command{"SELECT", untagged, args}, command{"FETCH", probed, []cmdArg{atomArg("FETCH * (BODYSTRUCTURE)")}})
	}
	if isNo(err) {
		return st, nil, fmt.Errorf("%w: %q", ErrNotFound, folder)
	}
	if err == nil && probeErr != nil {
		var ie *imap.Error
		if !errors.As(probeErr, &ie) {
			return st, nil, probeErr
		}
		last = nil // refused (the folder emptied meanwhile): read it whole
	}
	return st, last, err
}

// command is one command for execTwo: the name reported to
// Options.Observe, the handler of its untagged responses, its arguments.
type command struct {
	name     string
	untagged func(line []byte) error
	args     []cmdArg
}

// execTwo sends two commands and reads their answers, each with its own
// handler: in one round trip when both fit on a line (no literal to wait
// for a continuation), else one after the other. A failure of the
// connection is both errors.
func (b *bulkConn) execTwo(c1, c2 command) (err1, err2 error) {
	ch1, ch2 := encodeArgs(c1.args, false), encodeArgs(c2.args, false)
	if len(ch1) > 1 || len(ch2) > 1 {
		_, err1 = b.exec(c1.name, c1.untagged, c1.args...)
		if err1 != nil && !isStatus(err1) {
			return err1, err1
		}
		_, err2 = b.exec(c2.name, c2.untagged, c2.args...)
		return err1, err2
	}
	t0 := time.Now()
	tag1, tag2 := "B"+strconv.Itoa(b.tag+1), "B"+strconv.Itoa(b.tag+2)
	b.tag += 2
	line := append([]byte(tag1+" "), ch1[0]...)
	line = append(append(line, tag2+" "...), ch2[0]...)
	_ = b.conn.SetDeadline(time.Now().Add(b.timeout))
	b.moved = time.Now()
	if _, err := b.conn.Write(line); err != nil {
		return err, err
	}
	_, err1 = b.await(tag1, c1.untagged)
	if b.observe != nil {
		b.observe(c1.name, err1, time.Since(t0))
	}
	if err1 != nil && !isStatus(err1) {
		return err1, err1
	}
	_, err2 = b.await(tag2, c2.untagged)
	if b.observe != nil {
		b.observe(c2.name, err2, time.Since(t0))
	}
	return err1, err2
}

// isStatus reports whether err is the server's NO or BAD, after which the
// connection goes on.
func isStatus(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

// stateCode reads the response codes of EXAMINE that make a folder's
// state: [UIDVALIDITY n], [UIDNEXT n], [HIGHESTMODSEQ n] or [NOMODSEQ];
// [CLOSED] says that what came before was about the folder selected
// before (RFC 7162 section 3.2.11).
func stateCode(st *State, text string) error {
	rest, ok := strings.CutPrefix(text, "[")
	if !ok {
		return nil
	}
	code, _, ok := strings.Cut(rest, "]")
	if !ok {
		return nil
	}
	name, arg, _ := strings.Cut(code, " ")
	switch name = strings.ToUpper(name); name {
	case "CLOSED":
		*st = State{}
		return nil
	case "NOMODSEQ":
		st.HighestModSeq = 0
		return nil
	case "UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ":
	default:
		return nil
	}
	n, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || name != "HIGHESTMODSEQ" && n > math.MaxUint32 {
		return fmt.Errorf("%w: [%s]", errBulkSyntax, code)
	}
	switch name {
	case "UIDVALIDITY":
		st.UIDValidity = uint32(n)
	case "UIDNEXT":
		st.UIDNext = uint32(n)
	default:
		st.HighestModSeq = n
	}
	return nil
}

// bulkFetch says what a bulk UID FETCH 1:* asks for: items, sent as they
// are, among them one body section, which the server names name in its
// answer, of at most max octets.
type bulkFetch struct {
	items   string
	name    string
	section *imap.FetchItemBodySection
	max     int
	// structure says that items hold BODYSTRUCTURE (see bulkstruct.go),
	// whose parts of a media type want accepts are wanted, those over
	// maxPart octets too large.
	structure bool
	want      func(mediaType string) bool
	maxPart   uint32
}

// wholeFetch asks for every message's UID, flags (and MODSEQ, which
// CONDSTORE adds) and first n octets.
func wholeFetch(n uint32) bulkFetch {
	size := strconv.FormatUint(uint64(n), 10)
	return bulkFetch{items: "UID FLAGS BODY.PEEK[]<0." + size + ">", name: "BODY[]<0>", section: wholeSection(n), max: int(n)}
}

// fetchAll examines folder and, unless it is empty, fetches what plan
// says of every message, calling each with every message as it arrives
// (and its body structure, when plan asked for it), and changed when the
// server reports a change meanwhile. When probe is set, the body
// structure of the folder's last message is read with EXAMINE, for the
// parts probe wants, and given to plan (nil when there is none). On an
// error it returns the messages read so far (each has seen them).
func (b *bulkConn) fetchAll(folder string, condStore bool, probe *Query, plan func(last *structure) bulkFetch, each func(*imapclient.FetchMessageBuffer, *structure), changed func()) (State, []*imapclient.FetchMessageBuffer, error) {
	st, lastStructure, err := b.examine(folder, condStore, probe, changed)
	if err != nil || st.Messages == 0 {
		return st, nil, err
	}
	f := plan(lastStructure)
	r := &fetchReader{br: b.br, f: f, line: b.line}
	expect := min(st.Messages, 1<<16) // as the server said, within reason
	msgs := make([]*imapclient.FetchMessageBuffer, 0, expect)
	// read reports whether a message was read before, and notes it. The
	// answer comes in ascending UID order, so the highest UID so far
	// tells; a set is made only if the order breaks.
	var last imap.UID
	var seen map[imap.UID]bool
	read := func(uid imap.UID) bool {
		if seen == nil {
			if uid > last {
				last = uid
				return false
			}
			seen = make(map[imap.UID]bool, len(msgs))
			for _, m := range msgs {
				seen[m.UID] = true
			}
		}
		if seen[uid] {
			return true
		}
		seen[uid] = true
		return false
	}
	untagged := func(line []byte) error {
		m, err := r.response(line)
		switch {
		case err != nil:
			return err
		case m == nil: // other data: EXISTS, EXPUNGE, OK […]
			if r.changed {
				changed()
			}
		case m.UID == 0 || read(m.UID):
			// Unsolicited flags of a message, by number or already
			// read: the folder moved past the state just read, and the
			// next check sees it. (go-imap hands these to the same
			// handler.)
			changed()
		default:
			msgs = append(msgs, m)
			each(m, r.structure)
		}
		return nil
	}
	_, err = b.exec("UID FETCH", untagged, atomArg("UID FETCH 1:* ("+f.items+")"))
	return st, msgs, err
}

// fetchReader parses the untagged responses to the bulk UID FETCH.
type fetchReader struct {
	br   *bufio.Reader
	line func() ([]byte, error) // reads the line after a literal
	f    bulkFetch
	// structure is the body structure of the FETCH response read last,
	// when f asks for it; mt, types, strings and lower serve reading
	// body structures (see bulkstruct.go).
	structure      *structure
	mt             []byte
	types          map[string]knownType
	strings, lower map[string]string
	pairs          [][2]string
	lastParams     map[string]string
	// changed is set by response for data that reports a change to the
	// folder (EXISTS, EXPUNGE).
	changed bool
}

// response parses one untagged response whose first line is line: a FETCH
// (returned) or data that may come with one (nil). Anything else, or a
// FETCH with items other than those asked for, is errBulkSyntax.
func (r *fetchReader) response(line []byte) (*imapclient.FetchMessageBuffer, error) {
	r.changed = false
	r.structure = nil
	p := &lineParser{all: line, i: 2}
	if seq, ok := p.number(); ok {
		if !p.sp() {
			return nil, p.fail()
		}
		switch kind := p.atom(); {
		case bytes.EqualFold(kind, []byte("FETCH")) && p.sp() && p.byte('('):
			return r.fetch(seq, p)
		case bytes.EqualFold(kind, []byte("EXISTS")), bytes.EqualFold(kind, []byte("EXPUNGE")):
			r.changed = true
			return nil, p.end()
		case bytes.EqualFold(kind, []byte("RECENT")):
			return nil, p.end()
		}
		return nil, p.fail()
	}
	switch kind := p.atom(); {
	case bytes.EqualFold(kind, []byte("FLAGS")):
		if !p.sp() {
			return nil, p.fail()
		}
		if _, ok := p.flags(); !ok {
			return nil, p.fail()
		}
		return nil, p.end()
	case bytes.EqualFold(kind, []byte("OK")), bytes.EqualFold(kind, []byte("NO")), bytes.EqualFold(kind, []byte("BAD")):
		// Warnings, and response codes such as a new HIGHESTMODSEQ,
		// which the next check reads anyway.
		if !p.sp() {
			return nil, p.fail()
		}
		var ignored State
		return nil, stateCode(&ignored, string(p.rest()))
	}
	return nil, p.fail()
}

// fetch parses the items of a FETCH response after its "(": UID n, FLAGS
// (…), MODSEQ (n) and the body section asked for, as NIL, a quoted string
// or a literal, in any order.
func (r *fetchReader) fetch(seq uint64, p *lineParser) (*imapclient.FetchMessageBuffer, error) {
	if seq == 0 || seq > math.MaxUint32 {
		return nil, p.fail()
	}
	m := &imapclient.FetchMessageBuffer{SeqNum: uint32(seq)}
	for i := 0; ; i++ {
		if p.byte(')') {
			return m, p.end()
		}
		if i > 0 && !p.sp() {
			return nil, p.fail()
		}
		name := p.atom()
		if !p.sp() {
			return nil, p.fail()
		}
		switch {
		case bytes.EqualFold(name, []byte("UID")):
			n, ok := p.number()
			if !ok || n == 0 || n > math.MaxUint32 || m.UID != 0 {
				return nil, p.fail()
			}
			m.UID = imap.UID(n)
		case bytes.EqualFold(name, []byte("FLAGS")):
			flags, ok := p.flags()
			if !ok || m.Flags != nil {
				return nil, p.fail()
			}
			m.Flags = flags
		case bytes.EqualFold(name, []byte("MODSEQ")):
			if !p.byte('(') {
				return nil, p.fail()
			}
			n, ok := p.number()
			if !ok || n > math.MaxInt64 || !p.byte(')') || m.ModSeq != 0 {
				return nil, p.fail()
			}
			m.ModSeq = n
		case r.f.structure && bytes.EqualFold(name, []byte("BODYSTRUCTURE")) && r.structure == nil:
			st, err := r.bodyStructure(p, r.f.want, r.f.maxPart)
			if err != nil {
				return nil, err
			}
			r.structure = st
		case r.f.section != nil && bytes.EqualFold(name, []byte(r.f.name)) && m.BodySection == nil:
			body, err := r.nstring(p)
			if err != nil {
				return nil, err
			}
			m.BodySection = []imapclient.FetchBodySectionBuffer{{Section: r.f.section, Bytes: body}}
		default:
			return nil, p.fail()
		}
	}
}

// nstring reads NIL (nil), a quoted string or a literal of at most
// f.max octets, after which parsing goes on on the next line.
func (r *fetchReader) nstring(p *lineParser) ([]byte, error) {
	switch {
	case p.word("NIL"):
		return nil, nil
	case p.byte('"'):
		s, ok := p.quoted()
		if !ok {
			return nil, p.fail()
		}
		return s, nil
	case p.next('{'):
		return r.literal(p, uint64(r.f.max))
	}
	return nil, p.fail()
}

// lineParser reads the tokens of one line of a response. It moves an
// index, not a slice, through the line: a cold read parses some fifty
// tokens a message while the garbage collector is often marking, and
// storing a slice through a pointer then costs a write barrier.
type lineParser struct {
	all []byte // the line
	i   int    // what is left is all[i:]
}

// rest is what is left of the line.
func (p *lineParser) rest() []byte { return p.all[p.i:] }

// next reports whether c comes next, without consuming it.
func (p *lineParser) next(c byte) bool { return p.i < len(p.all) && p.all[p.i] == c }

// reset goes on reading line (after a literal).
func (p *lineParser) reset(line []byte) { p.all, p.i = line, 0 }

func (p *lineParser) fail() error {
	return fmt.Errorf("%w: at %.40q of %.60q", errBulkSyntax, p.rest(), p.all)
}

// end checks that nothing is left.
func (p *lineParser) end() error {
	if p.i != len(p.all) {
		return p.fail()
	}
	return nil
}

func (p *lineParser) byte(c byte) bool {
	if p.next(c) {
		p.i++
		return true
	}
	return false
}

func (p *lineParser) sp() bool { return p.byte(' ') }

// word consumes w (upper case) when it stands there, in any case, as a
// whole atom.
func (p *lineParser) word(w string) bool {
	s := p.rest()
	if len(s) < len(w) || !bytes.EqualFold(s[:len(w)], []byte(w)) || (len(s) > len(w) && isAtomChar(s[len(w)])) {
		return false
	}
	p.i += len(w)
	return true
}

// number reads a number of at most 19 digits.
func (p *lineParser) number() (uint64, bool) {
	s := p.rest()
	var n uint64
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + uint64(s[i]-'0')
		i++
	}
	if i == 0 || i > 19 {
		return 0, false
	}
	p.i += i
	return n, true
}

// atom reads a fetch item name: atom characters and the brackets,
// angle brackets and dots of a section ("BODY[]<0>").
func (p *lineParser) atom() []byte {
	s := p.rest()
	i := 0
	for i < len(s) && (isAtomChar(s[i]) || s[i] == ']') {
		i++
	}
	p.i += i
	return s[:i]
}

// flags reads a parenthesized list of flags: atoms, or "\" and an atom.
func (p *lineParser) flags() ([]imap.Flag, bool) {
	if !p.byte('(') {
		return nil, false
	}
	flags := []imap.Flag{}
	for i := 0; !p.byte(')'); i++ {
		if i > 0 && !p.sp() {
			return nil, false
		}
		s := p.rest()
		j := 0
		if len(s) > 0 && s[0] == '\\' {
			j++
		}
		k := j
		for k < len(s) && isAtomChar(s[k]) {
			k++
		}
		if k == j {
			return nil, false
		}
		flags = append(flags, flag(s[:k]))
		p.i += k
	}
	return flags, true
}

// flag returns f as go-imap does, with the flags it knows in their
// canonical case; these are not allocated again.
func flag(f []byte) imap.Flag {
	for _, known := range knownFlags {
		if bytes.EqualFold(f, []byte(known)) {
			return known
		}
	}
	return imap.Flag(f)
}

var knownFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft,
	imap.FlagForwarded, imap.FlagMDNSent, imap.FlagJunk, imap.FlagNotJunk, imap.FlagPhishing, imap.FlagImportant}

// quoted reads the rest of a quoted string (after its opening quote),
// undoing its escapes.
func (p *lineParser) quoted() ([]byte, bool) {
	s := p.rest()
	out := []byte{}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			p.i += i + 1
			return out, true
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return nil, false
			}
			i++
			out = append(out, s[i])
		default:
			out = append(out, c)
		}
	}
	return nil, false
}

// skipQuoted passes over a quoted string, escapes and all, and reports
// whether it was one.
func (p *lineParser) skipQuoted() bool {
	if !p.byte('"') {
		return false
	}
	s := p.rest()
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			p.i += i + 1
			return true
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return false
			}
			i++
		}
	}
	return false
}

// isAtomChar reports an ATOM-CHAR of RFC 9051: any CHAR but atom-specials
// ("(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]").
func isAtomChar(c byte) bool { return atomChars[c] }

var atomChars = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`(){%*"\]`, c)
	}
	return t
}()

// bulkSlot lends one bulk connection to the sessions of a pool, one
// session at a time: bulk reads add one connection to the pool's, not one
// per session (servers limit connections per user: Dovecot to 10 from
// one address). A session that finds it lent out fetches with go-imap.
// The connection is kept for bulkIdle after a fetch, for the next folder
// read from scratch (at start-up, one per folder), then logged out.
type bulkSlot struct {
	mu    sync.Mutex
	lent  bool
	off   bool // the server answered what the bulk reader does not know
	shut  bool // the pool is closed: nothing is kept any more
	idle  *bulkConn
	timer *time.Timer // logs idle out
	// ready, while prepare dials, is closed when it is done.
	ready chan struct{}
}

// prepare dials a connection into the slot in the background, unless it
// holds one, is lent out or off: a pool does at its first login, since
// that is when every folder is read from scratch. A take meanwhile waits
// for the dial.
func (b *bulkSlot) prepare(dial func() (*bulkConn, error)) {
	b.mu.Lock()
	if b.lent || b.off || b.shut || b.idle != nil {
		b.mu.Unlock()
		return
	}
	b.lent = true
	ready := make(chan struct{})
	b.ready = ready
	b.mu.Unlock()
	go func() {
		defer close(ready)
		c, err := dial()
		if err != nil {
			c = nil // the first fetch dials again, or uses go-imap
		}
		b.give(c)
	}()
}

// take lends the slot with its idle connection, or nil when there is
// none; ok is false when it is lent out already, or off. While prepare
// dials, it waits for the dial (or ctx).
func (b *bulkSlot) take(ctx context.Context) (c *bulkConn, ok bool) {
	b.mu.Lock()
	if ready := b.ready; ready != nil {
		b.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, false
		}
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if b.lent || b.off {
		return nil, false
	}
	b.lent = true
	if c, b.idle = b.idle, nil; c != nil {
		b.timer.Stop()
	}
	return c, true
}

// give returns the slot, with c to keep (nil: none).
func (b *bulkSlot) give(c *bulkConn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lent, b.ready = false, nil
	if c == nil {
		return
	}
	if b.shut {
		go c.close()
		return
	}
	b.idle = c
	b.timer = time.AfterFunc(bulkIdle, func() {
		b.mu.Lock()
		mine := b.idle == c
		if mine {
			b.idle = nil
		}
		b.mu.Unlock()
		if mine {
			c.close()
		}
	})
}

// turnOff makes take refuse from now on.
func (b *bulkSlot) turnOff() {
	b.mu.Lock()
	b.off = true
	b.mu.Unlock()
}

// shutDown logs out the idle connection, if any, and keeps none from now
// on: the pool is closed.
func (b *bulkSlot) shutDown() {
	b.mu.Lock()
	b.shut = true
	b.mu.Unlock()
	b.drop()
}

// drop logs out the idle connection, if any.
func (b *bulkSlot) drop() {
	b.mu.Lock()
	c := b.idle
	if b.idle = nil; c != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	if c != nil {
		c.close()
	}
}

// fetchBulk runs the first round of a full fetch of folder on c, the
// bulk connection lent by s.bulk (dialing one when c is nil), and hands
// the messages it can to q.Received as they arrive (see plan). It returns
// the listing (without Deleted), the messages read and the UIDs of those
// handed over. On an error other than ErrNotFound the connection is
// closed, and the listing, when the folder was examined, and what was
// read so far are returned all the same, for the go-imap fetch that takes
// over.
func (s *Session) fetchBulk(ctx context.Context, c *bulkConn, folder string, q Query) (*Listing, []*imapclient.FetchMessageBuffer, *uidSet, error) {
	if c == nil {
		var err error
		if c, err = dialBulk(ctx, &s.opts); err != nil {
			s.bulk.give(nil)
			return nil, nil, nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	var f bulkFetch
	choose := func(last *structure) bulkFetch {
		f = plan(q, last)
		return f
	}
	handed := &uidSet{}
	each := func(m *imapclient.FetchMessageBuffer, st *structure) {
		var ok bool
		if f.structure {
			ok = takeStructured(q, f, m, st)
		} else {
			ok = takeWhole(q, f.section, m)
		}
		if ok {
			handed.add(uint32(m.UID))
		}
	}
	st, meta, err := c.fetchAll(folder, s.features.CondStore, &q, choose, each, s.changed)
	stop()
	var l *Listing
	if st.UIDValidity != 0 {
		l = &Listing{State: st, Deleted: map[uint32]bool{}, FlagsComplete: true}
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.close()
		s.bulk.give(nil)
		if errors.Is(err, errBulkSyntax) {
			s.opts.Logger.Warn("the bulk reader does not understand the server's FETCH answer; fetching with go-imap only", "err", err)
			s.bulk.turnOff()
		}
		return l, meta, handed, err
	}
	s.bulk.give(c)
	if err != nil {
		return nil, nil, nil, err
	}
	slices.SortFunc(meta, uidOrder)
	for _, m := range meta {
		l.UIDs = append(l.UIDs, uint32(m.UID))
	}
	return l, meta, handed, nil
}

// plan chooses the first round of a full fetch of a folder whose last
// message has the body structure last: when it shows one wanted part,
// small enough, every message's body structure and that part
// (structureFetch); otherwise the first q.WholeBelow octets of every
// message (wholeFetch). Calendar folders hold messages of one layout
// (Kolab's: the calendar in part 2), so the guess is right for nearly
// every message, and a message it misses is read as go-imap reads it.
func plan(q Query, last *structure) bulkFetch {
	if last != nil && last.ok && len(last.wanted) == 1 && !last.wanted[0].TooLarge {
		return structureFetch(last.wanted[0].Path, q)
	}
	return wholeFetch(q.WholeBelow)
}

// Bare is a bulk connection on its own, reading one part of every message
// of a folder and nothing else: the floor under a cold build, against
// which BenchmarkFolder10k measures it, read the way a cold build reads.
type Bare struct{ b *bulkConn }

// DialBare connects and logs in as opts say.
func DialBare(ctx context.Context, opts Options) (*Bare, error) {
	b, err := dialBulk(ctx, &opts)
	if err != nil {
		return nil, err
	}
	return &Bare{b}, nil
}

// Fetch examines folder and fetches BODY.PEEK[part] of every message
// (of at most 16 MiB), calling fn with each as it arrives.
func (c *Bare) Fetch(folder string, part []int, fn func(uid uint32, body []byte)) error {
	key := pathKey(part)
	f := bulkFetch{items: "UID BODY.PEEK[" + key + "]", name: "BODY[" + key + "]", section: &imap.FetchItemBodySection{Part: part}, max: 16 << 20}
	plan := func(*structure) bulkFetch { return f }
	each := func(m *imapclient.FetchMessageBuffer, _ *structure) { fn(uint32(m.UID), m.FindBodySection(f.section)) }
	_, _, err := c.b.fetchAll(folder, false, nil, plan, each, func() {})
	return err
}

// Close logs out.
func (c *Bare) Close() { c.b.close() }
