// Package acl evaluates IMAP access control lists (RFC 4314): it parses
// the rights strings and identifiers that GETACL and MYRIGHTS return and
// computes the rights a requester holds on a mailbox.
//
// The package is pure: it does no I/O, keeps no state, and every function
// and method is safe for concurrent use. It deliberately does not import
// go-imap; the IMAP access layer converts go-imap's GetACLData.Rights
// (map[imap.RightsIdentifier]imap.RightSet) into a map[string]string and
// calls Parse.
//
// RFC 4314 §2 leaves it to the implementation how the entries that apply
// to one user are combined. This package offers the two combinations the
// supported servers use (see Combine): the union of grants minus the union
// of negative grants (Cyrus, and the plain RFC reading) and Dovecot's
// precedence layers, in which a more specific identifier replaces the
// rights of a less specific one.
package acl

import (
	"fmt"
	"strings"
)

// Rights is a set of RFC 4314 rights. Each lower-case letter a–z and each
// digit 0–9 is one bit: letter c is bit c-'a', digit n is bit 26+n. RFC
// 4314 §2 reserves the letters for standard rights and the digits for
// implementation- or site-defined ones (Cyrus's CalDAV read-free-busy
// right is "9"). Letters without a constant below (Cyrus's "n", future
// standard rights) are kept, compared and printed like the others.
//
// The obsolete virtual rights "c" and "d" (RFC 4314 §2.1.1) are never
// members of a Rights value produced by this package: ParseRights
// translates them into their member rights and String never prints them.
//
// The zero value is the empty set. Set operations are the Go bit
// operators: a|b is the union, a&b the intersection, a&^b the difference.
type Rights uint64

func letter(c byte) Rights { return 1 << (c - 'a') }
func digit(n byte) Rights  { return 1 << (26 + n) }

// The standard rights of RFC 4314 §2.1.
const (
	Lookup         Rights = 1 << ('l' - 'a') // l: the mailbox is visible to LIST/LSUB, SUBSCRIBE.
	Read           Rights = 1 << ('r' - 'a') // r: SELECT, STATUS, FETCH.
	Seen           Rights = 1 << ('s' - 'a') // s: keep \Seen across sessions.
	Write          Rights = 1 << ('w' - 'a') // w: store flags other than \Seen and \Deleted.
	Insert         Rights = 1 << ('i' - 'a') // i: APPEND, COPY into the mailbox.
	Post           Rights = 1 << ('p' - 'a') // p: send mail to the submission address.
	CreateMailbox  Rights = 1 << ('k' - 'a') // k: create child mailboxes.
	DeleteMailbox  Rights = 1 << ('x' - 'a') // x: DELETE the mailbox, RENAME it away.
	DeleteMessages Rights = 1 << ('t' - 'a') // t: store \Deleted.
	Expunge        Rights = 1 << ('e' - 'a') // e: EXPUNGE.
	Administer     Rights = 1 << ('a' - 'a') // a: SETACL, DELETEACL, GETACL, LISTRIGHTS.

	// Standard is every right of RFC 4314 §2.1: "lrswipkxtea". It is
	// what Dovecot grants the owner of a private mailbox by default.
	Standard = Lookup | Read | Seen | Write | Insert | Post |
		CreateMailbox | DeleteMailbox | DeleteMessages | Expunge | Administer

	// ReadFreeBusy is "9", Cyrus's CALDAV:read-free-busy right
	// (DACL_READFB, defined as ACL_USER9 in Cyrus's imap/http_dav.h).
	// Cyrus's CalDAV server also treats it as implied by l and r on
	// calendar mailboxes; deciding that is the caller's policy, not
	// this package's. Dovecot has no such right.
	ReadFreeBusy Rights = 1 << (26 + 9)
)

// The obsolete virtual rights and their members (RFC 4314 §2.1.1). The
// RFC lets a server define "create" as k or as k+x, and "delete" as e+t
// or as e+t+x. This package uses create = k x and delete = t e, the
// reading of the RFC's own examples ("the 'd' right ... expands to 'et'"),
// of Dovecot (imap_acl_letters_parse: c → k x, d → e t) and of Cyrus with
// its default deleteright "c" (cyrus_acl_strtomask).
const (
	obsoleteCreate = Rights(1 << ('c' - 'a'))
	obsoleteDelete = Rights(1 << ('d' - 'a'))
	obsolete       = obsoleteCreate | obsoleteDelete

	createMembers = CreateMailbox | DeleteMailbox
	deleteMembers = DeleteMessages | Expunge

	// valid is every bit a Rights value may hold: 26 letters, 10 digits,
	// minus the obsolete letters.
	valid = Rights(1<<36-1) &^ obsolete
)

// standardOrder is the order in which String prints the standard rights.
const standardOrder = "lrswipkxtea"

// ParseRights parses a rights string as it appears in an ACL or MYRIGHTS
// response or in a SETACL command, without a leading "+" or "-"
// modifier: a possibly empty sequence of lower-case ASCII letters and
// digits, in any order, possibly repeated. The empty string is the empty
// set.
//
// The obsolete rights "c" and "d" are read per RFC 4314 §2.1.1. A server
// MUST list "c" whenever any member of "create" (k, x) is present and "d"
// whenever any member of "delete" (t, e) is, and a client MUST ignore the
// two letters in MYRIGHTS and ACL responses (note (*) of §2.1.1). So a
// "c" or "d" is ignored when any of its members is in the same string
// ("lrkc" is l r k: Dovecot writes exactly that for a grant of "lrk"),
// and otherwise stands for all of its members ("lrc" from an RFC 2086
// server is l r k x; "lrd" is l r t e), which is what a server does with
// them in SETACL. This is Cyrus's rule (cyrus_acl_strtomask), and it
// agrees with plain expansion on every string a conforming server can
// send.
//
// Any other character (an upper-case letter, which §2 forbids, space,
// punctuation, a modifier, a byte outside ASCII) makes the whole string
// malformed: the error is a *SyntaxError reading
// `acl: malformed rights "…"`, and the Rights returned is 0.
func ParseRights(s string) (Rights, error) {
	var r Rights
	var c, d bool
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == 'c':
			c = true
		case b == 'd':
			d = true
		case 'a' <= b && b <= 'z':
			r |= letter(b)
		case '0' <= b && b <= '9':
			r |= digit(b - '0')
		default:
			return 0, &SyntaxError{What: "rights", Input: s}
		}
	}
	if c && r&createMembers == 0 {
		r |= createMembers
	}
	if d && r&deleteMembers == 0 {
		r |= deleteMembers
	}
	return r, nil
}

// MustParseRights is like ParseRights but panics if s is malformed. It is
// meant for constants in code and tests, not for input.
func MustParseRights(s string) Rights {
	r, err := ParseRights(s)
	if err != nil {
		panic(err)
	}
	return r
}

// Has reports whether r holds every right in want. Has(0) is true.
func (r Rights) Has(want Rights) bool {
	return r&want == want
}

// String returns the canonical rights string: the standard rights present
// in the order "lrswipkxtea", then the other letters present in
// alphabetical order, then the digits present in numerical order. It never
// prints the obsolete "c" and "d" (a Rights value made by hand with those
// bits set prints without them) nor bits above the 36 defined ones. The
// empty set prints as "". For every r returned by ParseRights,
// ParseRights(r.String()) returns r.
func (r Rights) String() string {
	var b strings.Builder
	for i := 0; i < len(standardOrder); i++ {
		if r&letter(standardOrder[i]) != 0 {
			b.WriteByte(standardOrder[i])
		}
	}
	for c := byte('a'); c <= 'z'; c++ {
		if Standard&letter(c) != 0 || obsolete&letter(c) != 0 {
			continue
		}
		if r&letter(c) != 0 {
			b.WriteByte(c)
		}
	}
	for n := byte(0); n <= 9; n++ {
		if r&digit(n) != 0 {
			b.WriteByte('0' + n)
		}
	}
	return b.String()
}

// SyntaxError reports a malformed rights string or identifier. Parse
// wraps it with the identifier of the offending entry; errors.As finds
// it through that wrapping and through errors.Join.
type SyntaxError struct {
	What  string // "rights" or "identifier"
	Input string // the text that did not parse
}

// Error returns "acl: malformed <What> <quoted Input>".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("acl: malformed %s %q", e.What, e.Input)
}
