package imapstore

import (
	"slices"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestOwnerFolders: Owners names the users who share something with the
// proxy without listing their folders; OwnerFolders lists one owner's
// folders with their states, and nothing of anyone else's, whatever the
// name holds; Details adds the rights, ACL and annotations.
func TestOwnerFolders(t *testing.T) {
	for _, srv := range testbed.Servers(t) {
		t.Run(string(srv.Kind), func(t *testing.T) {
			srv.Reset(t)
			for _, owner := range []string{"alice", "bob"} {
				srv.CreateFolder(t, owner, "Calendar")
				srv.SetACL(t, owner, "Calendar", testbed.Proxy, "lra")
			}
			srv.CreateFolder(t, "alice", "Calendar/Work")
			srv.SetACL(t, "alice", "Calendar/Work", testbed.Proxy, "lr")
			srv.SetMetadata(t, "alice", "Calendar", "/shared/vendor/kolab/incidences-for", "readers")
			srv.CreateFolder(t, testbed.Proxy, "Calendar")
			var commands []string
			s := dialAs(t, srv, testbed.Proxy, func(cmd string, _ error, _ time.Duration) { commands = append(commands, cmd) })
			ctx := t.Context()

			owners, err := s.Owners(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"alice", "bob", testbed.Proxy} {
				if !slices.Contains(owners, want) {
					t.Errorf("Owners() = %q, want %q among them", owners, want)
				}
			}

			commands = nil
			fs, err := s.OwnerFolders(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range fs {
				names = append(names, f.Name)
				if !f.HasState || f.State.UIDValidity == 0 || f.Owner != "alice" {
					t.Errorf("%s: owner %q, state %+v (has %v)", f.Name, f.Owner, f.State, f.HasState)
				}
			}
			slices.Sort(names)
			if want := []string{srv.SharedName("alice", "Calendar"), srv.SharedName("alice", "Calendar/Work")}; !slices.Equal(names, want) {
				t.Errorf("OwnerFolders(alice) = %q, want %q", names, want)
			}
			if want := []string{"LIST"}; !slices.Equal(commands, want) {
				t.Errorf("OwnerFolders(alice) sent %q, want %q (LIST-STATUS)", commands, want)
			}

			for _, name := range []string{"*", "%", "a%", "alice/Calendar", "nobody"} {
				if fs, err := s.OwnerFolders(ctx, name); err != nil || len(fs) != 0 {
					t.Errorf("OwnerFolders(%q) = %v, %v; want nothing", name, fs, err)
				}
			}

			fs, err = s.OwnerFolders(ctx, testbed.Proxy)
			if err != nil {
				t.Fatal(err)
			}
			names = nil
			for _, f := range fs {
				names = append(names, f.Name)
			}
			if !slices.Contains(names, "Calendar") || slices.ContainsFunc(names, func(n string) bool { return n != "INBOX" && n != "Calendar" }) {
				t.Errorf("OwnerFolders(%s) = %q, want its INBOX and Calendar only", testbed.Proxy, names)
			}

			fs, _ = s.OwnerFolders(ctx, "alice")
			if err := s.Details(ctx, fs); err != nil {
				t.Fatal(err)
			}
			for _, f := range fs {
				cal := f.Path == "Calendar"
				if !f.RightsKnown || !f.ACLKnown == cal || (f.IncidencesFor == "readers") != cal {
					t.Errorf("%s after Details: rights %q (known %v), ACL known %v, incidences-for %q", f.Name, f.Rights, f.RightsKnown, f.ACLKnown, f.IncidencesFor)
				}
			}
		})
	}
}
