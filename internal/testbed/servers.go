package testbed

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

var (
	mainCalled bool // set by Main before the tests run

	// Dovecot is started by the first Get or Servers and stopped
	// by Main: a test binary whose tests need no server starts none.
	dovecotMu      sync.Mutex
	dovecotStarted bool    // guarded by dovecotMu
	dovecotSrv     *Server // guarded by dovecotMu
	dovecotErr     error   // guarded by dovecotMu

	// Cyrus is started by the first GetCyrus or Servers and stopped by Main.
	cyrusMu      sync.Mutex
	cyrusStarted bool    // guarded by cyrusMu
	cyrusSrv     *Server // guarded by cyrusMu
	cyrusErr     error   // guarded by cyrusMu
)

// Main is called from a package's TestMain: it runs m.Run(), stops the
// servers its tests started, and exits with the tests' code. It starts
// none itself: the first Get or Servers starts Dovecot through
// testbed/dovecot-up (found by walking up from the working directory to
// the directory holding go.mod), and the first GetCyrus or Servers starts
// Cyrus; Main stops them with testbed/dovecot-down and testbed/cyrus-down.
// Under go test -short (the fast tier) no test starts a server.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	dovecotMu.Lock()
	if dovecotSrv != nil {
		if err := dovecotSrv.down(false); err != nil {
			fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		}
		dovecotSrv = nil
	}
	dovecotMu.Unlock()
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
	skipShort(t, Dovecot)
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
	skipShort(t, Cyrus)
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
	skipShort(t, "Dovecot and Cyrus")
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
	skipShort(t, Dovecot)
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

// dovecot returns the test binary's Dovecot, starting it on the first
// call, or why there is none. A failed start is not retried.
func dovecot() (*Server, error) {
	dovecotMu.Lock()
	defer dovecotMu.Unlock()
	if !mainCalled {
		return nil, errors.New("testbed.Main was not called from TestMain")
	}
	if !dovecotStarted {
		dovecotStarted = true
		dovecotSrv, dovecotErr = start(Dovecot)
	}
	return dovecotSrv, dovecotErr
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

// skipShort skips a test that needs a server under go test -short: that
// flag runs the fast tier, the unit tests against fakes and the embedded
// go-imap server, which start no server of the test bed. The tests against
// the real servers are the proof, and run without -short (CI does).
func skipShort(t testing.TB, what any) {
	t.Helper()
	if testing.Short() {
		t.Skipf("testbed: -short runs the fast tier; this test needs %v", what)
	}
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
