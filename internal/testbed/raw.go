package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// raw logs in as user on a new plain connection, sends one command and
// fails unless it is answered OK.
func (s *Server) raw(user, command string) error {
	rs, err := s.rawLogin(user)
	if err != nil {
		return err
	}
	defer rs.close()
	_, err = rs.run(command)
	return err
}

// rawSession is a plain IMAP connection driven line by line, for the
// commands go-imap lacks or gets wrong (DELETEACL, GETMETADATA with DEPTH).
type rawSession struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
}

// rawLogin connects and logs in as user.
func (s *Server) rawLogin(user string) (*rawSession, error) {
	conn, err := net.DialTimeout("tcp", s.Addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	rs := &rawSession{conn: conn, r: bufio.NewReader(conn)}
	greeting, err := rs.r.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading the greeting: %w", err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("unexpected greeting %q", strings.TrimSpace(greeting))
	}
	if _, err := rs.run("LOGIN " + quote(user) + " " + quote(Password(user))); err != nil {
		conn.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	return rs, nil
}

// close logs out and closes the connection.
func (rs *rawSession) close() {
	rs.run("LOGOUT")
	rs.conn.Close()
}

// run sends command and returns its untagged responses, with every literal
// replaced by an empty quoted string, or an error unless the command is
// answered OK.
func (rs *rawSession) run(command string) ([]string, error) {
	rs.n++
	tag := fmt.Sprintf("r%d", rs.n)
	if _, err := fmt.Fprintf(rs.conn, "%s %s\r\n", tag, command); err != nil {
		return nil, err
	}
	var untagged []string
	for {
		resp, err := rs.readResponse()
		if err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return nil, errors.New(rest)
			}
			return untagged, nil
		}
		untagged = append(untagged, resp)
	}
}

// readResponse reads one response line, skipping literals (each becomes "").
func (rs *rawSession) readResponse() (string, error) {
	var b strings.Builder
	for {
		line, err := rs.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		n, ok := literalSize(line)
		if !ok {
			b.WriteString(line)
			return b.String(), nil
		}
		b.WriteString(line[:strings.LastIndexByte(line, '{')])
		b.WriteString(`""`)
		if _, err := io.CopyN(io.Discard, rs.r, n); err != nil {
			return "", err
		}
	}
}

// literalSize reports whether line ends with a literal announcement {N}
// (or {N+}) and returns N.
func literalSize(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(line[i+1:len(line)-1], "+"), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// token is an IMAP atom or quoted string; quoted tells which, so that the
// atom NIL and the string "NIL" can be told apart.
type token struct {
	text   string
	quoted bool
}

// splitTokens splits a space-separated sequence of IMAP atoms and quoted
// strings.
func splitTokens(s string) ([]token, error) {
	var tokens []token
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		if s[0] != '"' {
			i := strings.IndexByte(s, ' ')
			if i < 0 {
				i = len(s)
			}
			tokens = append(tokens, token{text: s[:i]})
			s = s[i:]
			continue
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		if i >= len(s) {
			return nil, errors.New("unterminated quoted string")
		}
		tokens = append(tokens, token{text: b.String(), quoted: true})
		s = s[i+1:]
	}
	return tokens, nil
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
