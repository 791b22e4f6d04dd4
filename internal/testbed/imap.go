package testbed

import (
	"errors"
	"fmt"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

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
