package acl

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseIdentifier(t *testing.T) {
	tests := []struct {
		in   string
		want Identifier
		str  string
	}{
		{"anyone", Identifier{Kind: Anyone}, "anyone"},
		{"authenticated", Identifier{Kind: Authenticated}, "authenticated"},
		{"anonymous", Identifier{Kind: Anonymous}, "anonymous"},
		{"owner", Identifier{Kind: Owner}, "owner"},
		{"alice", Identifier{Kind: User, Name: "alice"}, "alice"},
		{"Alice", Identifier{Kind: User, Name: "Alice"}, "Alice"},
		{"Anyone", Identifier{Kind: User, Name: "Anyone"}, "Anyone"},
		{"alice@example.org", Identifier{Kind: User, Name: "alice@example.org"}, "alice@example.org"},
		{"-alice", Identifier{Kind: User, Name: "alice", Negative: true}, "-alice"},
		{"$team", Identifier{Kind: Group, Name: "team"}, "$team"},
		{"group:team", Identifier{Kind: Group, Name: "team"}, "$team"},
		{"-$team", Identifier{Kind: Group, Name: "team", Negative: true}, "-$team"},
		{"-group:team", Identifier{Kind: Group, Name: "team", Negative: true}, "-$team"},
		{"!$team", Identifier{Kind: GroupOverride, Name: "team"}, "!$team"},
		{"-!$team", Identifier{Kind: GroupOverride, Name: "team", Negative: true}, "-!$team"},
		{"-anyone", Identifier{Kind: Anyone, Negative: true}, "-anyone"},
		{"-authenticated", Identifier{Kind: Authenticated, Negative: true}, "-authenticated"},
		{"-anonymous", Identifier{Kind: Anonymous, Negative: true}, "-anonymous"},
		{"#anyone", Identifier{Kind: Anyone, Global: true}, "#anyone"},
		{"-#$team", Identifier{Kind: Group, Name: "team", Negative: true, Global: true}, "-#$team"},
		{"#alice", Identifier{Kind: User, Name: "alice", Global: true}, "#alice"},
		{"!x", Identifier{Kind: User, Name: "!x"}, "!x"},
		{"group", Identifier{Kind: User, Name: "group"}, "group"},
		{"$group:x", Identifier{Kind: Group, Name: "group:x"}, "$group:x"},
	}
	for _, tt := range tests {
		got, err := ParseIdentifier(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseIdentifier(%q) = %+v, %v, want %+v, nil", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseIdentifier(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestParseIdentifierMalformed(t *testing.T) {
	for _, in := range []string{
		"", "-", "$", "-$", "group:", "-group:", "!$", "-!$", "#", "-#", "--alice", "-#-alice", "$-team", "##alice", "-##x",
	} {
		got, err := ParseIdentifier(in)
		var se *SyntaxError
		if err == nil || got != (Identifier{}) || !errors.As(err, &se) || se.What != "identifier" {
			t.Errorf("ParseIdentifier(%q) = %+v, %v, want zero, *SyntaxError", in, got, err)
			continue
		}
		if want := fmt.Sprintf("acl: malformed identifier %q", in); err.Error() != want {
			t.Errorf("ParseIdentifier(%q) error = %q, want %q", in, err, want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		User: "user", Anyone: "anyone", Authenticated: "authenticated", Anonymous: "anonymous",
		Group: "group", GroupOverride: "group-override", Owner: "owner", Kind(42): "Kind(42)", Kind(-1): "Kind(-1)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
