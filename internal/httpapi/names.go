package httpapi

import (
	"hash/maphash"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
)

// Bounds on names taken from URLs.
const (
	maxUser    = 128
	maxSegment = 255
	maxPath    = 1024
	maxDepth   = 16
)

// owner validates the user part of a URL, a login or an address, and
// returns the IMAP user and the calendar address. The default mapping
// takes the local part of an address as the login.
func (h *Handler) owner(name string) (user, addr string, err error) {
	// Most requests name the same few owners: their mapping is
	// remembered in a small array of slots, indexed by a hash of the
	// name, bounded and lock-free.
	slot := &h.owners.slots[maphash.String(h.owners.seed, name)%uint64(len(h.owners.slots))]
	if o := slot.Load(); o != nil && o.name == name {
		return o.user, o.addr, nil
	}
	user, addr, err = h.mapOwner(name)
	if err == nil {
		slot.Store(&ownerEntry{name: name, user: user, addr: addr})
	}
	return user, addr, err
}

// ownerCache remembers the results of owner.
type ownerCache struct {
	seed  maphash.Seed // set by New
	slots [256]atomic.Pointer[ownerEntry]
}

type ownerEntry struct{ name, user, addr string }

// mapOwner is owner without the cache.
func (h *Handler) mapOwner(name string) (user, addr string, err error) {
	if err := checkName(name, maxUser); err != nil {
		return "", "", badRequest("bad user name: %v", err)
	}
	local, domain, isAddr := strings.Cut(name, "@")
	if isAddr {
		if local == "" || domain == "" || strings.Contains(domain, "@") {
			return "", "", badRequest("bad user address")
		}
		if login, ok := h.addresses[strings.ToLower(name)]; ok {
			return login, "mailto:" + strings.ToLower(name), nil
		}
		return local, "mailto:" + strings.ToLower(name), nil
	}
	if h.opts.MailDomain != "" {
		return name, "mailto:" + strings.ToLower(name+"@"+h.opts.MailDomain), nil
	}
	return name, "mailto:" + strings.ToLower(name), nil
}

// folderSegments splits a URL folder path at "/" and validates each part.
func folderSegments(p string) ([]string, error) {
	if len(p) > maxPath {
		return nil, badRequest("folder name too long")
	}
	segs := strings.Split(p, "/")
	if len(segs) > maxDepth {
		return nil, badRequest("folder nested too deep")
	}
	for _, s := range segs {
		if err := checkName(s, maxSegment); err != nil {
			return nil, badRequest("bad folder name: %v", err)
		}
	}
	return segs, nil
}

// folderRequest is what a URL naming one owner's folder as a file
// (/…/<owner>/<folder>.<ext>) asks for, and who asks.
type folderRequest struct {
	user, addr string        // the owner's IMAP login and calendar address (owner)
	folder     []string      // the folder's path, one segment per level
	ext        string        // the file extension, in lower case
	who        acl.Requester // the requester
}

// file is the file name the folder's answer is served as.
func (f folderRequest) file() string { return f.folder[len(f.folder)-1] + "." + f.ext }

// openFolder reads the {owner} and {path...} wildcards of r as an owner
// and a folder file with one of exts (anything else is a 404 saying
// usage), then learns who asks with requester (viewer to read, writer to
// upload). The URL is validated before the requester is asked, so a bad
// URL gets the same error whoever asks, and nothing from it reaches IMAP
// unvalidated.
func (h *Handler) openFolder(w http.ResponseWriter, r *http.Request, requester func(http.ResponseWriter, *http.Request) (acl.Requester, error), usage string, exts ...string) (folderRequest, error) {
	var f folderRequest
	var err error
	if f.user, f.addr, err = h.owner(r.PathValue("owner")); err != nil {
		return f, err
	}
	var p string
	p, f.ext = splitExt(r.PathValue("path"))
	if !slices.Contains(exts, f.ext) {
		return f, notFound(usage)
	}
	if f.folder, err = folderSegments(p); err != nil {
		return f, err
	}
	if f.who, err = requester(w, r); err != nil {
		return f, err
	}
	return f, nil
}

type nameError string

func (e nameError) Error() string { return string(e) }

// checkName rejects empty names, "." and "..", invalid UTF-8, control
// characters (NUL included) and overlong names. Names from URLs are only
// ever compared with the folder list read from IMAP, never sent to it.
func checkName(s string, max int) error {
	switch {
	case s == "":
		return nameError("empty")
	case s == "." || s == "..":
		return nameError("relative name")
	case len(s) > max:
		return nameError("too long")
	case !utf8.ValidString(s):
		return nameError("not UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return nameError("control character")
		}
	}
	return nil
}

// contentDisposition names the file for clients that save it.
func contentDisposition(name string) string {
	// What FormatMediaType writes for plain ASCII names, without its cost.
	if calendar.IsMIMEToken(name) {
		return "inline; filename=" + name
	}
	if isQuotable(name) {
		return `inline; filename="` + name + `"`
	}
	if v := mime.FormatMediaType("inline", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "inline"
}

// isQuotable reports whether s is printable ASCII that a quoted string
// holds without escapes.
func isQuotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// splitExt splits a file name at its last dot: the name before it, and
// the extension after it in lower case; a name without a dot (or that
// starts with its only one) has no extension.
func splitExt(s string) (name, ext string) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 {
		return s, ""
	}
	return s[:i], strings.ToLower(s[i+1:])
}
