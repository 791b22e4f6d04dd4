package testbed

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

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
