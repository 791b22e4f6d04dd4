package feed

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// Folder is a published calendar folder.
type Folder struct {
	// Name is the IMAP folder name (decoded).
	Name string
	// Owner is whose calendar it is; Segments its path below the owner's
	// namespace, split at the server's hierarchy delimiter.
	Owner    string
	Segments []string
	Rights   string
	// RightsKnown is false on servers without ACL support.
	RightsKnown bool
	// ACL is the folder's access control list, when the proxy may read it
	// (ACLKnown): it decides who else sees what (Options.Policy).
	ACL      acl.ACL
	ACLKnown bool
	// IncidencesFor is Kolab's incidences-for annotation: whose
	// free/busy the folder counts for (see CountsFor).
	IncidencesFor string
	State         imapstore.State

	// checked is when the folder list holding this entry was read.
	checked time.Time
}

// CountsFor reports whether f's events make user busy, as Kolab's
// incidences-for annotation says: "readers", every user with the r right
// on the folder; "admins", every user with the a right; "nobody", no one;
// unset, the owner alone. The owner counts for "readers" and "admins"
// too. Rights come from the folder's ACL, evaluated by p.Rights (the
// access policy's groups, semantics and fail-closed rules); where the ACL
// is unknown, only the owner counts.
func (f *Folder) CountsFor(user string, p *acl.Policy) bool {
	isOwner := f.Owner != "" && strings.EqualFold(f.Owner, user)
	var need acl.Rights
	switch f.IncidencesFor {
	case "nobody":
		return false
	case "readers":
		need = acl.Read
	case "admins":
		need = acl.Administer
	default:
		return isOwner
	}
	if isOwner {
		return true
	}
	if !f.ACLKnown || user == "" {
		return false
	}
	// Evaluated as the policy evaluates requesters, fail-closed: a
	// negative entry of a group whose membership fbpub does not know
	// keeps the folder out of user's free/busy, and user (a name from a
	// URL) is not taken to be the server's spelling of anyone else.
	return p.Rights(p.Groups.Requester(user), f.Owner, f.ACL).Has(need)
}

// Path is the folder's path with "/" separators, as it appears in URLs.
func (f *Folder) Path() string { return strings.Join(f.Segments, "/") }

// noteACL says once per folder, in the log, that its ACL cannot be used:
// its details then go to its owner and the configured readers only.
func (c *Cache) noteACL(f Folder, err error) {
	c.mu.Lock()
	seen := c.aclNoted[f.Name]
	c.aclNoted[f.Name] = true
	c.mu.Unlock()
	if seen {
		return
	}
	if err != nil {
		c.log.Warn("folder ACL unreadable; details go to the owner and configured readers only", "folder", f.Name, "err", err)
		return
	}
	c.log.Info("folder ACL not available to the proxy (GETACL needs the a right); details go to the owner and configured readers only", "folder", f.Name)
}

// Decision says whether a folder the proxy can see is published, and if
// not, why.
type Decision struct {
	Folder Folder
	// Reason is empty for a published folder.
	Reason string
	// ACLError says why the folder's ACL, though read, is not used.
	ACLError error
	// Untrusted, when set, says why the folder's Kolab annotations
	// (folder-type, incidences-for) were not used.
	Untrusted string
	hasState  bool
}

// metadataRule is the server's rule for who may write shared annotations
// (Options.Metadata).
func (c *Cache) metadataRule() acl.MetadataRule {
	if c.opts.Metadata != nil {
		if r := c.opts.Metadata(); r != nil {
			return r
		}
	}
	return acl.RFCMetadata
}

// noteAnnotations says once per folder, in the log, that its Kolab
// annotations are not used.
func (c *Cache) noteAnnotations(d Decision) {
	c.mu.Lock()
	seen := c.annotationsNoted[d.Folder.Name]
	c.annotationsNoted[d.Folder.Name] = true
	c.mu.Unlock()
	if !seen {
		c.log.Warn("folder's Kolab annotations not used", "folder", d.Folder.Name, "why", d.Untrusted)
	}
}

// decide applies the publication rules to the folders the proxy sees: a
// calendar folder with an owner — a folder whose Kolab folder-type
// annotation says event (or event.*) whatever its name, one that names
// another type never, one without annotation by the configured patterns — that the
// proxy may list and read (l and r; on a server without ACLs, any folder
// it can select).
func (c *Cache) decide(all []imapstore.Folder) []Decision {
	var out []Decision
	for _, f := range all {
		segs := strings.Split(f.Path, string(delimOr(f.Delim)))
		d := Decision{Folder: Folder{Name: f.Name, Owner: f.Owner, Segments: segs, Rights: f.Rights, RightsKnown: f.RightsKnown, State: f.State,
			IncidencesFor: f.IncidencesFor}, hasState: f.HasState}
		if f.ACLKnown {
			// A partly readable ACL is not used: a dropped negative
			// entry would show too much.
			if a, err := acl.Parse(f.ACL); err == nil {
				d.Folder.ACL, d.Folder.ACLKnown = a, true
			} else {
				d.ACLError = err
			}
		}
		typ, incidences := f.Type, f.IncidencesFor
		if (typ != "" || incidences != "") && !acl.AnnotationsTrusted(d.Folder.ACL, d.Folder.ACLKnown, f.Owner, c.opts.Proxy, c.metadataRule()) {
			if d.Folder.ACLKnown {
				d.Untrusted = "its ACL lets someone other than its owner, the proxy and those who may delete its messages write them"
			} else {
				d.Untrusted = "its ACL is unknown to the proxy (GETACL needs the a right), and this server lets anyone who may read a folder write them"
			}
			typ, incidences = "", ""
			d.Folder.IncidencesFor = ""
		}
		switch {
		case typ != "" && typ != "event" && !strings.HasPrefix(typ, "event."):
			d.Reason = fmt.Sprintf("a Kolab %q folder, not a calendar", typ)
		case typ == "" && !c.isCalendar(segs):
			d.Reason = "not a calendar folder (publish.folders)"
		case f.Owner == "" && incidences != "readers" && incidences != "admins":
			d.Reason = "no owner: a shared folder outside any user's namespace, and no incidences-for annotation says whose free/busy it counts for"
		case f.RightsKnown && !(strings.ContainsRune(f.Rights, 'l') && strings.ContainsRune(f.Rights, 'r')):
			d.Reason = fmt.Sprintf("the proxy may not read it (rights %q, needs l and r)", f.Rights)
		}
		out = append(out, d)
	}
	return out
}

// Explain reads the folder list now and says, for every folder the proxy
// can see, whether it is published and why not: what `fbpub check` prints.
func (c *Cache) Explain(ctx context.Context) ([]Decision, error) {
	all, err := c.opts.Source.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return c.decide(all), nil
}

func delimOr(d rune) rune {
	if d == 0 {
		return '/'
	}
	return d
}

func (c *Cache) isCalendar(segs []string) bool {
	p := strings.Join(segs, "/")
	for _, pat := range c.opts.Patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}
