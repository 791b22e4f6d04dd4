package acl

import (
	"fmt"
	"strings"
)

// Access is what one requester may see of one folder, from least to most.
type Access int

const (
	// NoAccess hides the folder: it is left out of every view, and a view
	// of nothing else is "not found", so its existence does not leak.
	NoAccess Access = iota
	// FreeBusyAccess shows when the owner is busy: free/busy times, and
	// feeds whose events are reduced to their times, titled "Busy".
	FreeBusyAccess
	// ReadAccess shows events as stored, except what their class keeps
	// from anyone but the owner (CLASS:PRIVATE, CLASS:CONFIDENTIAL).
	ReadAccess
	// OwnerAccess shows everything.
	OwnerAccess
)

func (a Access) String() string {
	switch a {
	case NoAccess:
		return "none"
	case FreeBusyAccess:
		return "freebusy"
	case ReadAccess:
		return "read"
	case OwnerAccess:
		return "owner"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// Visibility says who sees free/busy times.
type Visibility string

const (
	// Public: everyone, anonymous requesters included (Outlook looks up
	// free/busy without credentials).
	Public Visibility = "public"
	// AuthenticatedOnly: every requester who logged in.
	AuthenticatedOnly Visibility = "authenticated"
	// ByACL: requesters holding some right on the folder (besides its
	// owner).
	ByACL Visibility = "acl"
)

// ParseVisibility validates a visibility name.
func ParseVisibility(s string) (Visibility, error) {
	switch v := Visibility(strings.ToLower(strings.TrimSpace(s))); v {
	case Public, AuthenticatedOnly, ByACL:
		return v, nil
	case "":
		return Public, nil
	}
	return "", fmt.Errorf("acl: unknown free/busy visibility %q (want public, authenticated or acl)", s)
}

// Policy decides what requesters see of the folders fbpub publishes. The
// zero Policy shows free/busy times to everyone and details to owners
// only, which is also what it does for a folder whose ACL is unknown.
type Policy struct {
	// FreeBusy says who sees free/busy times; "" means Public.
	FreeBusy Visibility
	// Readers stands in for the folder ACL where the server did not give
	// it (no ACL extension, or the proxy lacks the "a" right to GETACL):
	// owner name to an ACL of the requesters who may read that owner's
	// folders, as configured. An owner not listed is read by nobody else.
	Readers map[string]ACL
	// Semantics returns how the server combines ACL entries for a folder
	// of owner, as a requester other than the owner sees it; nil means
	// the RFC's union (Cyrus).
	Semantics func(owner string) *Options
	// Groups is the group membership of users, for entries that name
	// groups when fbpub evaluates a user's rights on its own (whose
	// free/busy a folder counts for).
	Groups Groups
}

// Folder is what a Policy needs to know of a folder.
type Folder struct {
	Owner string
	// ACL is the folder's access control list as the server gave it;
	// ACLKnown is false when the server did not.
	ACL      ACL
	ACLKnown bool
}

// Access returns what r may see of f. The owner sees everything. Anyone
// else sees details with the "r" right, from the folder's ACL (or, where
// it is unknown, from Readers), and free/busy times as FreeBusy says.
func (p *Policy) Access(r Requester, f Folder) Access {
	if !r.Anonymous && r.User != "" && strings.EqualFold(r.User, f.Owner) {
		return OwnerAccess
	}
	var rights Rights
	switch {
	case f.ACLKnown:
		var o *Options
		if p.Semantics != nil {
			o = p.Semantics(f.Owner)
		}
		rights = f.ACL.EffectiveWith(r, o)
	case p.Readers != nil:
		rights = p.Readers[f.Owner].Effective(r)
	}
	if rights.Has(Read) {
		return ReadAccess
	}
	switch p.FreeBusy {
	case AuthenticatedOnly:
		if r.Anonymous {
			return NoAccess
		}
	case ByACL:
		if rights == 0 {
			return NoAccess
		}
	}
	return FreeBusyAccess
}

// Challenges reports whether an anonymous requester should be asked to
// log in before anything is looked up: when free/busy is not public, an
// anonymous requester sees nothing, so every name gets the same answer.
func (p *Policy) Challenges() bool {
	return p.FreeBusy == AuthenticatedOnly || p.FreeBusy == ByACL
}
