package acl

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// Entry is one <identifier, rights> pair of an access control list.
type Entry struct {
	Identifier Identifier
	Rights     Rights
}

// ACL is an access control list: the entries of one mailbox, in no
// meaningful order. The same Identifier may occur more than once (for
// example "$team" and "group:team"); every evaluation treats such entries
// as one entry holding the union of their rights.
type ACL []Entry

// Parse builds an ACL from a GETACL response: a map from each raw
// identifier to its raw rights string, which is the shape of go-imap's
// GetACLData.Rights. The entries are sorted by identifier string, so the
// result does not depend on map order. Every malformed identifier or
// rights string is reported, joined with errors.Join, each a *SyntaxError
// wrapped with the raw identifier of its entry; the entries that did parse
// are returned alongside the error, but a caller deciding access must not
// use a partial ACL (a dropped negative entry would grant too much).
func Parse(pairs map[string]string) (ACL, error) {
	ids := make([]string, 0, len(pairs))
	for id := range pairs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	a := make(ACL, 0, len(ids))
	var errs []error
	for _, raw := range ids {
		id, idErr := ParseIdentifier(raw)
		rights, rErr := ParseRights(pairs[raw])
		if idErr != nil || rErr != nil {
			for _, err := range []error{idErr, rErr} {
				if err != nil {
					errs = append(errs, fmt.Errorf("%w (entry %q)", err, raw))
				}
			}
			continue
		}
		a = append(a, Entry{Identifier: id, Rights: rights})
	}
	return a, errors.Join(errs...)
}

// Requester is who asks for a mailbox: the anonymous requester, or a user
// with the groups it belongs to. Names and group names are compared
// case-sensitively with the ACL's identifiers, so they must be spelt as
// the IMAP server stores them.
//
// IMAP servers may fold the case of a login (Dovecot's
// auth_username_format=%Lu, Cyrus' username_tolower): "BOB" logs in as
// "bob". A Requester whose User is the server's own spelling of the
// login, learned in the user's own session, is Confirmed. Policy
// evaluates an unconfirmed one fail-closed (see Policy.Access); ACL
// methods such as EffectiveWith take User as it is.
type Requester struct {
	// User is the login name. It is ignored when Anonymous is set.
	User string
	// Confirmed marks User as spelt as the IMAP server spells the
	// authenticated identity. The zero value (unconfirmed) is the safe
	// one: a name as typed, or as a reverse proxy passed it on.
	Confirmed bool
	// Anonymous marks a requester who did not log in. A Requester with
	// User "anonymous" and Anonymous false is an ordinary user of that
	// name and does not match the Anonymous identifier.
	Anonymous bool
	// Groups are the plain group names ("team", not "$team" or
	// "group:team") the user belongs to. They are ignored when Anonymous
	// is set.
	Groups []string
}

// Groups is a static group membership: group name to member user names.
// It is the configured membership source for now. A Groups value must not
// be modified while it is being read; reading it concurrently is safe.
type Groups map[string][]string

// Of returns the names of the groups whose members include user, sorted,
// or nil if there are none. Names are compared case-sensitively.
func (g Groups) Of(user string) []string {
	var out []string
	for name, members := range g {
		if slices.Contains(members, user) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Requester returns the named (non-anonymous) Requester for user with its
// groups from g. It is unconfirmed: set Confirmed when user is the
// server's own spelling of the login.
func (g Groups) Requester(user string) Requester {
	return Requester{User: user, Groups: g.Of(user)}
}

// Combine selects how the rights of the several entries that apply to one
// requester are combined. RFC 4314 §2 leaves this to the implementation.
type Combine int

const (
	// Union is the union of the rights of every matching entry minus the
	// union of the rights of every matching negative entry. It is the
	// RFC's example and what Cyrus computes (cyrus_acl_myrights in
	// lib/acl_afs.c). Under Union, GroupOverride counts as a plain group
	// and a Global entry as a plain entry.
	//
	// Against Cyrus 3.6 (the MYRIGHTS differential test, 31 ACLs × 4
	// users, all agree under Cyrus()): its auth_unix knows no
	// "authenticated" (it is a user of that name: AuthenticatedIsUser).
	// Not covered by that test: with acl_admin_implies_write set, "a"
	// also grants "switen"; the owner of a personal mailbox gets
	// implicit_owner_rights (Options.Owner, Options.OwnerRights), which
	// this package adds after the negative rights, an order still to be
	// confirmed — fbpub never evaluates an owner's rights (owners see
	// everything of their own folders).
	Union Combine = iota

	// Precedence is Dovecot's combination (acl_object_rebuild_cache in
	// src/plugins/acl/acl-api.c, checked against the 2.3 sources). The
	// matching entries are ordered by layer, from least to most specific:
	//
	//	anyone < authenticated < groups < owner < user < group overrides
	//
	// local entries before global ("#") ones. Walking up, the positive
	// rights of an entry replace those gathered so far, and its negative
	// rights replace the negative rights gathered so far; entries of the
	// same layer (only groups can have several) add to each other
	// instead. An entry without positive (or negative) rights leaves the
	// positive (negative) set alone. The result is the positive set
	// minus the negative set. So "anyone lr" with "$team w" gives a
	// member of team only "w", and "$team lrw" with "alice lr" gives
	// alice "lr". The first global entry also clears the negative set.
	// The owner of the mailbox (Options.Owner) skips the local anyone,
	// authenticated and group entries and starts from Options.OwnerRights.
	// The identifier "anonymous" is a user of that name, as in Dovecot's
	// IMAP ACL plugin; Dovecot's anonymous logins have no identity of
	// their own and match only anyone.
	//
	// Checked so far: fifteen cases of the tests (layer replacement,
	// group overrides, negatives per layer, the same-layer quirk, an
	// empty entry, a user named "anonymous") agree with
	// "doveadm acl rights" of Dovecot 2.3.19 reading dovecot-acl files of
	// a public namespace. Not yet checked, for the live differential test
	// (log in as each user, compare MYRIGHTS with EffectiveWith):
	//   - identifiers as GETACL spells them ("$team", "!$team", "#anyone",
	//     "-alice"), and whether GETACL, run by another user, prints an
	//     "owner" entry under that user's own name (imap_acl_write_aclobj
	//     converts it);
	//   - owner handling in the owner's private namespace, and that a
	//     shared namespace ("shared/alice/Calendar") gives alice no owner
	//     rights;
	//   - an anonymous login (is it authenticated for ACL purposes?);
	//   - MYRIGHTS answering "NO Mailbox doesn't exist" when the rights
	//     are empty or only "p": compare that with 0 or Post;
	//   - global ACL files, if the deployment uses them.
	Precedence
)

// Options adjust Effective to a server's semantics. A nil *Options means
// the zero Options: Union, and no owner.
type Options struct {
	Combine Combine

	// Owner is the user name of the mailbox's owner ("alice" for her
	// INBOX and, seen through a shared namespace, for
	// "shared/alice/Calendar"), or "" for a public mailbox or when it is
	// unknown. It decides who matches the Owner identifier and who gets
	// OwnerRights.
	Owner string

	// OwnerRights are the rights the owner holds beyond the entries.
	// Under Precedence they are the owner's starting set, replaced like
	// any other layer by owner and user entries (Dovecot: Standard, in
	// the owner's private namespace only). Under Union they are added
	// after the negative rights are taken away (Cyrus's
	// implicit_owner_rights for personal mailboxes).
	OwnerRights Rights

	// AuthenticatedIsUser makes "authenticated" an ordinary user name
	// instead of every logged-in requester: Cyrus with its unix auth
	// module knows no such pseudo-identifier (checked against Cyrus 3.6
	// by the MYRIGHTS differential test).
	AuthenticatedIsUser bool
}

// Cyrus returns Options modelling Cyrus 3.6 (auth_unix) evaluating a
// mailbox for a requester other than its owner: the union of grants minus
// the union of negative grants, "authenticated" a plain user name.
func Cyrus() *Options {
	return &Options{Combine: Union, AuthenticatedIsUser: true}
}

// Dovecot returns Options modelling Dovecot 2.3's acl plugin evaluating a
// mailbox for requesters, where owner is the mailbox's owner when the
// requester sees it in its own private namespace, and "" otherwise (a
// shared or public namespace: there Dovecot gives nobody owner rights).
func Dovecot(owner string) *Options {
	return &Options{Combine: Precedence, Owner: owner, OwnerRights: Standard}
}

// Effective returns the rights r holds under a according to the plain
// RFC 4314 reading (Combine Union, no owner): the union of the rights of
// every matching entry minus the union of the rights of every matching
// negative entry.
//
// An identifier matches as follows. Anyone matches every requester,
// anonymous included. Authenticated matches every requester who is not
// anonymous. Anonymous matches only the anonymous requester. User
// matches the non-anonymous requester of exactly that name. Group and
// GroupOverride match a non-anonymous requester listed as a member of the
// group. Owner matches nobody without Options.Owner.
func (a ACL) Effective(r Requester) Rights {
	return a.EffectiveWith(r, nil)
}

// EffectiveWith is Effective under the semantics o selects; nil means the
// defaults, which makes it Effective.
func (a ACL) EffectiveWith(r Requester, o *Options) Rights {
	if o == nil {
		o = &Options{}
	}
	if o.Combine == Precedence {
		return a.precedence(r, o)
	}
	var pos, neg Rights
	for _, e := range a {
		if !matches(e.Identifier, r, o, Union) {
			continue
		}
		if e.Identifier.Negative {
			neg |= e.Rights
		} else {
			pos |= e.Rights
		}
	}
	eff := pos &^ neg
	if isOwner(r, o) {
		eff |= o.OwnerRights
	}
	return eff
}

func isOwner(r Requester, o *Options) bool {
	return !r.Anonymous && o.Owner != "" && r.User == o.Owner
}

// matches reports whether id applies to r.
func matches(id Identifier, r Requester, o *Options, c Combine) bool {
	switch id.Kind {
	case Anyone:
		return true
	case Authenticated:
		if o.AuthenticatedIsUser {
			return !r.Anonymous && r.User == "authenticated"
		}
		return !r.Anonymous
	case Anonymous:
		if c == Precedence {
			return !r.Anonymous && r.User == "anonymous"
		}
		return r.Anonymous
	case User:
		return !r.Anonymous && r.User == id.Name
	case Group, GroupOverride:
		return !r.Anonymous && slices.Contains(r.Groups, id.Name)
	case Owner:
		return isOwner(r, o)
	}
	return false
}

// layer returns the Dovecot precedence of a kind (enum acl_id_type in
// src/plugins/acl/acl-api.h, "ACL identifiers in override order").
func layer(k Kind) int {
	switch k {
	case Anyone:
		return 0
	case Authenticated:
		return 1
	case Group:
		return 2
	case Owner:
		return 3
	case User, Anonymous:
		return 4
	case GroupOverride:
		return 5
	}
	return -1
}

const ownerLayer = 3

// merged is one Dovecot ACL entry: the positive and negative rights of one
// identifier (GETACL splits them into "x" and "-x"; Dovecot stores them
// together and merges duplicates in acl_rights_sort).
type merged struct {
	global         bool
	layer          int
	name           string
	pos, neg       Rights
	hasPos, hasNeg bool
}

func (a ACL) precedence(r Requester, o *Options) Rights {
	var ms []*merged
	for _, e := range a {
		id := e.Identifier
		if !matches(id, r, o, Precedence) {
			continue
		}
		l := layer(id.Kind)
		name := id.Name
		if id.Kind == Anonymous {
			name = "anonymous"
		}
		i := slices.IndexFunc(ms, func(m *merged) bool {
			return m.global == id.Global && m.layer == l && m.name == name
		})
		if i < 0 {
			ms = append(ms, &merged{global: id.Global, layer: l, name: name})
			i = len(ms) - 1
		}
		if id.Negative {
			ms[i].neg |= e.Rights
			ms[i].hasNeg = true
		} else {
			ms[i].pos |= e.Rights
			ms[i].hasPos = true
		}
	}
	// acl_rights_cmp: locals before globals, then by layer, then by name.
	slices.SortFunc(ms, func(x, y *merged) int {
		if x.global != y.global {
			if x.global {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(x.layer, y.layer), cmp.Compare(x.name, y.name))
	})

	var pos, neg Rights
	if isOwner(r, o) {
		// apply_owner_default_rights, after skipping the local entries
		// below the owner layer.
		ms = slices.DeleteFunc(ms, func(m *merged) bool {
			return !m.global && m.layer < ownerLayer
		})
		pos, neg = o.OwnerRights, 0
	}
	var prev *merged
	firstGlobal := true
	for _, m := range ms {
		replace := prev == nil || prev.layer != m.layer || prev.global != m.global
		prev = m
		if m.hasPos {
			if replace {
				pos = m.pos
			} else {
				pos |= m.pos
			}
		}
		switch {
		case m.global && firstGlobal:
			// "first global: reset negative ACLs so local ACLs can't
			// mess things up via them".
			firstGlobal = false
			neg = m.neg
		case m.hasNeg && replace:
			neg = m.neg
		case m.hasNeg:
			neg |= m.neg
		}
	}
	return pos &^ neg
}
