package acl

import "testing"

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
		{"owner, any case", Policy{}, folder, Requester{User: "Alice"}, OwnerAccess},
		{"reader", Policy{}, folder, bob, ReadAccess},
		{"authenticated reads", Policy{}, folder, carol, ReadAccess},
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
