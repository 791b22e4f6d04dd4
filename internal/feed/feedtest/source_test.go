package feedtest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/feed/feedtest"
	"github.com/fbpub/fbpub/internal/imapstore"
)

var _ feed.Source = (*feedtest.Source)(nil)

// TestRights: the fake answers as Dovecot does for the proxy's rights:
// without l a folder is not listed, without r it cannot be read, and its
// ACL is read only with a.
func TestRights(t *testing.T) {
	ctx := context.Background()
	s := feedtest.New()
	cal := s.AddFolder("alice", "Calendar", "lr")
	work := s.AddFolder("alice", "Calendar/Work", "lra")
	s.AddFolder("alice", "Calendar/Hidden", "r")
	for _, name := range []string{cal, work} {
		s.SetACL(name, map[string]string{"alice": "lrswipkxtecda", "bob": "lr"})
	}
	fs, err := s.OwnerFolders(ctx, "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
		if !f.HasState || f.RightsKnown || f.ACLKnown {
			t.Errorf("OwnerFolders gave %s with details or without a state: %+v", f.Name, f)
		}
	}
	if want := []string{cal, work}; !slices.Equal(names, want) {
		t.Fatalf("OwnerFolders(ALICE) = %q, want %q", names, want)
	}
	if err := s.Details(ctx, fs); err != nil {
		t.Fatal(err)
	}
	if fs[0].Rights != "lr" || fs[0].ACLKnown || fs[1].Rights != "lra" || !fs[1].ACLKnown || fs[1].ACL["bob"] != "lr" {
		t.Errorf("Details = %+v, %+v; want the ACL of the folder with a only", fs[0], fs[1])
	}
	s.SetRights(cal, "l")
	if _, err := s.Fetch(ctx, cal, imapstore.Query{}); !errors.Is(err, imapstore.ErrNotFound) {
		t.Errorf("Fetch without r: %v, want imapstore.ErrNotFound", err)
	}
	if got := s.Calls("OwnerFolders") + s.Calls("Details") + s.Calls("Fetch"); got != 3 {
		t.Errorf("calls counted: %d, want 3", got)
	}
}

// TestFetchChangedSince: every change moves HIGHESTMODSEQ, and a fetch
// with CHANGEDSINCE gives the flags of the messages changed since, the
// whole UID list, and the content of the messages not known.
func TestFetchChangedSince(t *testing.T) {
	ctx := context.Background()
	s := feedtest.New()
	cal := s.AddFolder("alice", "Calendar", "lr")
	a := s.Append(cal, []byte("a"))
	first, err := s.Fetch(ctx, cal, imapstore.Query{})
	if err != nil {
		t.Fatal(err)
	}
	b := s.Append(cal, []byte("b"))
	s.SetDeleted(cal, a, true)
	l, err := s.Fetch(ctx, cal, imapstore.Query{ChangedSince: first.State.HighestModSeq, Known: func(uid uint32) bool { return uid == a }})
	if err != nil {
		t.Fatal(err)
	}
	if l.State.HighestModSeq <= first.State.HighestModSeq || l.State.UIDValidity != first.State.UIDValidity {
		t.Errorf("state %+v after two changes from %+v", l.State, first.State)
	}
	if !slices.Equal(l.UIDs, []uint32{a, b}) || l.FlagsComplete || !l.Deleted[a] || len(l.Messages) != 1 || l.Messages[0].UID != b || string(l.Messages[0].Raw) != "b" {
		t.Errorf("Fetch(CHANGEDSINCE) = %+v", l)
	}
	var received []uint32
	l, err = s.Fetch(ctx, cal, imapstore.Query{Received: func(m imapstore.Message) { received = append(received, m.UID) }})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(received, []uint32{b}) || len(l.Messages) != 1 || l.Messages[0].UID != a || l.Messages[0].Raw != nil {
		t.Errorf("a read from scratch handed over %v and listed %+v; want b handed over, a (deleted) listed without content", received, l.Messages)
	}
}
