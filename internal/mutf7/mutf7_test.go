package mutf7

import (
	"testing"
	"unicode/utf8"
)

// TestKnown checks the encodings RFC 3501 and servers give.
func TestKnown(t *testing.T) {
	for dec, enc := range map[string]string{
		"Calendar": "Calendar", "R&D": "R&-D", "Sp ét": "Sp &AOk-t",
		"~peter/mail/台北/日本語": "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "😀": "&2D3eAA-",
	} {
		if got := Encode(dec); got != enc {
			t.Errorf("Encode(%q) = %q, want %q", dec, got, enc)
		}
		if got, err := Decode(enc); got != dec || err != nil {
			t.Errorf("Decode(%q) = %q, %v; want %q", enc, got, err, dec)
		}
	}
	for _, bad := range []string{"&", "&AOk", "&AGE-", "caf\xc3\xa9", "&2D0-", "&Jjo!-"} {
		if got, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"Calendar", "R&D", "Sp ét", "~peter/mail/台北/日本語", "😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		enc := Encode(s)
		if got, err := Decode(enc); err != nil || got != s {
			t.Errorf("Decode(Encode(%q) = %q) = %q, %v", s, enc, got, err)
		}
		if dec, err := Decode(s); err == nil && Encode(dec) != s {
			t.Errorf("Encode(Decode(%q) = %q) = %q", s, dec, Encode(dec))
		}
	})
}
