package imapstore

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestCheckLogin logs in under several spellings of a login on both test
// bed servers, which fold logins to lower case, and checks that CheckLogin
// reports the server's spelling.
func TestCheckLogin(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			for _, tc := range []struct{ typed, password, want string }{
				{"bob", "bob-pw", "bob"},
				{"BOB", "bob-pw", "bob"},
				{"Dave", "dave-pw", "dave"},
			} {
				var cmds []string
				got, err := CheckLogin(t.Context(), Options{
					Addr: srv.Addr, TLS: TLSNone, User: tc.typed, Password: tc.password, Timeout: 10 * time.Second,
					Observe: func(cmd string, _ error, _ time.Duration) { cmds = append(cmds, cmd) },
				}, netip.Addr{})
				if err != nil || got != tc.want {
					t.Errorf("CheckLogin(%q) = %q, %v, want %q", tc.typed, got, err, tc.want)
				}
				if strings.Join(cmds, " ") != "LOGIN GETACL" {
					t.Errorf("CheckLogin(%q) sent %q, want LOGIN GETACL", tc.typed, cmds)
				}
			}
			_, err := CheckLogin(t.Context(), Options{Addr: srv.Addr, TLS: TLSNone, User: "BOB", Password: "wrong", Timeout: 10 * time.Second}, netip.Addr{})
			if !errors.Is(err, ErrAuth) {
				t.Errorf("CheckLogin with a wrong password: %v, want ErrAuth", err)
			}
			_, err = CheckLogin(t.Context(), Options{Addr: "127.0.0.1:1", TLS: TLSNone, User: "bob", Password: "bob-pw", Timeout: 10 * time.Second}, netip.Addr{})
			if err == nil || errors.Is(err, ErrAuth) {
				t.Errorf("CheckLogin without a server: %v, want a connection error", err)
			}
		})
	}
}

// TestCheckLoginOriginatingIP: the requester's address goes out before
// LOGIN on both servers, which log in all the same; it reaches Dovecot,
// which trusts the test bed's loopback clients, and is what it logs (and
// charges its auth penalty to). Cyrus logs only to syslog.
func TestCheckLoginOriginatingIP(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.77")
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			for _, pw := range []string{"bob-pw", "wrong"} {
				var cmds []string
				user, err := CheckLogin(t.Context(), Options{
					Addr: srv.Addr, TLS: TLSNone, User: "BOB", Password: pw, Timeout: 10 * time.Second,
					Observe: func(cmd string, _ error, _ time.Duration) { cmds = append(cmds, cmd) },
				}, client)
				if pw == "bob-pw" && (err != nil || user != "bob") {
					t.Errorf("CheckLogin(BOB) with the client's address = %q, %v, want bob", user, err)
				}
				if pw == "wrong" && !errors.Is(err, ErrAuth) {
					t.Errorf("CheckLogin(BOB) with a wrong password and the client's address: %v, want ErrAuth", err)
				}
				if len(cmds) == 0 || cmds[0] != "ID" {
					t.Errorf("CheckLogin sent %q, want ID first", cmds)
				}
			}
			if srv.Kind != testbed.Dovecot {
				return
			}
			// Dovecot writes its log asynchronously.
			var log []byte
			for range 50 {
				log, _ = os.ReadFile(filepath.Join(srv.Dir, "log", "dovecot.log"))
				if strings.Count(string(log), "rip=192.0.2.77") >= 2 {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Errorf("Dovecot's log does not name the requester's address twice (login, failure):\n%s", tail(string(log), 2000))
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSpelling(t *testing.T) {
	for _, tc := range []struct {
		ids  []string
		user string
		want string
	}{
		{[]string{"bob", "anyone"}, "BOB", "bob"},
		{[]string{"anyone", "-bob"}, "BOB", ""},
		{[]string{"bob", "Bob"}, "BOB", ""},
		{[]string{"bob", "bob"}, "bob", "bob"},
		{nil, "bob", ""},
	} {
		if got := spelling(tc.ids, tc.user); got != tc.want {
			t.Errorf("spelling(%q, %q) = %q, want %q", tc.ids, tc.user, got, tc.want)
		}
	}
}

// TestConnectionLimit: a login Dovecot refuses because the user already
// has mail_max_userip_connections sessions from fbpub's address is
// ErrUnavailable with the server's own words, not ErrAuth, on each of
// fbpub's login paths (sessions, the NOTIFY watch, CheckLogin with ID); wrong credentials are still ErrAuth.
func TestConnectionLimit(t *testing.T) {
	srv := testbed.StartDovecot(t, "mail_max_userip_connections = 2")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{Addr: srv.Addr, TLS: TLSNone, User: testbed.Proxy, Password: testbed.Password(testbed.Proxy), Timeout: 10 * time.Second}
	for range 2 {
		s, err := Dial(ctx, opts)
		if err != nil {
			t.Fatalf("Dial within the limit: %v", err)
		}
		defer s.Close()
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrAuth) {
			t.Fatalf("%s beyond the limit: %v, want ErrUnavailable and not ErrAuth", what, err)
		}
		// Dovecot's words, so that an operator sees which setting to raise.
		for _, want := range []string{"NO [LIMIT]", "mail_max_userip_connections=2", `"` + testbed.Proxy + `"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s beyond the limit: %q lacks %q", what, err, want)
			}
		}
		if strings.Contains(err.Error(), opts.Password) {
			t.Errorf("%s: the password is in the error: %q", what, err)
		}
	}
	_, err := Dial(ctx, opts)
	check("Dial", err)
	w := NewWatcherWith(WatchOptions{Options: opts})
	_, err = w.dialNotify(ctx, w.slots[0])
	check("the NOTIFY connection", err)
	_, err = CheckLogin(ctx, opts, netip.Addr{})
	check("CheckLogin", err)

	// The limit is per user: bob still logs in, and a wrong password is
	// still a wrong password.
	bob := opts
	bob.User, bob.Password = "bob", testbed.Password("bob")
	s, err := Dial(ctx, bob)
	if err != nil {
		t.Fatalf("Dial as bob: %v", err)
	}
	s.Close()
	bob.Password = "wrong"
	if _, err := Dial(ctx, bob); !errors.Is(err, ErrAuth) || errors.Is(err, ErrUnavailable) {
		t.Errorf("Dial with a wrong password: %v, want ErrAuth", err)
	}
}

// TestCheckLoginIDWire: the ID goes out before go-imap reads the greeting,
// after STARTTLS when that is used (never in clear), and an answer to ID
// that sendID does not read (a literal) gives the connection up before
// LOGIN: no password goes out on a connection in an unknown state.
func TestCheckLoginIDWire(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	f := startFake(t, "IMAP4rev1 STARTTLS ID ACL", nil, serverTLS, false, func(string) string { return "OK done" })
	opts := Options{Addr: f.addr, TLS: TLSStartTLS, TLSConfig: clientTLS, User: "u", Password: "p", Timeout: 5 * time.Second}
	if _, err := CheckLogin(t.Context(), opts, netip.MustParseAddr("::ffff:192.0.2.9")); err != nil {
		t.Fatalf("CheckLogin over STARTTLS: %v", err)
	}
	log := f.log()
	starttls, id, login := strings.Index(log, " STARTTLS\n"), strings.Index(log, `I ID ("name" "fbpub" "x-originating-ip" "192.0.2.9")`), strings.Index(log, `LOGIN "u" "p"`)
	if starttls < 0 || id < starttls || login < id || !strings.Contains(log, " GETACL INBOX") {
		t.Errorf("the server saw\n%s\nwant STARTTLS, then ID, then LOGIN, then GETACL", log)
	}

	pushes := make(chan string, 1)
	f = newFakeServer(t, "IMAP4rev1 ID", pushes, func(cmd string) string {
		if strings.HasPrefix(cmd, "ID") {
			pushes <- "* ID (\"name\" {4}\r\nfake)\r\n"
			return ""
		}
		return "OK done"
	})
	_, err := CheckLogin(t.Context(), Options{Addr: f.addr, TLS: TLSNone, User: "u", Password: "p", Timeout: 5 * time.Second}, netip.MustParseAddr("192.0.2.9"))
	if !errors.Is(err, errIDAnswer) {
		t.Errorf("CheckLogin with a literal in the ID answer: %v, want errIDAnswer", err)
	}
	if log := f.log(); strings.Contains(log, "LOGIN") {
		t.Errorf("the server saw\n%s\nwant no LOGIN", log)
	}
}
