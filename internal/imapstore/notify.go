package imapstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/mutf7"
)

// NOTIFY (RFC 5465) on a connection of its own. go-imap v2 beta.8 has no
// NOTIFY, and closes the connection on untagged answers it does not know,
// so this is a minimal IMAP client written for this one purpose: log in,
// NOTIFY SET a list of folders, read the server's STATUS and LIST
// announcements, NOOP now and then.
//
// What Dovecot 2.3 does, found against the test bed (see watch_test.go):
//
//   - Folders of other users ("shared/alice/Calendar") are watched only
//     once the session has LISTed them: NOTIFY SET for a folder of a user
//     whose namespace the session has not yet opened answers OK and then
//     stays silent (a STATUS is not enough; a LIST naming the folder is).
//     So every folder is LISTed (one LIST-EXTENDED command with all the new
//     names) before the NOTIFY SET that adds it. A subtree filter on the
//     namespace prefix ("shared") never reports anything.
//   - Names in the NOTIFY SET filter are matched against Dovecot's UTF-8
//     names, not decoded from modified UTF-7, and the STATUS it pushes
//     names the folder in UTF-8 (in a literal when it is not ASCII, and
//     "R&D", not "R&-D"). So a name whose modified UTF-7 differs from its
//     UTF-8 is sent in both forms, and a pushed name is matched in both.
//     A server that refuses the UTF-8 form gets the modified UTF-7 alone.
//   - A NOTIFY SET that replaces another leaves other users' folders
//     silent; NOTIFY NONE first, then NOTIFY SET, works. So a change of
//     the list is NOTIFY NONE, NOTIFY SET, and a resync for what may have
//     changed between the two.
//   - A new message (MessageNew) and an expunge (MessageExpunge) push
//     "* STATUS name (MESSAGES n UIDNEXT n UNSEEN n)", with HIGHESTMODSEQ
//     once CONDSTORE is enabled. A flag change (FlagChange) pushes
//     "* STATUS name (HIGHESTMODSEQ n)" only when CONDSTORE is enabled
//     (ENABLE CONDSTORE), and nothing otherwise, unless \Seen changed.

// notifyEvents is the event list set for every watched folder.
const notifyEvents = "(MessageNew MessageExpunge FlagChange MailboxName)"

// Bounds on what one NOTIFY SET carries: Dovecot refuses command lines
// over 64 KiB (imap_max_line_length).
const (
	defaultMaxNotify = 1000
	maxNotifyBytes   = 32 << 10
)

// Bounds on one response: a longer line or literal is a broken or hostile
// server, and the connection is dropped (the watcher reconnects).
const (
	maxLine    = 64 << 10
	maxLiteral = 1 << 20
)

// notifyConn is one connection of the NOTIFY client. After dialNotify
// returns, a reader goroutine owns the reading side: it hands untagged
// data to onData (on its own goroutine; it must not block) and tagged and
// continuation responses to the command in flight. Commands are sent by
// one goroutine at a time (the watcher's), with exec.
type notifyConn struct {
	conn    net.Conn
	br      *bufio.Reader
	timeout time.Duration
	observe func(command string, err error, d time.Duration)
	tag     int

	capsMu sync.Mutex
	caps   map[string]bool // upper case; guarded by capsMu

	onData  func(*response)
	replies chan *response // tagged and continuation responses
	done    chan struct{}  // closed when the reader ends
	errMu   sync.Mutex
	err     error // why the reader ended; guarded by errMu
}

// errNotifyTimeout means a command got no answer in time; the connection
// is closed.
var errNotifyTimeout = errors.New("imapstore: NOTIFY connection: no answer in time")

// loginArgs is the LOGIN command of fbpub's own clients. The password
// never appears in an error.
func loginArgs(opts *Options) []cmdArg {
	return []cmdArg{atomArg("LOGIN"), stringArg(opts.User), stringArg(opts.Password)}
}

// loginError says why a LOGIN of fbpub's own clients failed: refused
// (ErrAuth, ErrUnavailable: see loginRefused) or not answered.
func loginError(ctx context.Context, opts *Options, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return loginRefused(opts, ie)
	}
	return fmt.Errorf("imapstore: login to %s: %w", opts.Addr, opErrCtx(ctx, err))
}

// dialNotify connects (TLS as opts say), logs in and reads the
// capabilities. onData receives the untagged responses that arrive from
// then on. The password never appears in an error.
func dialNotify(ctx context.Context, opts *Options, onData func(*response)) (*notifyConn, error) {
	return dialOwn(ctx, opts, onData, nil)
}

// dialOwn is dialNotify with beforeLogin, when not nil, run once the
// greeting's capabilities are known and before LOGIN (not after a
// PREAUTH greeting); its error ends the dial.
func dialOwn(ctx context.Context, opts *Options, onData func(*response), beforeLogin func(*notifyConn) error) (*notifyConn, error) {
	d := net.Dialer{Timeout: opts.timeout()}
	raw, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("imapstore: connect %s: %w", opts.Addr, err)
	}
	c := &notifyConn{
		conn: raw, timeout: opts.timeout(), observe: opts.Observe, onData: onData,
		replies: make(chan *response, 4), done: make(chan struct{}),
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	ok, reading := false, false
	defer func() {
		if !ok {
			c.conn.Close()
			if reading {
				<-c.done
			}
		}
	}()
	_ = raw.SetDeadline(time.Now().Add(c.timeout))
	conn, br, g, err := handshake(ctx, raw, opts)
	if err != nil {
		return nil, err
	}
	c.conn, c.br = conn, br
	if opts.TLS != TLSStartTLS {
		// After STARTTLS the capabilities of the greeting are void.
		c.capsFrom(g.text)
	}
	go c.read()
	reading = true
	if g.kind != "PREAUTH" {
		if beforeLogin != nil {
			if err := beforeLogin(c); err != nil {
				return nil, err
			}
		}
		r, err := c.exec("LOGIN", loginArgs(opts)...)
		if err != nil {
			return nil, loginError(ctx, opts, err)
		}
		// The capabilities before login may be fewer.
		c.forgetCaps()
		c.capsFrom(r.text)
	}
	if !c.knowsCaps() {
		if _, err := c.exec("", atomArg("CAPABILITY")); err != nil {
			return nil, fmt.Errorf("imapstore: CAPABILITY at %s: %w", opts.Addr, opErrCtx(ctx, err))
		}
	}
	_ = c.conn.SetDeadline(time.Time{})
	ok = true
	return c, nil
}

func opErrCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// handshake sets up TLS on raw as opts say (at once, or after STARTTLS)
// and reads the server's greeting, which it returns as the server sent it
// (before STARTTLS, when that was used). It does not log in, and leaves
// raw's deadline and closing to the caller.
func handshake(ctx context.Context, raw net.Conn, opts *Options) (net.Conn, *bufio.Reader, *response, error) {
	tlsConfig := opts.TLSConfig
	if tlsConfig == nil {
		host, _, _ := net.SplitHostPort(opts.Addr)
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	conn := raw
	if opts.TLS == TLSImplicit {
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("imapstore: TLS with %s: %w", opts.Addr, err)
		}
		conn = tc
	}
	br := bufio.NewReader(conn)
	g, err := readResponse(br)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("imapstore: greeting from %s: %w", opts.Addr, opErrCtx(ctx, err))
	}
	if g.tag != "*" || (g.kind != "OK" && g.kind != "PREAUTH") {
		return nil, nil, nil, fmt.Errorf("imapstore: greeting from %s: %s %s", opts.Addr, g.kind, g.text)
	}
	if opts.TLS != TLSStartTLS {
		return conn, br, g, nil
	}
	// Synchronous: nothing may be read past the tagged OK before the
	// handshake (RFC 9051 section 6.2.1).
	if _, err := io.WriteString(conn, "S STARTTLS\r\n"); err != nil {
		return nil, nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, opErrCtx(ctx, err))
	}
	for {
		r, err := readResponse(br)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, opErrCtx(ctx, err))
		}
		if r.tag != "S" {
			continue
		}
		if r.kind != "OK" {
			return nil, nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %s %s", opts.Addr, r.kind, r.text)
		}
		break
	}
	if br.Buffered() > 0 {
		return nil, nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: data injected before the handshake", opts.Addr)
	}
	tc := tls.Client(raw, tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, err)
	}
	return tc, bufio.NewReader(tc), g, nil
}

// capsFrom reads a [CAPABILITY …] response code.
func (c *notifyConn) capsFrom(text string) {
	if rest, ok := strings.CutPrefix(text, "["); ok {
		code, _, _ := strings.Cut(rest, "]")
		if f := strings.Fields(code); len(f) > 0 && strings.EqualFold(f[0], "CAPABILITY") {
			c.setCaps(f[1:])
		}
	}
}

func (c *notifyConn) setCaps(names []string) {
	caps := make(map[string]bool, len(names))
	for _, n := range names {
		caps[strings.ToUpper(n)] = true
	}
	c.capsMu.Lock()
	c.caps = caps
	c.capsMu.Unlock()
}

// has reports a capability (upper case).
func (c *notifyConn) has(name string) bool {
	c.capsMu.Lock()
	defer c.capsMu.Unlock()
	return c.caps[name]
}

// knowsCaps reports whether capabilities are known.
func (c *notifyConn) knowsCaps() bool {
	c.capsMu.Lock()
	defer c.capsMu.Unlock()
	return c.caps != nil
}

func (c *notifyConn) forgetCaps() {
	c.capsMu.Lock()
	c.caps = nil
	c.capsMu.Unlock()
}

// read is the reader goroutine.
func (c *notifyConn) read() {
	defer close(c.done)
	for {
		r, err := readResponse(c.br)
		if err != nil {
			c.fail(err)
			return
		}
		if r.tag == "*" {
			switch r.kind {
			case "CAPABILITY":
				var names []string
				for _, f := range r.fields {
					names = append(names, f.s)
				}
				c.setCaps(names)
			case "BYE":
				c.fail(fmt.Errorf("imapstore: server said BYE: %s", r.text))
				c.conn.Close()
				return
			default:
				c.onData(r)
			}
			continue
		}
		// One command is in flight at a time, so at most a continuation
		// and the tagged answer wait here.
		select {
		case c.replies <- r:
		default:
			c.fail(fmt.Errorf("imapstore: unexpected response %s %s", r.tag, r.kind))
			c.conn.Close()
			return
		}
	}
}

func (c *notifyConn) fail(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

func (c *notifyConn) readErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		return errors.New("imapstore: NOTIFY connection closed")
	}
	return c.err
}

// close logs out briefly and closes the connection; it waits for the
// reader goroutine.
func (c *notifyConn) close() {
	select {
	case <-c.done:
	default:
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c.conn, "Z LOGOUT\r\n")
	}
	c.conn.Close()
	<-c.done
}

// cmdArg is one argument of a command: verbatim text, or a string sent as
// a quoted string or, when it cannot be quoted, as a literal.
type cmdArg struct {
	s      string
	atom   bool
	nested []cmdArg // a parenthesized list, when not nil
}

func atomArg(s string) cmdArg       { return cmdArg{s: s, atom: true} }
func stringArg(s string) cmdArg     { return cmdArg{s: s} }
func listArg(args ...cmdArg) cmdArg { return cmdArg{nested: append([]cmdArg{}, args...)} }
func (a cmdArg) isList() bool       { return a.nested != nil }
func quotable(s string) bool        { return !strings.ContainsAny(s, "\r\n\x00") && isASCII(s) }
func quoteString(s string) string   { return `"` + quoteReplacer.Replace(s) + `"` }
func isASCII(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf })
}
func literalPrefix(n int, plus bool) string {
	if plus {
		return "{" + strconv.Itoa(n) + "+}\r\n"
	}
	return "{" + strconv.Itoa(n) + "}\r\n"
}

var quoteReplacer = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// encodeArgs writes args into chunks: each chunk but the first begins
// with a literal's bytes, and each chunk but the last ends with a literal
// prefix; the caller waits for a continuation between chunks unless plus.
func encodeArgs(args []cmdArg, plus bool) [][]byte {
	chunks := [][]byte{nil}
	var add func(args []cmdArg)
	add = func(args []cmdArg) {
		for i, a := range args {
			cur := &chunks[len(chunks)-1]
			if i > 0 {
				*cur = append(*cur, ' ')
			}
			switch {
			case a.isList():
				*cur = append(*cur, '(')
				add(a.nested)
				cur = &chunks[len(chunks)-1]
				*cur = append(*cur, ')')
			case a.atom:
				*cur = append(*cur, a.s...)
			case quotable(a.s):
				*cur = append(*cur, quoteString(a.s)...)
			default:
				*cur = append(*cur, literalPrefix(len(a.s), plus)...)
				chunks = append(chunks, []byte(a.s))
			}
		}
	}
	add(args)
	last := &chunks[len(chunks)-1]
	*last = append(*last, "\r\n"...)
	return chunks
}

// exec sends one command and waits for its tagged answer, collecting
// nothing: untagged data goes to onData as it comes. A NO or BAD answer is
// an *imap.Error. name, when not empty, is reported to Options.Observe.
func (c *notifyConn) exec(name string, args ...cmdArg) (*response, error) {
	t0 := time.Now()
	r, err := c.exec1(args)
	if name != "" && c.observe != nil {
		c.observe(name, err, time.Since(t0))
	}
	return r, err
}

func (c *notifyConn) exec1(args []cmdArg) (*response, error) {
	c.tag++
	tag := "N" + strconv.Itoa(c.tag)
	plus := c.has("LITERAL+")
	chunks := encodeArgs(args, plus)
	chunks[0] = append([]byte(tag+" "), chunks[0]...)
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	for i, chunk := range chunks {
		if i > 0 && !plus {
			r, err := c.await(timer)
			if err != nil {
				return nil, err
			}
			if r.tag != "+" {
				return nil, statusError(r)
			}
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.timeout))
		if _, err := c.conn.Write(chunk); err != nil {
			c.conn.Close()
			return nil, err
		}
	}
	for {
		r, err := c.await(timer)
		if err != nil {
			return nil, err
		}
		if r.tag != tag {
			continue // a stray continuation
		}
		if r.kind != "OK" {
			return r, statusError(r)
		}
		return r, nil
	}
}

func (c *notifyConn) await(timer *time.Timer) (*response, error) {
	select {
	case r := <-c.replies:
		return r, nil
	case <-c.done:
		return nil, c.readErr()
	case <-timer.C:
		c.conn.Close()
		return nil, errNotifyTimeout
	}
}

// statusError turns a tagged NO or BAD into an *imap.Error, so that
// callers (and Options.Observe) can tell a refusal from a broken
// connection.
func statusError(r *response) error {
	e := &imap.Error{Type: imap.StatusResponseType(r.kind), Text: r.text}
	if rest, ok := strings.CutPrefix(r.text, "["); ok {
		if code, text, ok := strings.Cut(rest, "]"); ok {
			e.Code, e.Text = imap.ResponseCode(strings.Fields(code + " x")[0]), strings.TrimSpace(text)
		}
	}
	if e.Type != imap.StatusResponseTypeNo {
		e.Type = imap.StatusResponseTypeBad
	}
	return e
}

// response is one server response.
type response struct {
	// tag is "*" for untagged data, "+" for a continuation request, or
	// the command's tag.
	tag string
	// num is the number before the kind ("* 3 EXISTS"), or "".
	num string
	// kind is upper case: "OK", "NO", "BAD", "BYE", "PREAUTH", "STATUS",
	// "LIST", "EXISTS", …
	kind string
	// text is the rest of a status response (OK, NO, BAD, BYE, PREAUTH)
	// or of a continuation request, a response code included.
	text string
	// fields are the tokens of a data response after its kind, literals
	// included; lexErr says why they stop early.
	fields []field
	lexErr error
}

type fieldKind int

const (
	fieldAtom   fieldKind = iota // NIL too
	fieldString                  // quoted or literal
	fieldOpen                    // (
	fieldClose                   // )
)

type field struct {
	kind fieldKind
	s    string
}

func isStatusKind(kind string) bool {
	switch kind {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		return true
	}
	return false
}

// readResponse reads one response, with the literals of a data response.
// A literal over maxLiteral is skipped (read and dropped) and stands as an
// empty string; a line over maxLine is an error.
func readResponse(br *bufio.Reader) (*response, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	return parseResponse(br, line)
}

// parseResponse parses a response whose first line has been read (without
// its CRLF), reading its literals and the lines after them from br.
func parseResponse(br *bufio.Reader, line string) (*response, error) {
	tag, rest, _ := strings.Cut(line, " ")
	r := &response{tag: tag}
	if tag == "+" {
		r.text = rest
		return r, nil
	}
	word, after, _ := strings.Cut(rest, " ")
	if tag == "*" && word != "" && strings.Trim(word, "0123456789") == "" {
		r.num = word
		word, after, _ = strings.Cut(after, " ")
	}
	r.kind = strings.ToUpper(word)
	if isStatusKind(r.kind) {
		r.text = after
		return r, nil
	}
	var segs []segment
	total := 0
	for {
		n, at, ok := literalAt(after)
		if !ok {
			segs = append(segs, segment{text: after})
			break
		}
		segs = append(segs, segment{text: after[:at]})
		if n > maxLiteral {
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return nil, err
			}
			segs = append(segs, segment{literal: true})
		} else {
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				return nil, err
			}
			segs = append(segs, segment{literal: true, text: string(b)})
		}
		if total += len(after); total > maxLine {
			return nil, errors.New("imapstore: response too long")
		}
		var err error
		if after, err = readLine(br); err != nil {
			return nil, err
		}
	}
	r.fields, r.lexErr = lex(segs)
	return r, nil
}

type segment struct {
	text    string
	literal bool
}

// readLine reads a line without its CRLF (a bare LF is accepted).
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(buf)+len(b) > maxLine {
			return "", errors.New("imapstore: response line too long")
		}
		buf = append(buf, b...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'})
		return string(buf), nil
	}
}

// literalAt finds a literal announcement ("{12}", "{12+}" or the
// literal8 "~{12}") at the end of a line: its size and where it begins.
func literalAt(line string) (n int64, at int, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, 0, false
	}
	at = strings.LastIndexByte(line, '{')
	if at < 0 {
		return 0, 0, false
	}
	digits := strings.TrimSuffix(line[at+1:len(line)-1], "+")
	if digits == "" || len(digits) > 10 || strings.Trim(digits, "0123456789") != "" {
		return 0, 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if at > 0 && line[at-1] == '~' {
		at--
	}
	return n, at, true
}

// lex splits the text of a data response into atoms, strings and
// parentheses. Brackets are part of atoms (BODY[1]); this client does not
// need more.
func lex(segs []segment) ([]field, error) {
	var out []field
	for _, seg := range segs {
		if seg.literal {
			out = append(out, field{fieldString, seg.text})
			continue
		}
		s := seg.text
		for i := 0; i < len(s); {
			switch ch := s[i]; ch {
			case ' ':
				i++
			case '(':
				out = append(out, field{kind: fieldOpen})
				i++
			case ')':
				out = append(out, field{kind: fieldClose})
				i++
			case '"':
				var b strings.Builder
				j := i + 1
				for ; j < len(s) && s[j] != '"'; j++ {
					if s[j] == '\\' {
						if j+1 >= len(s) {
							break
						}
						j++
					}
					b.WriteByte(s[j])
				}
				if j >= len(s) {
					return out, errors.New("imapstore: unterminated quoted string")
				}
				out = append(out, field{fieldString, b.String()})
				i = j + 1
			default:
				j := i
				for j < len(s) && !strings.ContainsRune(` ()"`, rune(s[j])) {
					j++
				}
				out = append(out, field{fieldAtom, s[i:j]})
				i = j
			}
		}
	}
	return out, nil
}

// announcedName returns the folder a STATUS or LIST response names, as
// sent (to be resolved by the caller), and whether the response was one
// of these.
func announcedName(r *response) (name string, ok bool, err error) {
	fs := r.fields
	switch r.kind {
	case "STATUS":
		// mailbox SP "(" status-att-list ")"
	case "LIST":
		// "(" mbx-list-flags ")" SP (DQUOTE QUOTED-CHAR DQUOTE / nil) SP mailbox
		i := 0
		if len(fs) == 0 || fs[0].kind != fieldOpen {
			return "", true, errors.New("imapstore: malformed LIST")
		}
		for i < len(fs) && fs[i].kind != fieldClose {
			i++
		}
		if i+2 >= len(fs) {
			return "", true, errors.New("imapstore: malformed LIST")
		}
		fs = fs[i+2:]
	default:
		return "", false, nil
	}
	if len(fs) == 0 || (fs[0].kind != fieldAtom && fs[0].kind != fieldString) {
		if r.lexErr != nil {
			return "", true, r.lexErr
		}
		return "", true, fmt.Errorf("imapstore: malformed %s", r.kind)
	}
	// A malformed rest (the status attributes) does not matter: the name
	// came whole before it.
	return fs[0].s, true, nil
}

// resolveName finds the folder a name pushed by the server stands for in
// watched (names as the proxy sees them: UTF-8). The name may come in
// modified UTF-7, as RFC 3501 wants, or in UTF-8, as Dovecot 2.3 sends it
// in NOTIFY's STATUS; a name that reads as both is matched both ways.
func resolveName(sent string, watched map[string]bool) (string, bool) {
	if strings.EqualFold(sent, "INBOX") {
		return "INBOX", watched["INBOX"]
	}
	if d, err := mutf7.Decode(sent); err == nil && watched[d] {
		return d, true
	}
	if utf8.ValidString(sent) && watched[sent] {
		return sent, true
	}
	return "", false
}
