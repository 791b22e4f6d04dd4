package acl

import (
	"fmt"
	"testing"
)

func mustACL(t *testing.T, pairs map[string]string) ACL {
	t.Helper()
	a, err := Parse(pairs)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPolicyAccess(t *testing.T) {
	groups := Groups{"team": {"dave"}}
	anon := Requester{Anonymous: true}
	alice, bob, carol, dave := groups.Requester("alice"), groups.Requester("bob"), groups.Requester("carol"), groups.Requester("dave")
	folder := Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{
		"alice": "lrswipkxtea", "bob": "lr", "carol": "l", "authenticated": "r", "-$team": "r", "fbproxy": "lr",
	})}
	unknown := Folder{Owner: "alice"}
	for _, tc := range []struct {
		name   string
		policy Policy
		f      Folder
		r      Requester
		want   Access
	}{
		{"owner", Policy{}, folder, alice, OwnerAccess},
		{"owner, other spelling: not the owner", Policy{Groups: groups}, folder, Requester{User: "Alice"}, ReadAccess},
		{"owner, other spelling, confirmed: still not the owner", Policy{Groups: groups}, folder, Requester{User: "Alice", Confirmed: true}, ReadAccess},
		{"reader", Policy{Groups: groups}, folder, bob, ReadAccess},
		{"authenticated reads", Policy{Groups: groups}, folder, carol, ReadAccess},
		{"negative group loses read", Policy{}, folder, dave, FreeBusyAccess},
		{"anonymous, public", Policy{}, folder, anon, FreeBusyAccess},
		{"anonymous, authenticated only", Policy{FreeBusy: AuthenticatedOnly}, folder, anon, NoAccess},
		{"negative group, authenticated only", Policy{FreeBusy: AuthenticatedOnly}, folder, dave, FreeBusyAccess},
		{"negative group, by ACL, no right left", Policy{FreeBusy: ByACL}, folder, dave, NoAccess},
		{"lookup only, by ACL", Policy{FreeBusy: ByACL}, Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{"carol": "l"})}, carol, FreeBusyAccess},
		{"no right, by ACL", Policy{FreeBusy: ByACL}, Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{"carol": "l"})}, bob, NoAccess},
		{"ACL unknown: only the owner reads", Policy{}, unknown, bob, FreeBusyAccess},
		{"ACL unknown, owner", Policy{}, unknown, alice, OwnerAccess},
		{"ACL unknown, configured reader", Policy{Readers: map[string]ACL{"alice": mustACL(t, map[string]string{"bob": "lr"})}}, unknown, bob, ReadAccess},
		{"ACL unknown, configured group", Policy{Readers: map[string]ACL{"alice": mustACL(t, map[string]string{"$team": "lr"})}}, unknown, dave, ReadAccess},
		{"ACL unknown, reader of another owner", Policy{Readers: map[string]ACL{"bob": mustACL(t, map[string]string{"carol": "lr"})}}, unknown, carol, FreeBusyAccess},
		{"ACL unknown, by ACL", Policy{FreeBusy: ByACL}, unknown, bob, NoAccess},
		{"known ACL wins over configuration", Policy{Readers: map[string]ACL{"alice": mustACL(t, map[string]string{"dave": "lr"})}}, folder, dave, FreeBusyAccess},
		{"anonymous never owner", Policy{}, folder, Requester{Anonymous: true, User: "alice"}, FreeBusyAccess},
		{"Dovecot precedence", Policy{Semantics: func(string) *Options { return Dovecot("") }},
			Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{"anyone": "lr", "$team": "w"})}, dave, FreeBusyAccess},
		{"Cyrus: authenticated is a user name", Policy{Semantics: func(string) *Options { return Cyrus() }},
			Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{"authenticated": "lr"})}, bob, FreeBusyAccess},
		{"union", Policy{},
			Folder{Owner: "alice", ACLKnown: true, ACL: mustACL(t, map[string]string{"anyone": "lr", "$team": "w"})}, dave, ReadAccess},
	} {
		if got := tc.policy.Access(tc.r, tc.f); got != tc.want {
			t.Errorf("%s: Access = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPolicyFailClosed covers what fbpub cannot know and evaluates
// fail-closed: the server's spelling of an unconfirmed login, and the
// members of groups not in Policy.Groups.
func TestPolicyFailClosed(t *testing.T) {
	dovecot := func(string) *Options { return Dovecot("") }
	cyrus := func(string) *Options { return Cyrus() }
	groups := Groups{"team": {"dave", "Erin"}}
	unconfirmed := func(user string) Requester { return groups.Requester(user) }
	confirmed := func(user string) Requester { r := groups.Requester(user); r.Confirmed = true; return r }
	for _, tc := range []struct {
		name      string
		semantics func(string) *Options
		acl       map[string]string
		r         Requester
		want      string
	}{
		// Spelling. "BOB" typed may be bob to the server: never more
		// than bob gets.
		{"BOB escapes -bob", nil, map[string]string{"anyone": "lr", "-bob": "r"}, unconfirmed("BOB"), "l"},
		{"BOB escapes -bob, Dovecot", dovecot, map[string]string{"authenticated": "lr", "-bob": "r"}, unconfirmed("BOB"), "l"},
		{"BOB escapes bob's user layer, Dovecot", dovecot, map[string]string{"anyone": "lr", "bob": "l"}, unconfirmed("BOB"), "l"},
		{"BOB gets no more than BOB", nil, map[string]string{"bob": "lr"}, unconfirmed("BOB"), ""},
		{"BOB gets no more than an unnamed bob", nil, map[string]string{"BOB": "lr", "anyone": "l"}, unconfirmed("BOB"), "l"},
		{"confirmed BOB is another user", nil, map[string]string{"anyone": "lr", "-bob": "r"}, confirmed("BOB"), "lr"},
		{"confirmed bob", nil, map[string]string{"anyone": "lr", "-bob": "r"}, confirmed("bob"), "l"},
		{"exact spelling, unconfirmed, no other", nil, map[string]string{"anyone": "lr", "-bob": "r", "carol": "w"}, unconfirmed("bob"), "l"},
		{"Dave escapes dave's group", nil, map[string]string{"anyone": "lr", "-$team": "r"}, unconfirmed("Dave"), "l"},
		{"Dave escapes dave's group, Dovecot", dovecot, map[string]string{"anyone": "lr", "$team": "l"}, unconfirmed("Dave"), "l"},
		{"confirmed Dave is not in team", nil, map[string]string{"anyone": "lr", "-$team": "r"}, confirmed("Dave"), "lr"},
		{"ERIN may be the member Erin", nil, map[string]string{"anyone": "lr", "-group:team": "r"}, unconfirmed("ERIN"), "l"},
		{"AUTHENTICATED may be Cyrus' user authenticated", cyrus, map[string]string{"anyone": "l", "-authenticated": "l"}, unconfirmed("AUTHENTICATED"), ""},
		{"owner's spelling: owner's entry", nil, map[string]string{"anyone": "lr", "-alice": "r"}, unconfirmed("ALICE"), "l"},

		// Unknown groups ("staff" is not in Groups).
		{"negative unknown group applies", nil, map[string]string{"anyone": "lr", "-$staff": "r"}, confirmed("bob"), "l"},
		{"negative unknown group applies, Cyrus spelling", cyrus, map[string]string{"anyone": "lr", "-group:staff": "r"}, confirmed("bob"), "l"},
		{"negative unknown group applies, Dovecot", dovecot, map[string]string{"authenticated": "lr", "-$staff": "r"}, confirmed("bob"), "l"},
		{"negative known group, not a member", nil, map[string]string{"anyone": "lr", "-$team": "r"}, confirmed("bob"), "lr"},
		{"negative known group, member", nil, map[string]string{"anyone": "lr", "-$team": "r"}, confirmed("dave"), "l"},
		{"positive unknown group grants nothing", nil, map[string]string{"$staff": "lr"}, confirmed("bob"), ""},
		{"positive and negative rights of one unknown group", nil, map[string]string{"anyone": "lr", "$staff": "w", "-$staff": "r"}, confirmed("bob"), "l"},
		{"positive unknown group replaces lower layers, Dovecot", dovecot, map[string]string{"anyone": "lr", "$staff": "l"}, confirmed("bob"), "l"},
		{"positive unknown group adds, Dovecot", dovecot, map[string]string{"anyone": "lr", "$staff": "lrw"}, confirmed("bob"), "lr"},
		{"unknown group override replaces the user's entry, Dovecot", dovecot, map[string]string{"bob": "lr", "!$staff": "l"}, confirmed("bob"), "l"},
		{"unknown group override grants nothing, Dovecot", dovecot, map[string]string{"!$staff": "lr"}, confirmed("bob"), ""},
		{"user layer replaces an unknown group's grant, not its negative rights, Dovecot", dovecot, map[string]string{"bob": "lr", "$staff": "l", "-$staff": "r"}, confirmed("bob"), "l"},
		{"user layer replaces an unknown group's grant, Dovecot", dovecot, map[string]string{"bob": "lr", "$staff": "l"}, confirmed("bob"), "lr"},
		{"two unknown groups, Dovecot", dovecot, map[string]string{"anyone": "lr", "$staff": "lrw", "$ops": "l"}, confirmed("bob"), "l"},
		{"anonymous is in no group", nil, map[string]string{"anyone": "lr", "-$staff": "r"}, Requester{Anonymous: true}, "lr"},
		{"anonymous is in no group, Dovecot", dovecot, map[string]string{"anyone": "lr", "$staff": "l"}, Requester{Anonymous: true}, "lr"},
	} {
		a := mustACL(t, tc.acl)
		p := Policy{Groups: groups, Semantics: tc.semantics}
		got := p.effective(a, tc.r, "alice", nil)
		if tc.semantics != nil {
			got = p.effective(a, tc.r, "alice", tc.semantics("alice"))
		}
		want, err := ParseRights(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: rights of %+v under %v = %q, want %q", tc.name, tc.r, tc.acl, got, want)
		}
		// Access agrees with the rights.
		wantAccess := FreeBusyAccess
		if want.Has(Read) {
			wantAccess = ReadAccess
		}
		if got := p.Access(tc.r, Folder{Owner: "alice", ACL: a, ACLKnown: true}); got != wantAccess {
			t.Errorf("%s: Access(%+v) = %v, want %v", tc.name, tc.r, got, wantAccess)
		}
	}
}

// TestPolicyUnresolved checks that every unknown group with an entry is
// reported, and no known one.
func TestPolicyUnresolved(t *testing.T) {
	p := Policy{Groups: Groups{"team": {"dave"}}}
	got := map[string]int{}
	p.Unresolved = func(g string) { got[g]++ }
	a := mustACL(t, map[string]string{"-$staff": "r", "$team": "lr", "group:ops": "l", "$ops": "r", "anyone": "l"})
	p.Access(Requester{User: "bob", Confirmed: true}, Folder{Owner: "alice", ACL: a, ACLKnown: true})
	if len(got) != 2 || got["staff"] != 1 || got["ops"] != 1 {
		t.Errorf("Unresolved calls = %v, want staff and ops once each", got)
	}
	clear(got)
	p.Access(Requester{Anonymous: true}, Folder{Owner: "alice", ACL: a, ACLKnown: true})
	if len(got) != 0 {
		t.Errorf("Unresolved calls for the anonymous requester = %v, want none", got)
	}
}

// TestPolicyTooManyUnknownGroups: beyond maxUnknownGroups, Dovecot's
// precedence gives no rights rather than a guess.
func TestPolicyTooManyUnknownGroups(t *testing.T) {
	pairs := map[string]string{"anyone": "lr"}
	for i := range maxUnknownGroups + 1 {
		pairs[fmt.Sprintf("$g%d", i)] = "lr"
	}
	p := Policy{Semantics: func(string) *Options { return Dovecot("") }}
	if got := p.effective(mustACL(t, pairs), Requester{User: "bob", Confirmed: true}, "alice", Dovecot("")); got != 0 {
		t.Errorf("rights with %d unknown groups = %q, want none", maxUnknownGroups+1, got)
	}
	delete(pairs, "$g0")
	if got := p.effective(mustACL(t, pairs), Requester{User: "bob", Confirmed: true}, "alice", Dovecot("")); got != Lookup|Read {
		t.Errorf("rights with %d unknown groups = %q, want lr", maxUnknownGroups, got)
	}
}

func TestParseVisibility(t *testing.T) {
	for in, want := range map[string]Visibility{"": Public, "public": Public, " ACL ": ByACL, "authenticated": AuthenticatedOnly} {
		if got, err := ParseVisibility(in); err != nil || got != want {
			t.Errorf("ParseVisibility(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseVisibility("friends"); err == nil {
		t.Error("ParseVisibility(friends) accepted")
	}
}
