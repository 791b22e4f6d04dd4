package imapstore

import (
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// NamespaceKind is one of the three kinds of RFC 2342 namespaces.
type NamespaceKind int

// The namespace kinds.
const (
	// Personal holds the logged-in user's own folders.
	Personal NamespaceKind = iota
	// OtherUsers holds other users' folders: "<prefix><user><delim><path>"
	// (Dovecot "shared/alice/Calendar", Cyrus "Other Users/alice/Calendar").
	OtherUsers
	// Shared holds folders that belong to no user.
	Shared
)

func (k NamespaceKind) String() string {
	switch k {
	case OtherUsers:
		return "other-users"
	case Shared:
		return "shared"
	}
	return "personal"
}

// Namespace is one namespace the server announced.
type Namespace struct {
	Kind   NamespaceKind
	Prefix string
	Delim  rune
}

// Namespaces returns what the server announced; without the NAMESPACE
// extension, one personal namespace with an empty prefix.
func (s *Session) Namespaces() []Namespace { return slices.Clone(s.spaces) }

func (s *Session) readNamespaces() error {
	if !s.features.Namespace {
		s.spaces = []Namespace{{Kind: Personal}}
		return nil
	}
	var data *imap.NamespaceData
	err := s.observe("NAMESPACE", func() (err error) {
		data, err = s.client.Namespace().Wait()
		return err
	})
	if err != nil {
		return fmt.Errorf("imapstore: NAMESPACE: %w", err)
	}
	add := func(kind NamespaceKind, ds []imap.NamespaceDescriptor) {
		for _, d := range ds {
			s.spaces = append(s.spaces, Namespace{Kind: kind, Prefix: d.Prefix, Delim: d.Delim})
		}
	}
	add(Personal, data.Personal)
	add(OtherUsers, data.Other)
	add(Shared, data.Shared)
	if len(data.Personal) == 0 {
		s.spaces = append(s.spaces, Namespace{Kind: Personal})
	}
	return nil
}

// place finds the namespace of a folder name (the longest matching
// prefix) and splits the name into owner and path. For the personal
// namespace the owner is the session's user; for other users it is the
// first component after the prefix; for shared folders it is empty.
// "INBOX" is always personal.
func (s *Session) place(name string, delim rune) (kind NamespaceKind, owner, path string) {
	best := -1
	for i, ns := range s.spaces {
		if ns.Prefix != "" && !hasPrefixFold(name, ns.Prefix, ns.Kind) {
			continue
		}
		if best < 0 || len(ns.Prefix) > len(s.spaces[best].Prefix) {
			best = i
		}
	}
	if best < 0 || strings.EqualFold(name, "INBOX") {
		return Personal, s.opts.User, name
	}
	ns := s.spaces[best]
	rest := name[len(ns.Prefix):]
	switch ns.Kind {
	case OtherUsers:
		d := string(delim)
		if delim == 0 {
			d = string(ns.Delim)
		}
		owner, path, _ = strings.Cut(rest, d)
		return OtherUsers, owner, path
	case Shared:
		return Shared, "", rest
	}
	return Personal, s.opts.User, rest
}

// hasPrefixFold reports whether name starts with prefix. Only a personal
// "INBOX." style prefix is compared case-insensitively, as RFC 3501 makes
// INBOX case-insensitive.
func hasPrefixFold(name, prefix string, kind NamespaceKind) bool {
	if kind == Personal && len(prefix) >= 5 && strings.EqualFold(prefix[:5], "INBOX") {
		return len(name) >= len(prefix) && strings.EqualFold(name[:5], "INBOX") && name[5:len(prefix)] == prefix[5:]
	}
	return strings.HasPrefix(name, prefix)
}
