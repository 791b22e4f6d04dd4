package acl

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseRights(t *testing.T) {
	tests := []struct {
		in   string
		want Rights
		str  string // canonical String of want
	}{
		{"", 0, ""},
		{"l", Lookup, "l"},
		{"r", Read, "r"},
		{"s", Seen, "s"},
		{"w", Write, "w"},
		{"i", Insert, "i"},
		{"p", Post, "p"},
		{"k", CreateMailbox, "k"},
		{"x", DeleteMailbox, "x"},
		{"t", DeleteMessages, "t"},
		{"e", Expunge, "e"},
		{"a", Administer, "a"},
		{"lrswipkxtea", Standard, "lrswipkxtea"},
		{"aetxkpiwsrl", Standard, "lrswipkxtea"},
		{"llrr", Lookup | Read, "lr"},
		// Obsolete rights alone stand for all their members (§2.1.1).
		{"c", CreateMailbox | DeleteMailbox, "kx"},
		{"d", DeleteMessages | Expunge, "te"},
		{"lrc", Lookup | Read | CreateMailbox | DeleteMailbox, "lrkx"},
		{"lrswicda", Lookup | Read | Seen | Write | Insert | CreateMailbox | DeleteMailbox | DeleteMessages | Expunge | Administer, "lrswikxtea"},
		// With a member present they are ignored, as a client must
		// ignore them in responses (§2.1.1 (*)).
		{"kc", CreateMailbox, "k"},
		{"ck", CreateMailbox, "k"},
		{"xc", DeleteMailbox, "x"},
		{"td", DeleteMessages, "t"},
		{"de", Expunge, "e"},
		{"lrwstipekxacd", Standard, "lrswipkxtea"},                 // Dovecot's full MYRIGHTS
		{"lrswipkxtecdan", Standard | letter('n'), "lrswipkxtean"}, // Cyrus
		// The RFC's own GETACL example.
		{"rwipslxcetda", Read | Write | Insert | Post | Seen | Lookup | DeleteMailbox | Expunge | DeleteMessages | Administer, "lrswipxtea"},
		// Digits and non-standard letters.
		{"9", ReadFreeBusy, "9"},
		{"0123456789", digit(0) | digit(1) | digit(2) | digit(3) | digit(4) | digit(5) | digit(6) | digit(7) | digit(8) | digit(9), "0123456789"},
		{"9l0", Lookup | digit(0) | ReadFreeBusy, "l09"},
		{"zyn", letter('z') | letter('y') | letter('n'), "nyz"},
	}
	for _, tt := range tests {
		got, err := ParseRights(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseRights(%q) = %v (%#x), %v, want %v (%#x), nil", tt.in, got, uint64(got), err, tt.want, uint64(tt.want))
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseRights(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestParseRightsMalformed(t *testing.T) {
	for _, in := range []string{
		"L", "lrQ", "+lr", "-lr", "lr ", " ", "l,r", "\"\"", "lr\x00", "lré", "\xff", "A",
	} {
		got, err := ParseRights(in)
		want := fmt.Sprintf("acl: malformed rights %q", in)
		var se *SyntaxError
		if err == nil || got != 0 || !errors.As(err, &se) || se.What != "rights" || se.Input != in {
			t.Errorf("ParseRights(%q) = %v, %v, want 0, *SyntaxError", in, got, err)
			continue
		}
		if msg := err.Error(); msg != want {
			t.Errorf("ParseRights(%q) error = %q, want %q", in, msg, want)
		}
	}
}

func TestRightsHas(t *testing.T) {
	lr := Lookup | Read
	tests := []struct {
		r, want Rights
		has     bool
	}{
		{lr, Lookup, true},
		{lr, lr, true},
		{lr, 0, true},
		{0, 0, true},
		{lr, Lookup | Write, false},
		{0, Lookup, false},
		{Standard, Administer, true},
		{Standard, ReadFreeBusy, false},
	}
	for _, tt := range tests {
		if got := tt.r.Has(tt.want); got != tt.has {
			t.Errorf("Rights(%q).Has(%q) = %v, want %v", tt.r, tt.want, got, tt.has)
		}
	}
}

func TestRightsStringOmitsObsolete(t *testing.T) {
	r := Lookup | obsoleteCreate | obsoleteDelete | 1<<40
	if got := r.String(); got != "l" {
		t.Errorf("Rights(%#x).String() = %q, want %q", uint64(r), got, "l")
	}
}

func TestMustParseRightsPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("MustParseRights(%q) did not panic", "Q")
		}
	}()
	MustParseRights("Q")
}
