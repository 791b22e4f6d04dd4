package acl

import (
	"fmt"
	"slices"
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
	// free/busy a folder counts for). A group listed here is known: its
	// members are exactly those listed. A group not listed is unknown,
	// and its entries are evaluated fail-closed (see Access).
	Groups Groups
	// Unresolved, when set, is called during Access with the name of
	// each unknown group (not in Groups) that has an entry in the ACL
	// being evaluated, for a logged-in requester. It must be safe for
	// concurrent use and must not block: Access is on every request's
	// path.
	Unresolved func(group string)
}

// Folder is what a Policy needs to know of a folder.
type Folder struct {
	Owner string
	// ACL is the folder's access control list as the server gave it;
	// ACLKnown is false when the server did not.
	ACL      ACL
	ACLKnown bool
}

// maxUnknownGroups bounds the unknown groups of one ACL that Access
// evaluates both ways under Precedence (2^n evaluations); an ACL with more
// gives a logged-in requester no rights at all.
const maxUnknownGroups = 6

// Access returns what r may see of f. The owner (a logged-in requester
// whose User is exactly f.Owner) sees everything. Anyone else sees
// details with the "r" right, from the folder's ACL (or, where it is
// unknown, from Readers), and free/busy times as FreeBusy says.
//
// Rights are evaluated fail-closed where fbpub lacks knowledge the server
// has, so that a requester never gets more than the server would give:
//
//   - An unconfirmed requester (Requester.Confirmed unset) might be known
//     to the server under another spelling of its name. Its rights are
//     the intersection of the rights of every plausible identity: the
//     name as given, the name in lower case, and every user identifier
//     of the ACL, member name of Groups and owner name equal to it under
//     Unicode case folding, each with its own groups. It is the owner
//     only if its name is the owner's exactly.
//   - A group with no entry in Groups has unknown membership. Under the
//     union combination (Cyrus, the RFC) the requester is taken to be a
//     member for the group's negative entries and not a member for its
//     positive ones, which is the least of both answers. Under Dovecot's
//     precedence, where a group's positive entry also replaces the rights
//     of lower layers ("anyone", "authenticated") and an override "!$g"
//     replaces even a user's own entry, the rights are the intersection
//     over every combination of memberships in the unknown groups (at
//     most maxUnknownGroups of them; beyond that, no rights).
//
// The anonymous requester belongs to no group and has no name, so neither
// rule applies to it.
func (p *Policy) Access(r Requester, f Folder) Access {
	if !r.Anonymous && r.User != "" && r.User == f.Owner {
		return OwnerAccess
	}
	var rights Rights
	switch {
	case f.ACLKnown:
		var o *Options
		if p.Semantics != nil {
			o = p.Semantics(f.Owner)
		}
		rights = p.effective(f.ACL, r, f.Owner, o)
	case p.Readers != nil:
		rights = p.effective(p.Readers[f.Owner], r, f.Owner, nil)
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

// Rights returns the rights r holds under a on a folder of owner, as
// Access evaluates them: with the server's semantics for owner
// (Semantics) and fail-closed where fbpub cannot know what the server
// knows (see Access). It is for decisions other than what r may see, such
// as whose free/busy a folder counts for (Kolab's incidences-for).
func (p *Policy) Rights(r Requester, owner string, a ACL) Rights {
	var o *Options
	if p.Semantics != nil {
		o = p.Semantics(owner)
	}
	return p.effective(a, r, owner, o)
}

// effective is a.EffectiveWith(r, o) made fail-closed as Access says.
func (p *Policy) effective(a ACL, r Requester, owner string, o *Options) Rights {
	if r.Anonymous {
		return a.EffectiveWith(r, o)
	}
	unknown := p.unknownGroups(a, r)
	for _, g := range unknown {
		if p.Unresolved != nil {
			p.Unresolved(g)
		}
	}
	rights := p.fixedGroups(a, r, unknown, o)
	if r.Confirmed {
		return rights
	}
	for _, name := range p.spellings(a, r.User, owner) {
		alt := Requester{User: name, Groups: p.Groups.Of(name)}
		rights &= p.fixedGroups(a, alt, p.unknownGroups(a, alt), o)
	}
	return rights
}

// unknownGroups returns the names of the groups with entries in a whose
// membership is unknown: not in p.Groups, and not among r's own groups.
func (p *Policy) unknownGroups(a ACL, r Requester) []string {
	var out []string
	for _, e := range a {
		id := e.Identifier
		if id.Kind != Group && id.Kind != GroupOverride {
			continue
		}
		if _, known := p.Groups[id.Name]; known || slices.Contains(r.Groups, id.Name) || slices.Contains(out, id.Name) {
			continue
		}
		out = append(out, id.Name)
	}
	return out
}

// fixedGroups evaluates a for r, whose membership in the groups unknown
// is not known, as the least rights over the possible memberships.
func (p *Policy) fixedGroups(a ACL, r Requester, unknown []string, o *Options) Rights {
	if len(unknown) == 0 {
		return a.EffectiveWith(r, o)
	}
	if o == nil || o.Combine != Precedence {
		// Union: pos &^ neg is least when every negative entry of an
		// unknown group applies and none of its positive ones do.
		trimmed := make(ACL, 0, len(a))
		for _, e := range a {
			id := e.Identifier
			if (id.Kind == Group || id.Kind == GroupOverride) && !id.Negative && slices.Contains(unknown, id.Name) {
				continue
			}
			trimmed = append(trimmed, e)
		}
		member := r
		member.Groups = append(slices.Clip(r.Groups), unknown...)
		return trimmed.EffectiveWith(member, o)
	}
	if len(unknown) > maxUnknownGroups {
		return 0
	}
	all := ^Rights(0)
	for set := 0; set < 1<<len(unknown); set++ {
		member := r
		member.Groups = slices.Clip(r.Groups)
		for i, g := range unknown {
			if set&(1<<i) != 0 {
				member.Groups = append(member.Groups, g)
			}
		}
		all &= a.EffectiveWith(member, o)
	}
	return all
}

// spellings returns the names other than user that the server might know
// user by: user in lower case (what Dovecot's %Lu and Cyrus'
// username_tolower make of it, even where no entry names it), the names
// of a's user identifiers (and the pseudo-user names "authenticated" and
// "anonymous" where a has those entries), the members of p.Groups and
// owner, each equal to user under case folding.
func (p *Policy) spellings(a ACL, user, owner string) []string {
	var out []string
	add := func(name string) {
		if name != "" && name != user && strings.EqualFold(name, user) && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	add(strings.ToLower(user))
	for _, e := range a {
		switch e.Identifier.Kind {
		case User:
			add(e.Identifier.Name)
		case Authenticated:
			add("authenticated")
		case Anonymous:
			add("anonymous")
		}
	}
	for _, members := range p.Groups {
		for _, m := range members {
			add(m)
		}
	}
	add(owner)
	slices.Sort(out)
	return out
}

// Challenges reports whether an anonymous requester should be asked to
// log in before anything is looked up: when free/busy is not public, an
// anonymous requester sees nothing, so every name gets the same answer.
func (p *Policy) Challenges() bool {
	return p.FreeBusy == AuthenticatedOnly || p.FreeBusy == ByACL
}
