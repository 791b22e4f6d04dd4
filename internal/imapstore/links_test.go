package imapstore

import (
	"testing"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestLinksEntry checks, on Dovecot and Cyrus, what the store of secret
// links relies on: the owner's session creates LinksFolder, shares it
// with the proxy alone and writes the entry; the proxy reads it through
// the other users' namespace; a user without rights on it reads and
// writes nothing; a /private entry, the other candidate, is invisible to
// the proxy; and, the reason for a folder of its own, on Dovecot a user
// holding "lr" on a folder may write its /shared entries.
func TestLinksEntry(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			srv.CreateFolder(t, "alice", "Calendar")
			srv.SetACL(t, "alice", "Calendar", "bob", "lr")
			srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")

			proxy := dialAs(t, srv, testbed.Proxy, nil)
			if got, err := proxy.Links(t.Context(), "alice"); err != nil || got != nil {
				t.Fatalf("Links(alice) as the proxy before any link = %q, %v; want nil", got, err)
			}
			asUser(t, srv, "alice", func(s *Session) {
				if err := s.SetLinks(t.Context(), testbed.Proxy, []byte(`{"links":[1]}`)); err != nil {
					t.Fatalf("SetLinks as the owner: %v", err)
				}
				if err := s.SetLinks(t.Context(), testbed.Proxy, []byte(`{"links":[2]}`)); err != nil {
					t.Fatalf("SetLinks again, the folder existing: %v", err)
				}
				if got, err := s.Links(t.Context(), "alice"); err != nil || string(got) != `{"links":[2]}` {
					t.Fatalf("Links(alice) as the owner = %q, %v", got, err)
				}
			})
			acl := srv.GetACL(t, "alice", LinksFolder)
			if len(acl) != 2 || acl[testbed.Proxy] != "lr" || acl["alice"] == "" {
				t.Errorf("ACL of %q = %v; want alice and the proxy (lr) only", LinksFolder, acl)
			}
			if got, err := proxy.Links(t.Context(), "alice"); err != nil || string(got) != `{"links":[2]}` {
				t.Fatalf("Links(alice) as the proxy = %q, %v", got, err)
			}
			linksName := srv.SharedName("alice", LinksFolder)
			asUser(t, srv, "bob", func(s *Session) {
				if got, err := s.Links(t.Context(), "alice"); err != nil || got != nil {
					t.Errorf("Links(alice) as bob, without rights = %q, %v; want nil", got, err)
				}
				err := s.client.SetMetadata(linksName, map[string]*[]byte{LinksEntry: ptr([]byte("forged"))}).Wait()
				if err == nil {
					t.Errorf("bob, without rights, wrote alice's links entry")
				}
			})
			if got, err := proxy.Links(t.Context(), "alice"); err != nil || string(got) != `{"links":[2]}` {
				t.Fatalf("after bob's attempt, Links(alice) as the proxy = %q, %v", got, err)
			}

			// A /private entry is not the proxy's to see.
			srv.SetMetadata(t, "alice", LinksFolder, "/private/vendor/fbpub/freebusy-links", "private value")
			d, err := proxy.client.GetMetadata(linksName, []string{"/private/vendor/fbpub/freebusy-links"}, nil).Wait()
			if err == nil {
				if v := d.Entries["/private/vendor/fbpub/freebusy-links"]; v != nil && len(*v) > 0 {
					t.Errorf("the proxy reads alice's /private entry: %q", *v)
				}
			}

			// Why not the calendar folder: there, bob's "lr" is enough on
			// Dovecot to write a /shared entry (RFC 5464 §3.2).
			calendar := srv.SharedName("alice", "Calendar")
			asUser(t, srv, "bob", func(s *Session) {
				err := s.client.SetMetadata(calendar, map[string]*[]byte{LinksEntry: ptr([]byte("forged"))}).Wait()
				if srv.Kind == testbed.Dovecot && err != nil {
					t.Errorf("Dovecot refused bob's /shared entry on a folder he holds lr on (%v): the reason for LinksFolder is gone", err)
				}
				if srv.Kind == testbed.Cyrus && err == nil {
					t.Errorf("Cyrus let bob, with lr, write a /shared entry")
				}
			})

			asUser(t, srv, "alice", func(s *Session) {
				if err := s.SetLinks(t.Context(), testbed.Proxy, nil); err != nil {
					t.Fatalf("removing the entry: %v", err)
				}
			})
			if got, err := proxy.Links(t.Context(), "alice"); err != nil || got != nil {
				t.Errorf("after removal, Links(alice) as the proxy = %q, %v; want nil", got, err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
