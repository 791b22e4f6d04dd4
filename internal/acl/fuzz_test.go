package acl

import (
	"strings"
	"testing"
)

// The seed corpora are in testdata/fuzz/FuzzParseRights and
// testdata/fuzz/FuzzParseIdentifier; go test runs them as ordinary tests.

func FuzzParseRights(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRights(s)
		if err != nil {
			if r != 0 {
				t.Errorf("ParseRights(%q) = %q, %v, want 0 with the error", s, r, err)
			}
			return
		}
		if r&^valid != 0 {
			t.Errorf("ParseRights(%q) = %#x, has bits outside a–z 0–9 or obsolete c/d", s, uint64(r))
		}
		str := r.String()
		if strings.ContainsAny(str, "cd") {
			t.Errorf("ParseRights(%q).String() = %q, prints an obsolete right", s, str)
		}
		r2, err := ParseRights(str)
		if err != nil || r2 != r {
			t.Errorf("ParseRights(ParseRights(%q).String() = %q) = %q, %v, want %q, nil", s, str, r2, err, r)
		}
		if str2 := r2.String(); str2 != str {
			t.Errorf("String is not canonical for %q: %q then %q", s, str, str2)
		}
		// Every letter and digit of the input that is not obsolete is kept.
		for i := 0; i < len(s); i++ {
			if c := s[i]; c != 'c' && c != 'd' && !strings.ContainsRune(str, rune(c)) {
				t.Errorf("ParseRights(%q).String() = %q, lost %q", s, str, c)
			}
		}
	})
}

func FuzzParseIdentifier(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentifier(s)
		if err != nil {
			if id != (Identifier{}) {
				t.Errorf("ParseIdentifier(%q) = %+v, %v, want the zero Identifier with the error", s, id, err)
			}
			return
		}
		switch id.Kind {
		case User, Group, GroupOverride:
			if id.Name == "" {
				t.Errorf("ParseIdentifier(%q) = %+v, empty name", s, id)
			}
		default:
			if id.Name != "" {
				t.Errorf("ParseIdentifier(%q) = %+v, a name on a special identity", s, id)
			}
		}
		str := id.String()
		id2, err := ParseIdentifier(str)
		if err != nil || id2 != id {
			t.Errorf("ParseIdentifier(ParseIdentifier(%q).String() = %q) = %+v, %v, want %+v, nil", s, str, id2, err, id)
		}
		// Evaluating a one-entry ACL with it must not panic.
		a := ACL{{Identifier: id, Rights: Lookup}}
		for _, r := range []Requester{{Anonymous: true}, {User: id.Name, Groups: []string{id.Name}}} {
			a.Effective(r)
			a.EffectiveWith(r, Dovecot(id.Name))
		}
	})
}
