package acl

import (
	"strconv"
	"strings"
)

// Kind says whom an Identifier names.
type Kind int

const (
	// User names one user by login name: "alice".
	User Kind = iota
	// Anyone is RFC 4314's universal identity "anyone": every requester,
	// anonymous ones included.
	Anyone
	// Authenticated is Dovecot's "authenticated": every requester who
	// logged in, that is, everybody but the anonymous requester.
	Authenticated
	// Anonymous is "anonymous", the identity of an anonymous login in
	// Cyrus. (Dovecot has no such identifier in IMAP: there, "anonymous"
	// in GETACL output is a user of that name; see Combine.)
	Anonymous
	// Group names a group: Dovecot writes "$team", Cyrus "group:team";
	// both parse to Name "team".
	Group
	// GroupOverride is Dovecot's "!$team": a group whose rights take
	// precedence even over a user's own entry.
	GroupOverride
	// Owner is Dovecot's "owner": the owner of the mailbox, whoever that
	// is (see Options.Owner). Dovecot's GETACL normally prints the
	// owner's entry under the logged-in user's name instead; "owner"
	// appears when that conversion is impossible.
	Owner
)

var kindNames = [...]string{
	User:          "user",
	Anyone:        "anyone",
	Authenticated: "authenticated",
	Anonymous:     "anonymous",
	Group:         "group",
	GroupOverride: "group-override",
	Owner:         "owner",
}

// String returns the kind's lower-case name, such as "group".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Identifier is a parsed ACL identifier (RFC 4314 §2).
type Identifier struct {
	Kind Kind
	// Name is the user or group name for User, Group and GroupOverride,
	// without any prefix, and "" for the other kinds. It is compared
	// case-sensitively, as both Dovecot and Cyrus do (Cyrus may fold
	// case when it stores an identifier, with username_tolower, but
	// GETACL returns the stored form).
	Name string
	// Negative marks a negative entry ("-alice"): its rights are taken
	// away from whoever the identifier matches (RFC 4314 §2).
	Negative bool
	// Global marks Dovecot's global ACL entries, which GETACL prefixes
	// with "#" ("#anyone", "-#$team"). Only Dovecot's precedence
	// combination treats them differently.
	Global bool
}

const (
	negativePrefix      = "-"
	globalPrefix        = "#"
	dovecotGroupPrefix  = "$"
	cyrusGroupPrefix    = "group:"
	groupOverridePrefix = "!$"
)

// ParseIdentifier parses an identifier as a server returns it in an ACL
// response. The recognised forms, in the order they are tried after an
// optional "-" (negative) and then an optional "#" (Dovecot global):
//
//	anyone, authenticated, anonymous, owner   the special identities
//	!$name                                    Dovecot group override
//	$name                                     Dovecot group
//	group:name                                Cyrus group
//	name                                      a user
//
// Special names are matched exactly (case-sensitively, like Dovecot and
// Cyrus): "Anyone" is a user. An empty identifier, an empty name after a
// prefix ("-", "$", "group:"), and a name that itself starts with "-"
// (RFC 4314 reserves a leading dash for negative rights, so "--alice" is
// not "-alice" negated) are malformed: the error is a *SyntaxError
// reading `acl: malformed identifier "…"`.
//
// For every id returned, ParseIdentifier(id.String()) returns id.
func ParseIdentifier(s string) (Identifier, error) {
	var id Identifier
	rest := s
	if r, ok := strings.CutPrefix(rest, negativePrefix); ok {
		id.Negative, rest = true, r
	}
	if r, ok := strings.CutPrefix(rest, globalPrefix); ok {
		id.Global, rest = true, r
	}
	switch rest {
	case "anyone":
		id.Kind = Anyone
	case "authenticated":
		id.Kind = Authenticated
	case "anonymous":
		id.Kind = Anonymous
	case "owner":
		id.Kind = Owner
	default:
		var r string
		var ok bool
		if r, ok = strings.CutPrefix(rest, groupOverridePrefix); ok {
			id.Kind = GroupOverride
		} else if r, ok = strings.CutPrefix(rest, dovecotGroupPrefix); ok {
			id.Kind = Group
		} else if r, ok = strings.CutPrefix(rest, cyrusGroupPrefix); ok {
			id.Kind = Group
		} else {
			id.Kind, r = User, rest
		}
		if r == "" || strings.HasPrefix(r, negativePrefix) ||
			(id.Kind == User && strings.HasPrefix(r, globalPrefix)) {
			return Identifier{}, &SyntaxError{What: "identifier", Input: s}
		}
		id.Name = r
	}
	return id, nil
}

// String returns the identifier in Dovecot's spelling: "-" if negative,
// "#" if global, then "anyone", "authenticated", "anonymous", "owner",
// "!$name", "$name" or the user name. Groups therefore print as "$team"
// whichever spelling they were parsed from; the Identifier is the same.
func (id Identifier) String() string {
	var b strings.Builder
	if id.Negative {
		b.WriteString(negativePrefix)
	}
	if id.Global {
		b.WriteString(globalPrefix)
	}
	switch id.Kind {
	case Anyone, Authenticated, Anonymous, Owner:
		b.WriteString(id.Kind.String())
	case Group:
		b.WriteString(dovecotGroupPrefix + id.Name)
	case GroupOverride:
		b.WriteString(groupOverridePrefix + id.Name)
	default:
		b.WriteString(id.Name)
	}
	return b.String()
}
