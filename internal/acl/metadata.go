package acl

// MetadataRule says whether rights let a user write a folder's shared
// annotations (the /shared entries of RFC 5464 METADATA) on a server.
type MetadataRule func(Rights) bool

// RFCMetadata is RFC 5464's rule (§3.2), which Dovecot follows: l and
// any one of r, s, w, i and p. A read-only share is enough.
func RFCMetadata(r Rights) bool {
	return r.Has(Lookup) && r&(Read|Seen|Write|Insert|Post) != 0
}

// CyrusMetadata is Cyrus's rule: l, r and w (annotate.c,
// _annotate_may_store); a read-only share is not enough.
func CyrusMetadata(r Rights) bool { return r.Has(Lookup | Read | Write) }

// AnnotationsTrusted reports whether the shared annotations of a folder
// of owner can only have been written by someone who may also delete its
// messages (t and e): its owner, the proxy, or an editor, who could make
// its events disappear anyway. No one can tell who wrote an entry, so an
// entry of a, the folder's ACL, that lets someone else write annotations
// under may without deleting messages makes them untrusted: on Dovecot,
// anyone a calendar is shared with read-only could otherwise unpublish
// it, or make it count for everyone's free/busy. Entries are taken one by
// one (a negative entry, which takes rights away, is passed over), so an
// identifier whose rights are split over two entries may be judged more
// strictly than the server would.
//
// With the ACL unknown (GETACL needs the a right), they are trusted only
// where may refuses a read-only share (Cyrus).
func AnnotationsTrusted(a ACL, known bool, owner, proxy string, may MetadataRule) bool {
	if !known {
		return !may(Lookup | Read | Seen)
	}
	for _, e := range a {
		id := e.Identifier
		switch {
		case id.Negative, id.Kind == Owner:
			continue
		case id.Kind == User && id.Name != "" && (id.Name == owner || id.Name == proxy):
			continue
		}
		if may(e.Rights) && !e.Rights.Has(DeleteMessages|Expunge) {
			return false
		}
	}
	return true
}
