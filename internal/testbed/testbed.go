// Package testbed runs a private Dovecot, and on demand a private Cyrus IMAP,
// for the tests of one package and seeds them.
//
// A package that needs a real IMAP server calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { testbed.Main(m) }
//
// and each test then calls Get to obtain the server, usually followed by
// Reset so that it starts from a known state:
//
//	srv := testbed.Get(t)
//	srv.Reset(t)
//	srv.CreateFolder(t, "alice", "Calendar")
//	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
//	c := srv.Dial(t, testbed.Proxy)
//
// Dovecot is started by the script testbed/dovecot-up at the root of the
// module (it installs Debian's dovecot-imapd when it is missing) and stopped
// by testbed/dovecot-down. Every package gets its own instance, with its own
// directory and port, so packages tested in parallel do not share state.
// When Dovecot cannot be started, Get skips the test, or fails it when the
// environment variable CI is "true".
//
// A Cyrus IMAP server is started on the first call of GetCyrus or Servers in
// a test binary (by testbed/cyrus-up, which runs the Cyrus that
// testbed/install unpacks into /opt/fbpub-cyrus) and stopped by Main. Tests
// that must hold on both servers loop over Servers:
//
//	for _, srv := range testbed.Servers(t) {
//		t.Run(string(srv.Kind), func(t *testing.T) {
//			srv.Reset(t)
//			srv.CreateFolder(t, "alice", "Calendar")
//			srv.SetACL(t, "alice", "Calendar", srv.GroupIdentifier(), "lr")
//			c := srv.Dial(t, "dave")
//			c.MyRights(srv.SharedName("alice", "Calendar"))
//		})
//	}
//
// The users are listed in Users; each one's password is Password(user), and
// each has an INBOX. Both servers fold logins to lower case: "BOB" logs in
// as bob. The user "dave" is in the ACL group "team", which
// Dovecot names "$team" and Cyrus "group:team" in ACL commands
// (Server.GroupIdentifier). Both servers use "/" as the hierarchy separator
// and put personal folders beside INBOX. Other users' folders appear to a user
// under "shared/<owner>/" on Dovecot, for example "shared/alice/Calendar",
// and under "Other Users/<owner>/" on Cyrus (Server.SharedName). The
// package-level SharedPrefix, GroupIdentifier and SharedName are Dovecot's.
//
// What else differs on Cyrus: an owner has "lrswipkxtecdan" on a new
// mailbox, and the implicit rights "lkxan" on its own mailboxes whatever the
// ACL says (SETACL on its own entry is refused); a new folder copies its
// parent's ACL; SETACL maps the legacy rights "c" to "kxc" and "d" to "ted";
// a folder one may not see answers "NO Mailbox does not exist", GETACL
// without "a" "NO Permission denied", an unknown group "NO Invalid
// identifier"; BODYSTRUCTURE types come in upper case ("TEXT" "CALENDAR";
// use MediaType); GETMETADATA with DEPTH lists Cyrus' own entries under
// /shared/vendor/cmu/cyrus-imapd/ and predefined ones with the value NIL;
// METADATA entries Cyrus does not define are allowed (annotation_allow_undefined).
package testbed

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

// Proxy is the login of the publishing proxy.
const Proxy = "fbproxy"

// Group is the ACL group that dave belongs to; grant it rights with the
// identifier GroupIdentifier.
const Group = "team"

// GroupIdentifier is the ACL identifier Dovecot uses for the group Group.
// Tests that also run on Cyrus use Server.GroupIdentifier.
const GroupIdentifier = "$" + Group

// SharedPrefix is the prefix of Dovecot's shared namespace: alice's folder
// "Calendar" is seen by other users as SharedPrefix + "alice/Calendar".
// Tests that also run on Cyrus use Server.SharedPrefix.
const SharedPrefix = "shared/"

// Users are the logins known to the test bed servers. Their passwords are
// given by Password.
var Users = []string{"fbproxy", "alice", "bob", "carol", "dave"}

// Password returns the password of a test bed user: the user name in lower
// case followed by "-pw". Both servers fold logins to lower case (Dovecot's
// auth_username_format = %Lu, Cyrus' username_tolower), so "BOB" logs in
// as bob with bob's password, Password("BOB").
func Password(user string) string { return strings.ToLower(user) + "-pw" }

// SharedName returns the name under which users other than owner see the
// owner's folder on Dovecot, for example "shared/alice/Calendar". Tests that
// also run on Cyrus use Server.SharedName.
func SharedName(owner, folder string) string { return SharedPrefix + owner + "/" + folder }

// Kind names an IMAP server implementation; it is also the name of its
// subtests and the stem of its scripts (testbed/<kind>-up).
type Kind string

// The servers the test bed runs.
const (
	Dovecot Kind = "dovecot" // Dovecot 2.3, Debian's dovecot-imapd
	Cyrus   Kind = "cyrus"   // Cyrus IMAP 3.6, Debian's cyrus-imapd
)

// String returns the server's name as written in messages, "Dovecot" or
// "Cyrus".
func (k Kind) String() string {
	switch k {
	case Dovecot:
		return "Dovecot"
	case Cyrus:
		return "Cyrus"
	}
	return string(k)
}

// Server is a running test bed server.
type Server struct {
	// Kind is the server implementation.
	Kind Kind
	// Addr is the address of the plain-text IMAP listener, "127.0.0.1:PORT".
	Addr string
	// Dir is the directory that holds the server's configuration, state,
	// logs and mail.
	Dir string

	root string // the module root, which holds testbed/<kind>-up
	// conf is appended to a new Dovecot's configuration
	// (FBPUB_TESTBED_DOVECOT_CONF); see StartDovecot.
	conf string

	mu      sync.Mutex
	stopped bool
}

// SharedPrefix returns the prefix under which a user sees other users'
// folders: "shared/" on Dovecot, "Other Users/" on Cyrus (its NAMESPACE
// answers (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))).
func (s *Server) SharedPrefix() string {
	if s.Kind == Cyrus {
		return cyrusUserPrefix
	}
	return SharedPrefix
}

// SharedName returns the name under which users other than owner see the
// owner's folder, for example "shared/alice/Calendar" on Dovecot and
// "Other Users/alice/Calendar" on Cyrus.
func (s *Server) SharedName(owner, folder string) string {
	return s.SharedPrefix() + owner + "/" + folder
}

// GroupIdentifier returns the ACL identifier of the group Group: "$team" on
// Dovecot, "group:team" on Cyrus.
func (s *Server) GroupIdentifier() string {
	if s.Kind == Cyrus {
		return "group:" + Group
	}
	return GroupIdentifier
}

// Cyrus' namespaces of other users' folders and of shared folders.
const (
	cyrusUserPrefix   = "Other Users/"
	cyrusSharedPrefix = "Shared Folders/"
)

var (
	mainCalled bool // set by Main before the tests run
	current    *Server
	startErr   error

	// Cyrus is started by the first GetCyrus or Servers and stopped by Main.
	cyrusMu      sync.Mutex
	cyrusStarted bool    // guarded by cyrusMu
	cyrusSrv     *Server // guarded by cyrusMu
	cyrusErr     error   // guarded by cyrusMu
)

// Main is called from a package's TestMain: it starts Dovecot through
// testbed/dovecot-up (found by walking up from the working directory to the
// directory holding go.mod), runs m.Run(), stops it with testbed/dovecot-down,
// and exits with the tests' code. If Dovecot cannot start, Main remembers the
// error and still runs the tests; Get then skips or fails them. A Cyrus that
// a test started (GetCyrus, Servers) is stopped with testbed/cyrus-down.
func Main(m *testing.M) {
	mainCalled = true
	srv, err := start(Dovecot)
	if err != nil {
		startErr = err
	} else {
		current = srv
	}
	code := m.Run()
	if srv != nil {
		if err := srv.down(false); err != nil {
			fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		}
	}
	cyrusMu.Lock()
	if cyrusSrv != nil {
		if err := cyrusSrv.down(false); err != nil {
			fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		}
		cyrusSrv = nil
	}
	cyrusMu.Unlock()
	os.Exit(code)
}

// Get returns the running Dovecot. When Dovecot could not be started, it
// fails the test with the error if the environment variable CI is "true",
// and skips it with a one-line hint otherwise.
func Get(t testing.TB) *Server {
	t.Helper()
	srv, err := dovecot()
	if err != nil {
		unavailable(t, Dovecot, err)
	}
	return srv
}

// GetCyrus returns the test binary's Cyrus, starting it on the first call;
// it may be called from parallel tests. When Cyrus cannot be started, it
// fails the test with the error if the environment variable CI is "true",
// and skips it with a one-line hint otherwise.
func GetCyrus(t testing.TB) *Server {
	t.Helper()
	srv, err := cyrus()
	if err != nil {
		unavailable(t, Cyrus, err)
	}
	return srv
}

// Servers returns every test bed server, Dovecot then Cyrus, for tests that
// must hold on both (run each in a subtest named string(srv.Kind)). A server
// that cannot be started fails the test if the environment variable CI is
// "true"; otherwise it is left out with a logged hint, and the test is
// skipped if neither runs.
func Servers(t testing.TB) []*Server {
	t.Helper()
	var srvs []*Server
	var hints []string
	for _, k := range []Kind{Dovecot, Cyrus} {
		var srv *Server
		var err error
		if k == Dovecot {
			srv, err = dovecot()
		} else {
			srv, err = cyrus()
		}
		if err == nil {
			srvs = append(srvs, srv)
			continue
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("testbed: %s not available: %v", k, err)
		}
		hints = append(hints, hint(k, err))
	}
	if len(srvs) == 0 {
		t.Skipf("%s", strings.Join(hints, "; "))
	}
	for _, h := range hints {
		t.Logf("%s; testing on %s only", h, srvs[0].Kind)
	}
	return srvs
}

// StartDovecot starts a Dovecot of the test's own, with conf appended to
// the test bed's configuration (e.g. "mail_max_userip_connections = 2"),
// and stops it when the test ends. It is for tests that need a setting the
// shared instance must not have; it skips or fails as Get does when Dovecot
// cannot start.
func StartDovecot(t testing.TB, conf string) *Server {
	t.Helper()
	root, err := moduleRoot()
	if err == nil {
		srv := &Server{Kind: Dovecot, root: root, conf: conf}
		if err = srv.up(""); err == nil {
			t.Cleanup(func() {
				if err := srv.down(false); err != nil {
					t.Errorf("testbed: %v", err)
				}
			})
			return srv
		}
	}
	unavailable(t, Dovecot, err)
	return nil
}

// dovecot returns the Dovecot that Main started, or why there is none.
func dovecot() (*Server, error) {
	if current != nil {
		return current, nil
	}
	if startErr != nil {
		return nil, startErr
	}
	return nil, errors.New("testbed.Main was not called from TestMain")
}

// cyrus returns the test binary's Cyrus, starting it on the first call, or
// why there is none. A failed start is not retried.
func cyrus() (*Server, error) {
	cyrusMu.Lock()
	defer cyrusMu.Unlock()
	if !mainCalled {
		return nil, errors.New("testbed.Main was not called from TestMain")
	}
	if !cyrusStarted {
		cyrusStarted = true
		cyrusSrv, cyrusErr = start(Cyrus)
	}
	return cyrusSrv, cyrusErr
}

// unavailable fails the test because server kind could not start if the
// environment variable CI is "true", and skips it with a hint otherwise.
func unavailable(t testing.TB, kind Kind, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("testbed: %s not available: %v", kind, err)
	}
	t.Skip(hint(kind, err))
}

// hint returns the one-line explanation of a skip because server kind could
// not start.
func hint(kind Kind, err error) string {
	how := "run testbed/dovecot-up"
	if kind == Cyrus {
		how = "run testbed/install as root"
	}
	return fmt.Sprintf("testbed: %s not available (%s); %s or set CI=true to make this fatal", kind, oneLine(err), how)
}

// oneLine returns the first line of err's message.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return s
}

// moduleRoot walks up from the working directory to the directory that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// start runs testbed/<kind>-up in a new directory and returns the server it
// reports.
func start(kind Kind) (*Server, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	srv := &Server{Kind: kind, root: root}
	if err := srv.up(""); err != nil {
		return nil, err
	}
	return srv, nil
}

// up runs testbed/<kind>-up, in dir if it is not empty, and records the
// address and directory it prints.
func (s *Server) up(dir string) error {
	script := filepath.Join(s.root, "testbed", string(s.Kind)+"-up")
	var args []string
	if dir != "" {
		args = append(args, dir)
	}
	cmd := exec.Command(script, args...)
	// Let the script stop the server itself if this test binary dies
	// without reaching <kind>-down (a timeout panic, a signal).
	cmd.Env = append(os.Environ(), fmt.Sprintf("FBPUB_TESTBED_WATCH_PID=%d", os.Getpid()))
	if s.conf != "" {
		cmd.Env = append(cmd.Env, "FBPUB_TESTBED_DOVECOT_CONF="+s.conf)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	var addr, gotDir string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_ADDR="); ok {
			addr = v
		} else if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_DIR="); ok {
			gotDir = v
		}
	}
	if addr == "" || gotDir == "" {
		return fmt.Errorf("%s printed no address and directory: %q", script, stdout.String())
	}
	if s.Addr != "" && s.Addr != addr {
		return fmt.Errorf("%s restarted %s on %s instead of %s", script, s.Kind, addr, s.Addr)
	}
	s.Addr, s.Dir = addr, gotDir
	return nil
}

// down runs testbed/<kind>-down; keep keeps the directory so that the
// instance can be started again.
func (s *Server) down(keep bool) error {
	script := filepath.Join(s.root, "testbed", string(s.Kind)+"-down")
	args := []string{s.Dir}
	if keep {
		args = []string{"--keep", s.Dir}
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stop simulates the server going away: it kills the server's master
// process and every session, keeping the data. Open clients see their connection close.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("testbed: Stop: %s is already stopped", s.Kind)
	}
	if err := s.down(true); err != nil {
		t.Fatalf("testbed: Stop: %v", err)
	}
	s.stopped = true
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopped {
			if err := s.up(s.Dir); err != nil {
				t.Errorf("testbed: restarting %s after the test: %v", s.Kind, err)
				return
			}
			s.stopped = false
		}
	})
}

// Start brings the server back after Stop, on the same port with the same data.
// If the test ends while the server is stopped, it is started again so that
// later tests find it running.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		t.Fatalf("testbed: Start: %s is already running", s.Kind)
	}
	if err := s.up(s.Dir); err != nil {
		t.Fatalf("testbed: Start: %v", err)
	}
	s.stopped = false
}

// ensureRunning fails the test if the server is stopped.
func (s *Server) ensureRunning(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		t.Fatalf("testbed: %s is stopped; call Start first", s.Kind)
	}
}

// dial connects and logs in as user.
func (s *Server) dial(user string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.Addr, err)
	}
	if err := c.Login(user, Password(user)).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	return c, nil
}

// Dial logs in as user over a plain loopback connection and returns a
// go-imap v2 client, closed by t.Cleanup.
func (s *Server) Dial(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	s.ensureRunning(t)
	c, err := s.dial(user)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// session runs f on a new connection logged in as user and closes it
// afterwards; any error fails the test, prefixed with what.
func (s *Server) session(t testing.TB, user, what string, f func(c *imapclient.Client) error) {
	t.Helper()
	s.ensureRunning(t)
	c, err := s.dial(user)
	if err != nil {
		t.Fatalf("testbed: %s: %v", what, err)
	}
	defer func() {
		c.Logout().Wait()
		c.Close()
	}()
	if err := f(c); err != nil {
		t.Fatalf("testbed: %s as %s: %v", what, user, err)
	}
}

// CreateFolder creates folder in user's personal namespace; parents are
// created as needed. The folder must not exist yet.
func (s *Server) CreateFolder(t testing.TB, user, folder string) {
	t.Helper()
	s.session(t, user, fmt.Sprintf("CREATE %q", folder), func(c *imapclient.Client) error {
		return c.Create(folder, nil).Wait()
	})
}

// SetACL sets, as owner, the rights of identifier on the owner's folder
// (replacing the earlier ones). The identifier is a user name, "anyone",
// "authenticated", a group such as GroupIdentifier, or a negative entry
// "-name". Empty rights remove the identifier's entry (DELETEACL).
func (s *Server) SetACL(t testing.TB, owner, folder, identifier, rights string) {
	t.Helper()
	if rights == "" {
		s.deleteACL(t, owner, folder, identifier)
		return
	}
	s.session(t, owner, fmt.Sprintf("SETACL %q %q %q", folder, identifier, rights), func(c *imapclient.Client) error {
		return c.SetACL(folder, imap.RightsIdentifier(identifier), imap.RightModificationReplace, imap.RightSet(rights)).Wait()
	})
}

// GetACL returns, as user, the ACL of folder, by identifier. The user needs
// the "a" right on the folder.
func (s *Server) GetACL(t testing.TB, user, folder string) map[string]string {
	t.Helper()
	acl := map[string]string{}
	s.session(t, user, fmt.Sprintf("GETACL %q", folder), func(c *imapclient.Client) error {
		data, err := c.GetACL(folder).Wait()
		if err != nil {
			return err
		}
		for id, rights := range data.Rights {
			acl[string(id)] = string(rights)
		}
		return nil
	})
	return acl
}

// deleteACL removes identifier's entry from the ACL of owner's folder.
// go-imap has no DELETEACL, and Dovecot keeps an entry with empty rights
// after SETACL with "", so the command is sent on a raw connection.
func (s *Server) deleteACL(t testing.TB, owner, folder, identifier string) {
	t.Helper()
	s.ensureRunning(t)
	cmd := "DELETEACL " + quote(mutf7.Encode(folder)) + " " + quote(identifier)
	if err := s.raw(owner, cmd); err != nil {
		t.Fatalf("testbed: %s as %s: %v", cmd, owner, err)
	}
}

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

// metadataEntries returns the names of the METADATA entries of mailbox (""
// for the server) under /private and /shared (on Cyrus only /private for the
// server), at any depth, that have a
// value (Cyrus also lists its predefined entries, with the value NIL).
// go-imap (still in v2.0.0-beta.9) puts GETMETADATA's options after the
// mailbox, where Dovecot does not accept them, so the command goes over a
// raw session.
func (s *Server) metadataEntries(user, mailbox string) ([]string, error) {
	rs, err := s.rawLogin(user)
	if err != nil {
		return nil, err
	}
	defer rs.close()
	roots := "(/private /shared)"
	if s.Kind == Cyrus && mailbox == "" {
		// Users cannot set Cyrus' /shared server entries. Reading them is
		// also best avoided: the freespace entries run Cyrus 3.6's
		// partlist_initialize, which reseeds rand() with time(NULL), a
		// suspected cause of mailboxes created in the same second by
		// different imapd processes getting the same unique id (see
		// mailbox_legacy_dirs in testbed/cyrus-up).
		roots = "/private"
	}
	resps, err := rs.run("GETMETADATA (DEPTH infinity) " + quote(mutf7.Encode(mailbox)) + " " + roots)
	if err != nil {
		return nil, fmt.Errorf("GETMETADATA %q: %w", mailbox, err)
	}
	var names []string
	for _, resp := range resps {
		if !strings.HasPrefix(resp, "* METADATA ") {
			continue
		}
		open, end := strings.IndexByte(resp, '('), strings.LastIndexByte(resp, ')')
		if open < 0 || end < open {
			return nil, fmt.Errorf("cannot parse %q", resp)
		}
		tokens, err := splitTokens(resp[open+1 : end])
		if err != nil {
			return nil, fmt.Errorf("cannot parse %q: %v", resp, err)
		}
		for i := 0; i+1 < len(tokens); i += 2 {
			if v := tokens[i+1]; !v.quoted && strings.EqualFold(v.text, "NIL") {
				continue
			}
			names = append(names, tokens[i].text)
		}
	}
	return names, nil
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

// Append appends msg to user's folder with the given flags and returns the
// UID the server assigned to it.
func (s *Server) Append(t testing.TB, user, folder string, msg []byte, flags ...imap.Flag) imap.UID {
	t.Helper()
	var uid imap.UID
	s.session(t, user, fmt.Sprintf("APPEND %q", folder), func(c *imapclient.Client) error {
		cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: flags})
		if _, err := cmd.Write(msg); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		data, err := cmd.Wait()
		if err != nil {
			return err
		}
		if data.UID == 0 {
			return errors.New("no APPENDUID in the answer")
		}
		uid = data.UID
		return nil
	})
	return uid
}

// SetMetadata sets, as user, the METADATA entry (for example
// "/private/vendor/kolab/folder-type") of folder to value; an empty folder
// name sets a server entry. An empty value removes the entry.
func (s *Server) SetMetadata(t testing.TB, user, folder, entry, value string) {
	t.Helper()
	s.session(t, user, fmt.Sprintf("SETMETADATA %q %q", folder, entry), func(c *imapclient.Client) error {
		var v *[]byte
		if value != "" {
			b := []byte(value)
			v = &b
		}
		return c.SetMetadata(folder, map[string]*[]byte{entry: v}).Wait()
	})
}

// Reset removes every mailbox except INBOX of every user, empties every
// INBOX, clears the INBOX ACLs (only the owner's entry stays) and metadata,
// and drops subscriptions, so that each test can start from a known state.
// Folders removed with their mailboxes take their ACLs and metadata along.
// Everything is done as the users themselves; on Cyrus an owner keeps the
// rights to do so whatever the ACLs say.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	for _, user := range Users {
		var ids []string
		s.session(t, user, "reset", func(c *imapclient.Client) error {
			var err error
			ids, err = s.resetUser(c, user)
			return err
		})
		for _, id := range ids {
			s.deleteACL(t, user, "INBOX", id)
		}
		for _, mailbox := range []string{"INBOX", ""} {
			s.clearMetadata(t, user, mailbox)
		}
	}
}

// resetUser does Reset's work for one user.
// It returns the identifiers other than the user in the INBOX ACL.
func (s *Server) resetUser(c *imapclient.Client, user string) (aclIDs []string, err error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var names []string
	for _, m := range list {
		if strings.EqualFold(m.Mailbox, "INBOX") || s.isShared(m.Mailbox) {
			continue
		}
		names = append(names, m.Mailbox)
	}
	// Children before their parents.
	sort.Slice(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		if err := c.Delete(name).Wait(); err != nil {
			return nil, fmt.Errorf("DELETE %q: %w", name, err)
		}
	}

	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST (SUBSCRIBED): %w", err)
	}
	for _, m := range subs {
		if err := c.Unsubscribe(m.Mailbox).Wait(); err != nil {
			return nil, fmt.Errorf("UNSUBSCRIBE %q: %w", m.Mailbox, err)
		}
	}

	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("SELECT INBOX: %w", err)
	}
	if sel.NumMessages > 0 {
		var all imap.SeqSet
		all.AddRange(1, 0) // 1:*
		store := c.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil)
		if err := store.Close(); err != nil {
			return nil, fmt.Errorf("STORE INBOX 1:* +FLAGS (\\Deleted): %w", err)
		}
		if err := c.Expunge().Close(); err != nil {
			return nil, fmt.Errorf("EXPUNGE INBOX: %w", err)
		}
	}
	if err := c.Unselect().Wait(); err != nil {
		return nil, fmt.Errorf("UNSELECT: %w", err)
	}

	acl, err := c.GetACL("INBOX").Wait()
	if err != nil {
		return nil, fmt.Errorf("GETACL INBOX: %w", err)
	}
	var ids []string
	for id := range acl.Rights {
		if string(id) != user {
			ids = append(ids, string(id))
		}
	}

	return ids, nil
}

// clearMetadata removes, as user, every METADATA entry of mailbox (""
// for the server) except the server's own (Dovecot's vendor.dovecot
// entries, Cyrus' /vendor/cmu/ ones, which users cannot set).
func (s *Server) clearMetadata(t testing.TB, user, mailbox string) {
	t.Helper()
	names, err := s.metadataEntries(user, mailbox)
	if err != nil {
		t.Fatalf("testbed: reset as %s: %v", user, err)
	}
	unset := map[string]*[]byte{}
	for _, name := range names {
		lower := strings.ToLower(name)
		if !strings.Contains(lower, "/vendor/vendor.dovecot/") && !strings.Contains(lower, "/vendor/cmu/") {
			unset[name] = nil
		}
	}
	if len(unset) == 0 {
		return
	}
	s.session(t, user, fmt.Sprintf("SETMETADATA %q (clear)", mailbox), func(c *imapclient.Client) error {
		return c.SetMetadata(mailbox, unset).Wait()
	})
}

// isShared reports whether a mailbox name is in a namespace other than the
// personal one: other users' folders, and on Cyrus also shared folders.
func (s *Server) isShared(name string) bool {
	prefixes := []string{SharedPrefix}
	if s.Kind == Cyrus {
		prefixes = []string{cyrusUserPrefix, cyrusSharedPrefix}
	}
	for _, p := range prefixes {
		if name == strings.TrimSuffix(p, "/") || strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// CalendarMessage wraps an iCalendar text into an RFC 5322 message, the shape
// groupware clients store: From, Date, Subject, Message-ID and MIME-Version
// headers and a multipart/mixed body with a short text/plain part and a
// "text/calendar; charset=utf-8; method=PUBLISH" part. Line endings are CRLF
// throughout, whatever ics uses.
func CalendarMessage(subject, ics string) []byte {
	var id [12]byte
	rand.Read(id[:])
	token := hex.EncodeToString(id[:])
	boundary := "fbpub-testbed-" + token
	crlf := func(s string) string {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
		s = strings.TrimRight(s, "\n")
		return strings.ReplaceAll(s, "\n", "\r\n") + "\r\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: fbpub test bed <testbed@example.org>\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Message-ID: <%s@testbed.example.org>\r\n", token)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n", boundary)
	fmt.Fprintf(&b, "\r\n")
	fmt.Fprintf(&b, "This is a multi-part message in MIME format.\r\n")
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\n")
	fmt.Fprintf(&b, "Content-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "\r\n")
	fmt.Fprintf(&b, "This message holds a calendar object.\r\n")
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	fmt.Fprintf(&b, "Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n")
	fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"event.ics\"\r\n")
	fmt.Fprintf(&b, "Content-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "\r\n")
	b.WriteString(crlf(ics))
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}
