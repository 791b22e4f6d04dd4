package testbed

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/mutf7"
)

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
