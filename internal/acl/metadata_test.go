package acl

import "testing"

// TestAnnotationsTrusted: a folder's shared annotations are trusted when
// no one but its owner, the proxy and those who may delete its messages
// may write them, by the server's rule; with its ACL unknown, only where
// the server refuses them to a read-only share.
func TestAnnotationsTrusted(t *testing.T) {
	parse := func(pairs map[string]string) ACL {
		a, err := Parse(pairs)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name         string
		acl          map[string]string // nil: unknown
		dovecot, cyr bool              // trusted under RFCMetadata, CyrusMetadata
	}{
		{"owner and proxy only", map[string]string{"alice": "lrswipkxtea", "fbproxy": "lra"}, true, true},
		{"Dovecot's owner entry", map[string]string{"owner": "lrswipkxtea", "fbproxy": "lr"}, true, true},
		{"a read-only colleague", map[string]string{"alice": "lrswipkxtea", "fbproxy": "lr", "bob": "lr"}, false, true},
		{"a colleague who keeps \\Seen", map[string]string{"alice": "lrswipkxtea", "bob": "ls"}, false, true},
		{"a colleague with l alone", map[string]string{"alice": "lrswipkxtea", "bob": "l"}, true, true},
		{"anyone may read", map[string]string{"alice": "lrswipkxtea", "anyone": "lr"}, false, true},
		{"a group may read", map[string]string{"alice": "lrswipkxtea", "$team": "lr"}, false, true},
		{"flags but no deleting", map[string]string{"alice": "lrswipkxtea", "bob": "lrsw"}, false, false},
		{"an editor", map[string]string{"alice": "lrswipkxtea", "bob": "lrswite"}, true, true},
		{"an editor by the obsolete d", map[string]string{"alice": "lrswipkxtea", "bob": "lrswid"}, true, true},
		{"a reader taken away", map[string]string{"alice": "lrswipkxtea", "-bob": "lr"}, true, true},
		{"unknown ACL", nil, false, true},
	} {
		a, known := ACL(nil), tc.acl != nil
		if known {
			a = parse(tc.acl)
		}
		if got := AnnotationsTrusted(a, known, "alice", "fbproxy", RFCMetadata); got != tc.dovecot {
			t.Errorf("%s, RFC 5464's rule (Dovecot): trusted = %v, want %v", tc.name, got, tc.dovecot)
		}
		if got := AnnotationsTrusted(a, known, "alice", "fbproxy", CyrusMetadata); got != tc.cyr {
			t.Errorf("%s, Cyrus's rule: trusted = %v, want %v", tc.name, got, tc.cyr)
		}
	}
	// A folder of no one (the shared namespace): every entry is someone
	// else's.
	if AnnotationsTrusted(parse(map[string]string{"bob": "lr"}), true, "", "fbproxy", RFCMetadata) {
		t.Error("a shared-namespace folder bob reads: annotations trusted under RFC 5464's rule")
	}
}
