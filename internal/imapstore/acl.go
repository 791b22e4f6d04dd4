package imapstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// ErrNoPermission means the server refused to show a folder's ACL: the
// session lacks the "a" (administer) right on it. Dovecot answers GETACL
// with "NO [NOPERM]", Cyrus with "NO Permission denied".
var ErrNoPermission = errors.New("imapstore: no permission")

// GetACL returns the access control list of folder (RFC 4314 GETACL): each
// identifier as the server spelt it ("anyone", "$team", "-bob") mapped to
// its rights string as the server sent it, for acl.Parse. The session
// needs the "a" right on the folder.
//
// A NO answer wraps ErrNotFound when the server says the folder does not
// exist (the NONEXISTENT response code, which Dovecot sends for a folder
// that is missing or on which the session has no rights at all), and
// ErrNoPermission otherwise (NOPERM, or no code: Cyrus's "Permission
// denied"). IMAP servers do not reliably tell a missing folder from a
// forbidden one, so a caller that needs to know whether the folder exists
// for this session asks MyRights; either error means "this ACL cannot be
// read". Other errors are connection failures.
func (s *Session) GetACL(ctx context.Context, folder string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var out map[string]string
	err := s.observe("GETACL", func() error {
		d, err := s.client.GetACL(folder).Wait()
		if err != nil {
			return err
		}
		out = make(map[string]string, len(d.Rights))
		for id, rs := range d.Rights {
			out[string(id)] = rightsString(rs)
		}
		return nil
	})
	if err != nil {
		if isNo(err) {
			if isNonExistent(err) {
				return nil, fmt.Errorf("%w: GETACL %q: %w", ErrNotFound, folder, err)
			}
			return nil, fmt.Errorf("%w: GETACL %q: %w", ErrNoPermission, folder, err)
		}
		return nil, opErr(ctx, "GETACL", err)
	}
	return out, nil
}

// MyRights returns the session's rights on folder (RFC 4314 MYRIGHTS), as
// the server sent them, for acl.ParseRights. A NO answer wraps ErrNotFound:
// Dovecot answers "NO Mailbox doesn't exist" both for a missing folder and
// for one on which the session has no rights, so for fbpub a NO means the
// empty set of rights. Other errors are connection failures.
func (s *Session) MyRights(ctx context.Context, folder string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var rights string
	err := s.observe("MYRIGHTS", func() error {
		d, err := s.client.MyRights(folder).Wait()
		if err == nil {
			rights = rightsString(d.Rights)
		}
		return err
	})
	if err != nil {
		if isNo(err) {
			return "", fmt.Errorf("%w: MYRIGHTS %q: %w", ErrNotFound, folder, err)
		}
		return "", opErr(ctx, "MYRIGHTS", err)
	}
	return rights, nil
}

// The server software Server recognises.
const (
	ServerDovecot = "dovecot"
	ServerCyrus   = "cyrus"
)

// Server returns the server's software as far as it can be told:
// ServerDovecot, ServerCyrus or "" when unknown (no ID extension, or a name
// fbpub does not know). fbpub needs it to choose how ACL entries combine:
// acl.Dovecot(owner) for Dovecot, the RFC union otherwise. It is read once
// at login (Features.Server).
func (s *Session) Server() string { return s.features.Server }

// identify asks the server who it is with the ID command (RFC 2971), when
// it advertises ID. A NO answer means "unknown"; a connection failure is
// an error. fbpub identifies itself too: RFC 2971 lets the server log it,
// and some servers want a client ID. No version or OS: nothing that helps
// an attacker.
func (s *Session) identify() (string, error) {
	if !s.client.Caps().Has(imap.CapID) {
		return "", nil
	}
	var data *imap.IDData
	err := s.observe("ID", func() (err error) {
		data, err = s.client.ID(&imap.IDData{Name: "fbpub"}).Wait()
		return err
	})
	if err != nil {
		if isNo(err) {
			return "", nil
		}
		return "", err
	}
	return serverName(data), nil
}

// serverName recognises the software in an ID answer: Dovecot sends
// ("name" "Dovecot"), Cyrus ("name" "Cyrus IMAPD" … "vendor" "Project
// Cyrus").
func serverName(d *imap.IDData) string {
	if d == nil {
		return ""
	}
	id := strings.ToLower(d.Name + " " + d.Vendor)
	switch {
	case strings.Contains(id, "dovecot"):
		return ServerDovecot
	case strings.Contains(id, "cyrus"):
		return ServerCyrus
	}
	return ""
}

// isNonExistent reports whether err is a NO answer with the NONEXISTENT
// response code (RFC 5530).
func isNonExistent(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == imap.ResponseCodeNonExistent
}
