package acl

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, pairs map[string]string) ACL {
	t.Helper()
	a, err := Parse(pairs)
	if err != nil {
		t.Fatalf("Parse(%v) error: %v", pairs, err)
	}
	return a
}

func TestParse(t *testing.T) {
	pairs := map[string]string{
		"anyone":     "l",
		"-alice":     "w",
		"group:team": "lr",
		"$ops":       "lrc",
		"alice":      "lrwstipekxacd",
	}
	got := mustParse(t, pairs)
	want := ACL{
		{Identifier{Kind: Group, Name: "ops"}, Lookup | Read | CreateMailbox | DeleteMailbox},
		{Identifier{Kind: User, Name: "alice", Negative: true}, Write},
		{Identifier{Kind: User, Name: "alice"}, Standard},
		{Identifier{Kind: Anyone}, Lookup},
		{Identifier{Kind: Group, Name: "team"}, Lookup | Read},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Parse(%v) = %v, want %v", pairs, got, want)
	}
	if a, err := Parse(nil); err != nil || len(a) != 0 {
		t.Errorf("Parse(nil) = %v, %v, want empty, nil", a, err)
	}
}

func TestParseReportsEveryError(t *testing.T) {
	pairs := map[string]string{
		"anyone": "lr",
		"bob":    "lrQ",
		"":       "l",
		"--x":    "Z",
	}
	a, err := Parse(pairs)
	if err == nil {
		t.Fatalf("Parse(%v) error = nil, want errors", pairs)
	}
	wantLines := []string{
		`acl: malformed identifier "" (entry "")`,
		`acl: malformed identifier "--x" (entry "--x")`,
		`acl: malformed rights "Z" (entry "--x")`,
		`acl: malformed rights "lrQ" (entry "bob")`,
	}
	if got := err.Error(); got != strings.Join(wantLines, "\n") {
		t.Errorf("Parse(%v) error =\n%s\nwant\n%s", pairs, got, strings.Join(wantLines, "\n"))
	}
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("Parse(%v) error %v is not a *SyntaxError", pairs, err)
	}
	if want := (ACL{{Identifier{Kind: Anyone}, Lookup | Read}}); !slices.Equal(a, want) {
		t.Errorf("Parse(%v) entries = %v, want %v", pairs, a, want)
	}
}

func TestGroupsOf(t *testing.T) {
	g := Groups{
		"team":  {"alice", "bob"},
		"ops":   {"bob"},
		"admin": {"Alice"},
		"all":   {"carol", "alice", "bob"},
	}
	tests := []struct {
		user string
		want []string
	}{
		{"alice", []string{"all", "team"}},
		{"bob", []string{"all", "ops", "team"}},
		{"Alice", []string{"admin"}},
		{"dave", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := g.Of(tt.user); !slices.Equal(got, tt.want) {
			t.Errorf("Groups.Of(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}
	if got := Groups(nil).Of("alice"); got != nil {
		t.Errorf("Groups(nil).Of(%q) = %q, want nil", "alice", got)
	}
	if got, want := g.Requester("bob"), (Requester{User: "bob", Groups: []string{"all", "ops", "team"}}); got.User != want.User || got.Anonymous || !slices.Equal(got.Groups, want.Groups) {
		t.Errorf("Groups.Requester(%q) = %+v, want %+v", "bob", got, want)
	}
}

var (
	anon  = Requester{Anonymous: true}
	alice = Requester{User: "alice", Groups: []string{"team"}}
	bob   = Requester{User: "bob", Groups: []string{"team", "ops"}}
	carol = Requester{User: "carol"}
	// anonUser is an ordinary user who happens to be called "anonymous".
	anonUser = Requester{User: "anonymous"}
	// anonWithGroups is anonymous; its User and Groups must be ignored.
	anonWithGroups = Requester{User: "alice", Anonymous: true, Groups: []string{"team"}}
)

type effCase struct {
	acl  map[string]string
	r    Requester
	want string
}

func (c effCase) run(t *testing.T, o *Options) {
	t.Helper()
	a := mustParse(t, c.acl)
	got := a.EffectiveWith(c.r, o)
	if want := MustParseRights(c.want); got != want {
		t.Errorf("ACL%v.EffectiveWith(%+v, %+v) = %q, want %q", sorted(c.acl), c.r, o, got, want)
	}
	if o == nil {
		if got2 := a.Effective(c.r); got2 != got {
			t.Errorf("ACL%v.Effective(%+v) = %q, EffectiveWith(nil) = %q", sorted(c.acl), c.r, got2, got)
		}
	}
}

func sorted(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " %s=%q", k, m[k])
	}
	return "{" + strings.TrimPrefix(b.String(), " ") + "}"
}

func TestEffectiveUnion(t *testing.T) {
	tests := []effCase{
		// Nothing matches.
		{map[string]string{}, alice, ""},
		{map[string]string{"bob": "lr"}, alice, ""},
		// anyone vs authenticated vs anonymous.
		{map[string]string{"anyone": "lr"}, anon, "lr"},
		{map[string]string{"anyone": "lr"}, alice, "lr"},
		{map[string]string{"authenticated": "lr"}, anon, ""},
		{map[string]string{"authenticated": "lr"}, alice, "lr"},
		{map[string]string{"anonymous": "lr"}, anon, "lr"},
		{map[string]string{"anonymous": "lr"}, alice, ""},
		{map[string]string{"anonymous": "lr"}, anonUser, ""},
		{map[string]string{"anyone": "l", "authenticated": "r", "anonymous": "9"}, anon, "l9"},
		{map[string]string{"anyone": "l", "authenticated": "r", "anonymous": "9"}, alice, "lr"},
		// Users match by exact, case-sensitive name; anonymous never.
		{map[string]string{"alice": "lr"}, alice, "lr"},
		{map[string]string{"Alice": "lr"}, alice, ""},
		{map[string]string{"alice": "lr"}, anonWithGroups, ""},
		{map[string]string{"anonymous": "lr"}, anonWithGroups, "lr"},
		// Groups, in both spellings, and the union of several grants.
		{map[string]string{"$team": "lr"}, alice, "lr"},
		{map[string]string{"group:team": "lr"}, alice, "lr"},
		{map[string]string{"$team": "lr"}, carol, ""},
		{map[string]string{"$team": "lr"}, anonWithGroups, ""},
		{map[string]string{"$team": "l", "group:ops": "r", "$other": "w"}, bob, "lr"},
		{map[string]string{"$team": "l", "group:team": "9"}, bob, "l9"},
		{map[string]string{"anyone": "l", "$team": "r", "bob": "w"}, bob, "lrw"},
		{map[string]string{"!$ops": "lr"}, bob, "lr"},
		// Negative entries subtract, whatever granted the right.
		{map[string]string{"anyone": "lr", "-alice": "r"}, alice, "l"},
		{map[string]string{"alice": "lrw", "-alice": "w"}, alice, "lr"},
		{map[string]string{"alice": "lrw", "-alice": "w"}, bob, ""},
		{map[string]string{"alice": "lr", "-$team": "r"}, alice, "l"},
		{map[string]string{"alice": "lr", "-group:team": "r"}, alice, "l"},
		{map[string]string{"alice": "lr", "-group:team": "r"}, carol, ""},
		{map[string]string{"$team": "lrw", "-$ops": "w"}, bob, "lr"},
		{map[string]string{"$team": "lrw", "-$ops": "w"}, alice, "lrw"},
		{map[string]string{"alice": "lrswi", "-anyone": "w"}, alice, "lrsi"},
		{map[string]string{"anyone": "lr", "-anyone": "r"}, anon, "l"},
		{map[string]string{"anyone": "lr", "-authenticated": "r"}, anon, "lr"},
		{map[string]string{"anyone": "lr", "-authenticated": "r"}, alice, "l"},
		{map[string]string{"anyone": "lr", "-anonymous": "r"}, anon, "l"},
		{map[string]string{"anyone": "lr", "-anonymous": "r"}, alice, "lr"},
		{map[string]string{"-alice": "lr"}, alice, ""},
		{map[string]string{"alice": "lr", "-alice": ""}, alice, "lr"},
		// Owner identifiers match nobody without an owner.
		{map[string]string{"owner": "lr"}, alice, ""},
	}
	for _, tt := range tests {
		tt.run(t, nil)
	}
}

func TestEffectiveUnionOwner(t *testing.T) {
	o := &Options{Owner: "alice", OwnerRights: MustParseRights("lkxa")}
	tests := []effCase{
		{map[string]string{}, alice, "lkxa"},
		{map[string]string{}, bob, ""},
		{map[string]string{}, Requester{User: "alice", Anonymous: true}, ""},
		{map[string]string{"owner": "r"}, alice, "lrkxa"},
		{map[string]string{"owner": "r"}, bob, ""},
		// Owner rights survive negative entries.
		{map[string]string{"anyone": "lr", "-alice": "lra"}, alice, "lkxa"},
	}
	for _, tt := range tests {
		tt.run(t, o)
	}
}

func TestEffectiveDovecot(t *testing.T) {
	o := Dovecot("")
	tests := []effCase{
		{map[string]string{}, alice, ""},
		{map[string]string{"anyone": "lr"}, anon, "lr"},
		{map[string]string{"anyone": "lr"}, alice, "lr"},
		{map[string]string{"authenticated": "lr"}, anon, ""},
		{map[string]string{"authenticated": "lr"}, alice, "lr"},
		// A more specific layer replaces the positive rights below it.
		{map[string]string{"anyone": "lr", "authenticated": "l"}, alice, "l"},
		{map[string]string{"anyone": "lr", "authenticated": "l"}, anon, "lr"},
		{map[string]string{"anyone": "lr", "$team": "w"}, alice, "w"},
		{map[string]string{"anyone": "lr", "$team": "w"}, carol, "lr"},
		{map[string]string{"$team": "lrw", "alice": "lr"}, alice, "lr"},
		{map[string]string{"$team": "lrw", "alice": "lr"}, bob, "lrw"},
		{map[string]string{"alice": "lr", "!$team": "lrwi"}, alice, "lrwi"},
		{map[string]string{"alice": "lrwi", "!$team": "l"}, alice, "l"},
		// Groups of one layer add up, in both spellings.
		{map[string]string{"$team": "l", "$ops": "r", "anyone": "w"}, bob, "lr"},
		{map[string]string{"$team": "l", "group:ops": "r"}, bob, "lr"},
		{map[string]string{"!$team": "l", "!$ops": "r"}, bob, "lr"},
		// Negative rights: the most specific layer with negatives wins,
		// and they are taken from the final positive set.
		{map[string]string{"alice": "lr", "-anyone": "r"}, alice, "l"},
		{map[string]string{"anyone": "lr", "-anyone": "r"}, anon, "l"},
		{map[string]string{"anyone": "lr", "-authenticated": "r"}, alice, "l"},
		{map[string]string{"anyone": "lr", "-authenticated": "r"}, anon, "lr"},
		{map[string]string{"$team": "lr", "-alice": "r"}, alice, "l"},
		{map[string]string{"alice": "lrw", "-$team": "w"}, alice, "lr"},
		{map[string]string{"alice": "lrw", "-$team": "w"}, carol, ""},
		{map[string]string{"alice": "lrw", "-$team": "w", "-alice": "l"}, alice, "rw"},
		{map[string]string{"alice": "lrw", "-$team": "w", "-$ops": "r"}, bob, ""},
		{map[string]string{"bob": "lrw", "-$team": "w", "-$ops": "r"}, bob, "l"},
		// A negative-only entry leaves the positive set alone ...
		{map[string]string{"anyone": "lr", "-alice": "w"}, alice, "lr"},
		// ... and a later group of the same layer then adds to the
		// lower layer's set instead of replacing it (Dovecot quirk:
		// "$a" sorts before "$b").
		{map[string]string{"anyone": "l", "-$a": "w", "$b": "r"}, Requester{User: "u", Groups: []string{"a", "b"}}, "lr"},
		{map[string]string{"anyone": "l", "$a": "r", "-$b": "w"}, Requester{User: "u", Groups: []string{"a", "b"}}, "r"},
		// An empty positive entry is present: it replaces with nothing.
		{map[string]string{"anyone": "lr", "alice": ""}, alice, ""},
		// "anonymous" is a user of that name in Dovecot.
		{map[string]string{"anonymous": "lr"}, anon, ""},
		{map[string]string{"anonymous": "lr"}, anonUser, "lr"},
		// "owner" matches nobody outside the owner's private namespace.
		{map[string]string{"owner": "lr"}, alice, ""},
		// Global entries override local ones, and the first clears the
		// local negatives.
		{map[string]string{"alice": "lrw", "#anyone": "l"}, alice, "l"},
		{map[string]string{"anyone": "lrw", "-alice": "w", "#$team": "lrw"}, alice, "lrw"},
		{map[string]string{"anyone": "lrw", "-#alice": "w"}, alice, "lr"},
	}
	for _, tt := range tests {
		tt.run(t, o)
	}
}

func TestEffectiveDovecotOwner(t *testing.T) {
	o := Dovecot("alice")
	tests := []effCase{
		// No entries: the owner has every standard right.
		{map[string]string{}, alice, "lrswipkxtea"},
		{map[string]string{}, bob, ""},
		// anyone, authenticated and group entries do not apply to the
		// owner ...
		{map[string]string{"anyone": "l", "-anyone": "r", "$team": "l", "authenticated": "l"}, alice, "lrswipkxtea"},
		// ... owner and user entries replace the defaults ...
		{map[string]string{"owner": "lr"}, alice, "lr"},
		{map[string]string{"alice": "lrs"}, alice, "lrs"},
		{map[string]string{"-owner": "a"}, alice, "lrswipkxte"},
		{map[string]string{"owner": "lr", "alice": "lrw"}, alice, "lrw"},
		// ... and so do group overrides and global entries.
		{map[string]string{"!$team": "l"}, alice, "l"},
		{map[string]string{"#anyone": "lr"}, alice, "lr"},
		// Everybody else is evaluated as before.
		{map[string]string{"anyone": "l", "$team": "r", "owner": "lr"}, bob, "r"},
	}
	for _, tt := range tests {
		tt.run(t, o)
	}
}
