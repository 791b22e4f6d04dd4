package imapstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// Secret free/busy links (issue 18) are kept where IMAP keeps the owner's
// data, so that they survive restarts and every replica of fbpub sees the
// same ones: in a METADATA entry (RFC 5464) of a folder of the owner's
// own, LinksFolder, which the owner's session creates and shares with the
// proxy alone ("lr"). The owner writes the entry in their own session;
// the proxy reads it to resolve a link. The value holds hashes of the
// tokens, never the tokens (see package httpapi).
//
// Why a folder of its own, and a /shared entry:
//   - A /private entry is visible only to the user who wrote it: the
//     proxy could not resolve a link.
//   - A /shared entry is readable by whoever holds "l" and "r" on the
//     folder, so the proxy reads it. But RFC 5464 (§3.2) lets anyone with
//     "l" and one of "r s w i p" write it too, and Dovecot does exactly
//     that (checked in TestLinksEntry): on the owner's calendar folder,
//     every colleague it is shared with could add, replace or wipe the
//     owner's links. On a folder that only the owner and the proxy may
//     see, nobody else can. (Cyrus asks for more rights to write it.)
//   - A message in a folder would need a SELECT and a FETCH to read, where
//     the entry takes one GETMETADATA.

// LinksFolder is the folder, in the owner's personal namespace, whose
// LinksEntry holds the owner's secret free/busy links.
const LinksFolder = "Free-Busy Links"

// LinksEntry is the METADATA entry that holds an owner's secret free/busy
// links.
const LinksEntry = "/shared/vendor/fbpub/freebusy-links"

// ErrNoMetadata reports a server without the METADATA extension, where
// links cannot be kept. It wraps errors.ErrUnsupported.
var ErrNoMetadata = fmt.Errorf("imapstore: the server has no METADATA (RFC 5464): %w", errors.ErrUnsupported)

// Links returns the LinksEntry value of owner's LinksFolder, as this
// session sees it (its own folder when the session is owner's, else
// through the other users' namespace), or nil when there is none, when
// the folder does not exist, or when the session may not read it.
func (s *Session) Links(ctx context.Context, owner string) ([]byte, error) {
	if !s.features.Metadata {
		return nil, ErrNoMetadata
	}
	name, ok := s.FolderName(owner, []string{LinksFolder})
	if !ok {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var out []byte
	err := s.observe("GETMETADATA", func() error {
		// Options (DEPTH, MAXSIZE) are left out: go-imap writes them
		// after the mailbox name, which Dovecot refuses. Nil sends none.
		d, err := s.client.GetMetadata(name, []string{LinksEntry}, nil).Wait()
		if err == nil {
			if v := d.Entries[LinksEntry]; v != nil && len(*v) > 0 {
				out = *v
			}
		}
		return err
	})
	if err != nil && !isNo(err) {
		return nil, opErr(ctx, "GETMETADATA", err)
	}
	return out, nil
}

// SetLinks sets the LinksEntry of the session user's own LinksFolder to
// value (an empty value removes the entry). When value is not empty, the
// folder is created if missing and proxy is granted "lr" on it, so that
// the proxy can resolve links; nobody else is granted anything. A refusal by the server is an
// error wrapping its answer.
func (s *Session) SetLinks(ctx context.Context, proxy string, value []byte) error {
	if !s.features.Metadata {
		return ErrNoMetadata
	}
	name, ok := s.FolderName(s.opts.User, []string{LinksFolder})
	if !ok {
		return fmt.Errorf("imapstore: no personal namespace for %q", s.opts.User)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var v *[]byte
	if len(value) > 0 {
		v = &value
	}
	var err error
	if v != nil {
		// The folder is created when missing (a NO here is most likely
		// "already exists", whose wording and code differ between
		// servers: a real failure shows in SETMETADATA below), and the
		// proxy's grant is set again, in case the owner changed it.
		err = s.observe("CREATE", func() error { return s.client.Create(name, nil).Wait() })
		if err != nil && isNo(err) {
			err = nil
		}
		if err == nil && s.features.ACL {
			err = s.observe("SETACL", func() error {
				return s.client.SetACL(name, imap.RightsIdentifier(proxy), imap.RightModificationReplace, imap.RightSet("lr")).Wait()
			})
		}
	}
	if err == nil {
		err = s.observe("SETMETADATA", func() error {
			return s.client.SetMetadata(name, map[string]*[]byte{LinksEntry: v}).Wait()
		})
	}
	if err != nil {
		if isNo(err) {
			return fmt.Errorf("imapstore: keeping links in %q: %w", name, err)
		}
		return opErr(ctx, "SETMETADATA", err)
	}
	return nil
}

// Links is Session.Links on a session of the pool (the proxy).
func (p *Pool) Links(ctx context.Context, owner string) ([]byte, error) {
	var out []byte
	err := p.Do(ctx, func(s *Session) (err error) {
		out, err = s.Links(ctx, owner)
		return err
	})
	return out, err
}
