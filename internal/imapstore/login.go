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
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// CheckLogin proves a requester's password: it logs in as opts.User with
// opts.Password on a connection of its own, learns how the server spells
// the identity it authenticated, and logs out. A refused login is
// ErrAuth; any other error says the server could not be asked.
//
// Servers may fold the case of a login (Dovecot's
// auth_username_format=%Lu, Cyrus' username_tolower): "BOB" logs in as
// "bob". The server's spelling is read from the ACL of the user's own
// INBOX (GETACL INBOX), where both Dovecot (its owner entry, printed under
// the user's name) and Cyrus (the owner's entry) name the user: user is
// the one identifier there equal to opts.User under case folding. It is
// "" when that cannot be learned: no ACL extension, GETACL refused, no
// such entry, or more than one. A caller must then treat the name as
// unconfirmed (acl.Requester.Confirmed).
//
// When client is valid, it is sent before LOGIN as the ID field
// "x-originating-ip" (RFC 2971), so that a server which trusts fbpub's
// address (Dovecot's login_trusted_networks) charges failed logins and
// logs them to the requester's address instead of fbpub's. A server
// without ID, or one that refuses it, is logged in to all the same.
func CheckLogin(ctx context.Context, opts Options, client netip.Addr) (user string, err error) {
	var greet func(net.Conn, *tls.Config) (net.Conn, net.Conn, error)
	if client.IsValid() {
		greet = func(conn net.Conn, tlsConfig *tls.Config) (net.Conn, net.Conn, error) {
			return sendID(ctx, &opts, conn, tlsConfig, client.Unmap().String())
		}
	}
	conn, c, err := login(ctx, &opts, &imapclient.Options{}, greet)
	if err != nil {
		return "", err
	}
	defer func() {
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		_ = c.Logout().Wait()
		c.Close()
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if !c.Caps().Has(imap.CapACL) {
		return "", nil
	}
	_ = conn.SetDeadline(time.Now().Add(opts.timeout()))
	t0 := time.Now()
	data, err := c.GetACL("INBOX").Wait()
	if opts.Observe != nil {
		opts.Observe("GETACL", err, time.Since(t0))
	}
	if err != nil {
		if isNo(err) {
			return "", nil
		}
		return "", opErr(ctx, "GETACL at "+opts.Addr, err)
	}
	var ids []string
	for id := range data.Rights {
		ids = append(ids, string(id))
	}
	return spelling(ids, opts.User), nil
}

// errIDAnswer means the server answered the ID command with something
// sendID does not read (a literal, a continuation request): the
// connection's state is unknown, and it is given up.
var errIDAnswer = errors.New("imapstore: unexpected answer to ID")

// sendID sends "ID ("name" "fbpub" "x-originating-ip" addr)" on conn
// before go-imap reads from it, since go-imap's ID (imap.IDData) has
// fixed keys only. It reads the greeting line itself (and does STARTTLS
// when opts say so), sends ID when the greeting does not rule it out (its
// capabilities lack ID, or it is not OK), and reads the answer: untagged
// lines, up to the tagged one, whatever its status. Anything else (a
// literal, a continuation request, BYE) is errIDAnswer: this is not an
// IMAP parser, and a connection in an unknown state is given up. It
// returns the connection to set deadlines on and one that replays the
// greeting to go-imap — the server's own, or after STARTTLS the same
// without its response code (the capabilities before STARTTLS are void,
// so go-imap asks again).
func sendID(ctx context.Context, opts *Options, conn net.Conn, tlsConfig *tls.Config, addr string) (net.Conn, net.Conn, error) {
	br := bufio.NewReader(conn)
	greeting, err := readLine(br)
	if err != nil {
		return nil, nil, fmt.Errorf("imapstore: greeting from %s: %w", opts.Addr, opErrCtx(ctx, err))
	}
	text, ok := strings.CutPrefix(greeting, "* OK ")
	if !ok {
		// PREAUTH (no LOGIN to come), BYE, or not IMAP: go-imap's to
		// read.
		return conn, replay(conn, greeting, br), nil
	}
	if opts.TLS == TLSStartTLS {
		if _, err := io.WriteString(conn, "S STARTTLS\r\n"); err != nil {
			return nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, opErrCtx(ctx, err))
		}
		status, err := tagged(br, "S")
		if err == nil && status != "OK" {
			err = fmt.Errorf("server answered %s", status)
		}
		if err == nil && br.Buffered() > 0 {
			// Nothing may come between the tagged OK and the handshake
			// (RFC 9051 section 6.2.1).
			err = errors.New("data injected before the handshake")
		}
		if err != nil {
			return nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, opErrCtx(ctx, err))
		}
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, nil, fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, err)
		}
		conn, br = tc, bufio.NewReader(tc)
		if rest, ok := strings.CutPrefix(text, "["); ok {
			_, text, _ = strings.Cut(rest, "]")
			text = strings.TrimSpace(text)
		}
		greeting = "* OK " + text
	} else if caps, ok := greetingCaps(text); ok && !caps["ID"] {
		return conn, replay(conn, greeting, br), nil
	}
	t0 := time.Now()
	status, err := "", error(nil)
	if _, err = fmt.Fprintf(conn, "I ID (\"name\" \"fbpub\" \"x-originating-ip\" %q)\r\n", addr); err == nil {
		status, err = tagged(br, "I")
	}
	if opts.Observe != nil {
		var oerr error = err
		if err == nil && status != "OK" {
			oerr = &imap.Error{Type: imap.StatusResponseType(status), Text: "ID refused"}
		}
		opts.Observe("ID", oerr, time.Since(t0))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("imapstore: ID at %s: %w", opts.Addr, opErrCtx(ctx, err))
	}
	return conn, replay(conn, greeting, br), nil
}

// greetingCaps reads the capabilities of a greeting's text ("[CAPABILITY
// IMAP4rev1 ID …] ready"), upper case; ok is false when it names none.
func greetingCaps(text string) (caps map[string]bool, ok bool) {
	rest, ok := strings.CutPrefix(text, "[")
	if !ok {
		return nil, false
	}
	code, _, _ := strings.Cut(rest, "]")
	f := strings.Fields(code)
	if len(f) == 0 || !strings.EqualFold(f[0], "CAPABILITY") {
		return nil, false
	}
	caps = map[string]bool{}
	for _, c := range f[1:] {
		caps[strings.ToUpper(c)] = true
	}
	return caps, true
}

// tagged reads lines up to the one tagged tag and returns its status (OK,
// NO or BAD). Untagged lines are skipped; a literal, a continuation
// request, BYE or another tag is errIDAnswer.
func tagged(br *bufio.Reader, tag string) (string, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return "", err
		}
		if strings.HasSuffix(line, "}") {
			return "", fmt.Errorf("%w: a literal", errIDAnswer)
		}
		if rest, ok := strings.CutPrefix(line, "* "); ok {
			if len(rest) >= 3 && strings.EqualFold(rest[:3], "BYE") {
				return "", fmt.Errorf("%w: %s", errIDAnswer, line)
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			return "", fmt.Errorf("%w: %.40q", errIDAnswer, line)
		}
		status, _, _ := strings.Cut(rest, " ")
		switch status = strings.ToUpper(status); status {
		case "OK", "NO", "BAD":
			return status, nil
		}
		return "", fmt.Errorf("%w: %.40q", errIDAnswer, line)
	}
}

// maxIDLine bounds a line sendID reads.
const maxIDLine = 8 << 10

// readLine reads a line without its CRLF, of at most maxIDLine octets.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		b, err := br.ReadSlice('\n')
		if len(buf)+len(b) > maxIDLine {
			return "", errors.New("imapstore: response line too long")
		}
		buf = append(buf, b...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'})), nil
	}
}

// replay returns conn reading the greeting line first, then what br
// holds and the rest of conn.
func replay(conn net.Conn, greeting string, br *bufio.Reader) net.Conn {
	return replayConn{conn, io.MultiReader(strings.NewReader(greeting+"\r\n"), br)}
}

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func opErrCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// spelling returns the one identifier of ids equal to user under case
// folding, or "" if there is none or more than one.
func spelling(ids []string, user string) string {
	found := ""
	for _, id := range ids {
		if !strings.EqualFold(id, user) || id == found {
			continue
		}
		if found != "" {
			return ""
		}
		found = id
	}
	return found
}
