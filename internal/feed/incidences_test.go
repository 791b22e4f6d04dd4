package feed

import (
	"testing"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// TestSharedFolderCountsFor: a folder of the shared namespace (no owner)
// is published only when its incidences-for annotation names whose
// free/busy it counts for, and then counts for exactly those users.
func TestSharedFolderCountsFor(t *testing.T) {
	c := New(Options{Policy: &acl.Policy{Groups: acl.Groups{"team": {"dave"}}}})
	teamACL := map[string]string{"bob": "lr", "$team": "lr", "carol": "lra", "erin": "l"}
	ds := c.decide([]imapstore.Folder{
		{Name: "Shared/Rooms/Calendar", Namespace: imapstore.Shared, Path: "Rooms/Calendar", Delim: '/', Rights: "lra", RightsKnown: true, Type: "event", IncidencesFor: "readers", ACL: teamACL, ACLKnown: true},
		{Name: "Shared/Board/Calendar", Namespace: imapstore.Shared, Path: "Board/Calendar", Delim: '/', Rights: "lra", RightsKnown: true, Type: "event", IncidencesFor: "admins", ACL: teamACL, ACLKnown: true},
		{Name: "Shared/Old/Calendar", Namespace: imapstore.Shared, Path: "Old/Calendar", Delim: '/', Rights: "lr", RightsKnown: true, Type: "event"},
	})
	if ds[0].Reason != "" || ds[1].Reason != "" || ds[2].Reason == "" {
		t.Fatalf("decisions: %q, %q, %q; want the first two published, the unannotated one not", ds[0].Reason, ds[1].Reason, ds[2].Reason)
	}
	rooms, board := ds[0].Folder, ds[1].Folder
	for _, tc := range []struct {
		f    Folder
		user string
		want bool
	}{
		{rooms, "bob", true}, {rooms, "dave", true}, {rooms, "carol", true}, {rooms, "erin", false}, {rooms, "", false},
		{board, "carol", true}, {board, "bob", false}, {board, "dave", false},
	} {
		if got := tc.f.CountsFor(tc.user, c.opts.Policy); got != tc.want {
			t.Errorf("%s counts for %q: %v, want %v", tc.f.Name, tc.user, got, tc.want)
		}
	}
}
