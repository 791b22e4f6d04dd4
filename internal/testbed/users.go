package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Private starts a Dovecot of the test's own, stopped and removed when
// the test ends: for a test that changes what every other test of the
// package would see (hundreds of users). It skips or fails as Get does
// when Dovecot cannot start.
func Private(t testing.TB) *Server {
	t.Helper()
	skipShort(t, Dovecot)
	if !mainCalled {
		unavailable(t, Dovecot, errors.New("testbed.Main was not called from TestMain"))
	}
	srv, err := start(Dovecot)
	if err != nil {
		unavailable(t, Dovecot, err)
	}
	t.Cleanup(func() {
		if err := srv.down(false); err != nil {
			t.Errorf("testbed: %v", err)
		}
	})
	return srv
}

// AddUsers adds users to a Dovecot's passwd-file, with the passwords
// Password gives, the way a site's directory grows: by writing the file,
// not through any IMAP command. It returns once Dovecot has read the file
// again (it does so when the file's time changes, at most once a second).
// Users is not changed: Reset does not touch the added users.
func (s *Server) AddUsers(t testing.TB, users []string) {
	t.Helper()
	if s.Kind != Dovecot {
		t.Fatalf("testbed: AddUsers: only on Dovecot, not %s", s.Kind)
	}
	path := filepath.Join(s.Dir, "users")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("testbed: AddUsers: %v", err)
	}
	// The mail uid and gid of the users dovecot-up wrote.
	first, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Split(first, ":")
	if len(fields) < 4 {
		t.Fatalf("testbed: AddUsers: unexpected passwd-file line %q", first)
	}
	var add strings.Builder
	for _, u := range users {
		home := filepath.Join(s.Dir, "home", u)
		fmt.Fprintf(&add, "%s:{PLAIN}%s:%s:%s::%s::\n", u, Password(u), fields[2], fields[3], home)
	}
	// Written whole and renamed, so that Dovecot never reads half of it.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, append(b, add.String()...), 0o644); err != nil {
		t.Fatalf("testbed: AddUsers: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("testbed: AddUsers: %v", err)
	}
	last := users[len(users)-1]
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := s.dial(last)
		if err == nil {
			c.Logout().Wait()
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testbed: AddUsers: Dovecot did not take the new users: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ShareFolder creates folder for each of owners and grants identifier
// rights on it, several owners at once; with msg, it also appends msg to
// each folder.
func (s *Server) ShareFolder(t testing.TB, owners []string, folder, identifier, rights string, msg []byte) {
	t.Helper()
	s.ensureRunning(t)
	work := make(chan string)
	errs := make(chan error, len(owners))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for owner := range work {
				errs <- s.share(owner, folder, identifier, rights, msg)
			}
		})
	}
	for _, o := range owners {
		work <- o
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("testbed: ShareFolder: %v", err)
		}
	}
}

func (s *Server) share(owner, folder, identifier, rights string, msg []byte) error {
	c, err := s.dial(owner)
	if err != nil {
		return err
	}
	defer func() {
		c.Logout().Wait()
		c.Close()
	}()
	if err := c.Create(folder, nil).Wait(); err != nil {
		return fmt.Errorf("CREATE %q as %s: %w", folder, owner, err)
	}
	if err := c.SetACL(folder, imap.RightsIdentifier(identifier), imap.RightModificationReplace, imap.RightSet(rights)).Wait(); err != nil {
		return fmt.Errorf("SETACL %q as %s: %w", folder, owner, err)
	}
	if msg != nil {
		cmd := c.Append(folder, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if _, err := cmd.Wait(); err != nil {
			return fmt.Errorf("APPEND to %q as %s: %w", folder, owner, err)
		}
	}
	return nil
}
