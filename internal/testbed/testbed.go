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
// Dovecot is started on the first call of Get or Servers in a test
// binary, by the script testbed/dovecot-up at the root of the module, and
// stopped by testbed/dovecot-down when Main returns: a package whose tests
// need no server starts none. Every package gets its own instance, with its
// own directory and port, so packages tested in parallel do not share state.
// The scripts install nothing (testbed/install does, once, as root): when
// Dovecot cannot be started, Get skips the test, or fails it when the
// environment variable CI is "true". Under go test -short (the fast tier)
// every function that would start a server skips the test instead.
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
//
// The files split the package by concern: testbed.go holds the users, the
// server kinds and the names that differ between them; servers.go gives
// tests their servers (Main, Get, GetCyrus, Servers, StartDovecot);
// lifecycle.go runs the testbed/<kind>-up and -down scripts, and Stop and
// Start; imap.go holds the IMAP helpers (Dial, CreateFolder, SetACL, GetACL,
// Append); metadata.go the METADATA ones (SetMetadata, and the listing and
// clearing Reset does); raw.go the plain connection for the commands go-imap
// lacks or gets wrong; reset.go Reset; message.go CalendarMessage; users.go
// Private and the many users a test may add; relay.go the fault-injecting
// Relay; redis.go a private Redis (StartRedis).
package testbed

import (
	"strings"
	"sync"
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
