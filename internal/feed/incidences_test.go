package feed

import (
	"testing"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// TestSharedFolderCountsFor: a folder of the shared namespace (no owner)
// is published only when its incidences-for annotation names whose
// free/busy it counts for, and then counts for exactly those users. Its
// readers may not write annotations on this server (Cyrus's rule); where
// they may (RFC 5464's, Dovecot), the annotations are not used.
func TestSharedFolderCountsFor(t *testing.T) {
	cyrus := func() acl.MetadataRule { return acl.CyrusMetadata }
	c := New(Options{Policy: &acl.Policy{Groups: acl.Groups{"team": {"dave"}}}, Metadata: cyrus})
	teamACL := map[string]string{"bob": "lr", "$team": "lr", "carol": "lra", "erin": "l"}
	folders := []imapstore.Folder{
		{Name: "Shared/Rooms/Calendar", Namespace: imapstore.Shared, Path: "Rooms/Calendar", Delim: '/', Rights: "lra", RightsKnown: true, Type: "event", IncidencesFor: "readers", ACL: teamACL, ACLKnown: true},
		{Name: "Shared/Board/Calendar", Namespace: imapstore.Shared, Path: "Board/Calendar", Delim: '/', Rights: "lra", RightsKnown: true, Type: "event", IncidencesFor: "admins", ACL: teamACL, ACLKnown: true},
		{Name: "Shared/Old/Calendar", Namespace: imapstore.Shared, Path: "Old/Calendar", Delim: '/', Rights: "lr", RightsKnown: true, Type: "event"},
	}
	if ds := New(Options{}).decide(folders); ds[0].Reason == "" || ds[1].Reason == "" || ds[0].Untrusted == "" {
		t.Errorf("under RFC 5464's rule, where bob may write their annotations: %q (%q), %q; want neither published", ds[0].Reason, ds[0].Untrusted, ds[1].Reason)
	}
	ds := c.decide(folders)
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

// TestCountsForFailsClosed: whose free/busy a folder counts for is decided
// with the access policy's fail-closed rules. A negative entry of a group
// fbpub knows no members of keeps the folder out of everyone's free/busy
// but its owner's (the server might count anyone among them), and a
// spelling of a name that may be another identity gets no more than it.
func TestCountsForFailsClosed(t *testing.T) {
	unresolved := 0
	p := &acl.Policy{Groups: acl.Groups{"team": {"dave"}}, Unresolved: func(string) { unresolved++ }}
	rooms := Folder{Name: "shared/alice/Rooms", Owner: "alice", IncidencesFor: "readers", ACLKnown: true,
		ACL: mustACL(t, map[string]string{"anyone": "lr", "-$staff": "r", "-carol": "r"})}
	for _, tc := range []struct {
		user string
		want bool
	}{
		{"alice", true},  // the owner
		{"bob", false},   // may be in staff, which is denied "r"
		{"dave", false},  // in team, which says nothing of staff
		{"CAROL", false}, // may be carol, denied "r"
	} {
		if got := rooms.CountsFor(tc.user, p); got != tc.want {
			t.Errorf("%s counts for %q: %v, want %v", rooms.Name, tc.user, got, tc.want)
		}
	}
	if unresolved == 0 {
		t.Error("the unknown group staff was not reported")
	}
	known := &acl.Policy{Groups: acl.Groups{"staff": {"erin"}}}
	if !rooms.CountsFor("bob", known) || rooms.CountsFor("erin", known) {
		t.Errorf("with staff's members known: counts for bob %v (want true), erin %v (want false)",
			rooms.CountsFor("bob", known), rooms.CountsFor("erin", known))
	}
}

func mustACL(t *testing.T, pairs map[string]string) acl.ACL {
	t.Helper()
	a, err := acl.Parse(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
