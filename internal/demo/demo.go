// Package demo runs an embedded IMAP server with sample calendars, so that
// fbpub can be tried without a mail server: `fbpub demo`.
//
// The server is go-imap's in-memory server. It has no ACL and no CONDSTORE
// extension, so the demo is also fbpub running against such a server: it
// publishes every calendar folder the proxy can select, and checks for
// changes without HIGHESTMODSEQ. Other users' calendars appear to the proxy
// under an other-users namespace ("shared/alice/Calendar"), as on Dovecot.
package demo

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"path"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

//go:embed data/*.ics
var data embed.FS

// Proxy is the demo server's login for fbpub.
const Proxy = "fbproxy"

// Server is a running demo IMAP server.
type Server struct {
	// Addr is where it listens (127.0.0.1 and a free port).
	Addr string
	// Password is the proxy's password, random for each run.
	Password string
	srv      *imapserver.Server
	ln       net.Listener
	done     chan error
}

// Start seeds the sample calendars, with dates relative to now, and starts
// serving on a free loopback port. logw receives the server's own error
// log (nil discards it).
func Start(now time.Time, logw io.Writer) (*Server, error) {
	pw := make([]byte, 12)
	_, _ = rand.Read(pw)
	s := &Server{Password: hex.EncodeToString(pw), done: make(chan error, 1)}
	user := imapmemserver.NewUser(Proxy, s.Password)
	if err := seed(user, now); err != nil {
		return nil, err
	}
	if logw == nil {
		logw = io.Discard
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{user: user}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true, // loopback only
		Logger:       log.New(logw, "demo-imap: ", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: listen: %w", err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and waits for it.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// Folders lists the seeded folders as the proxy sees them.
func Folders() []string {
	entries, _ := data.ReadDir("data")
	seen := map[string]bool{}
	var out []string
	for _, e := range entries {
		owner, folder := split(e.Name())
		name := "shared/" + owner + "/" + folder
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// split reads "alice--Calendar--01-team.ics" as owner alice, folder
// Calendar; "--" inside the folder part stands for the hierarchy.
func split(file string) (owner, folder string) {
	parts := strings.Split(strings.TrimSuffix(file, ".ics"), "--")
	return parts[0], strings.Join(parts[1:len(parts)-1], "/")
}

func seed(user *imapmemserver.User, now time.Time) error {
	entries, err := data.ReadDir("data")
	if err != nil {
		return err
	}
	created := map[string]bool{}
	for _, e := range entries {
		owner, folder := split(e.Name())
		name := "shared/" + owner + "/" + folder
		if !created[name] {
			if err := user.Create(name, nil); err != nil {
				return fmt.Errorf("demo: create %s: %w", name, err)
			}
			created[name] = true
		}
		b, err := data.ReadFile(path.Join("data", e.Name()))
		if err != nil {
			return err
		}
		msg := message(owner, expand(string(b), now), now)
		if _, err := user.Append(name, literal{bytes.NewReader(msg), int64(len(msg))}, &imap.AppendOptions{Time: now}); err != nil {
			return fmt.Errorf("demo: append to %s: %w", name, err)
		}
	}
	return nil
}

// expand replaces {{D+n}} and {{D-n}} with the date n days from now
// (YYYYMMDD, UTC), so that the sample events always fall in the default
// free/busy window.
func expand(s string, now time.Time) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{D")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		var n int
		fmt.Sscanf(s[i+3:i+j], "%d", &n)
		b.WriteString(s[:i])
		b.WriteString(now.UTC().AddDate(0, 0, n).Format("20060102"))
		s = s[i+j+2:]
	}
}

// message wraps a calendar the way groupware clients store one: a
// multipart message with a text part and a text/calendar part.
func message(owner, ics string, now time.Time) []byte {
	ics = strings.ReplaceAll(strings.ReplaceAll(ics, "\r\n", "\n"), "\n", "\r\n")
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s@example.org\r\n", owner)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	b.WriteString("Subject: calendar event\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"demo-boundary\"\r\n\r\n")
	b.WriteString("--demo-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis message holds a calendar event.\r\n")
	b.WriteString("--demo-boundary\r\nContent-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\n")
	b.WriteString(ics)
	b.WriteString("\r\n--demo-boundary--\r\n")
	return []byte(b.String())
}

type literal struct {
	*bytes.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

// session is the proxy's session: go-imap's in-memory user session plus a
// NAMESPACE answer with an other-users namespace.
type session struct {
	*imapmemserver.UserSession
	user *imapmemserver.User
}

func (s *session) Login(username, password string) error {
	if err := s.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.user)
	return nil
}

func (s *session) Close() error {
	if s.UserSession == nil {
		return nil
	}
	return s.UserSession.Close()
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}},
		Other:    []imap.NamespaceDescriptor{{Prefix: "shared/", Delim: '/'}},
	}, nil
}
