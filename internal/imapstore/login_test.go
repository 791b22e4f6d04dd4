package imapstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestConnectionLimit: a login Dovecot refuses because the user already
// has mail_max_userip_connections sessions from fbpub's address is
// ErrUnavailable with the server's own words, not ErrAuth, on each of
// fbpub's login paths; wrong credentials are still ErrAuth.
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
	_, err = dialNotify(ctx, &opts, func(*response) {})
	check("the NOTIFY connection", err)
	_, err = dialBulk(ctx, &opts)
	check("the bulk connection", err)

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
