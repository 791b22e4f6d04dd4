package imapstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Writing, for uploads (ical2imap). These run as the uploading user's own
// session, so that the server's ACL decides what they may do.

// FolderName returns the name under which this session's user sees owner's
// folder path (segments): in its personal namespace when the user is the
// owner (the session's login spelt exactly as owner), else under the other
// users' namespace. It reports false when the
// server announced no namespace for other users.
func (s *Session) FolderName(owner string, path []string) (string, bool) {
	for _, ns := range s.spaces {
		if ns.Kind != Personal || owner != s.opts.User {
			continue
		}
		return ns.Prefix + strings.Join(path, delimString(ns.Delim)), true
	}
	for _, ns := range s.spaces {
		if ns.Kind == OtherUsers {
			d := delimString(ns.Delim)
			return ns.Prefix + owner + d + strings.Join(path, d), true
		}
	}
	return "", false
}

func delimString(d rune) string {
	if d == 0 {
		return "/"
	}
	return string(d)
}

// CreateFolder creates folder; a folder that exists already is not an error.
func (s *Session) CreateFolder(ctx context.Context, folder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	err := s.observe("CREATE", func() error { return s.client.Create(folder, nil).Wait() })
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return nil
	}
	if err != nil {
		if isNo(err) {
			return fmt.Errorf("imapstore: CREATE %q: %w", folder, err)
		}
		return opErr(ctx, "CREATE", err)
	}
	return nil
}

// AppendMessage adds msg (a whole RFC 5322 message) to folder.
func (s *Session) AppendMessage(ctx context.Context, folder string, msg []byte, flags ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var opts *imap.AppendOptions
	if len(flags) > 0 {
		opts = &imap.AppendOptions{}
		for _, f := range flags {
			opts.Flags = append(opts.Flags, imap.Flag(f))
		}
	}
	err := s.observe("APPEND", func() error {
		cmd := s.client.Append(folder, int64(len(msg)), opts)
		if _, err := cmd.Write(msg); err != nil {
			cmd.Close()
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	})
	if err != nil {
		if isNo(err) {
			return fmt.Errorf("imapstore: APPEND to %q: %w", folder, err)
		}
		return opErr(ctx, "APPEND", err)
	}
	return nil
}

// RemoveMessages expunges the messages uids of folder, and only those (UID
// EXPUNGE, RFC 4315): other clients' messages flagged \Deleted stay.
func (s *Session) RemoveMessages(ctx context.Context, folder string, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	if !s.client.Caps().Has(imap.CapUIDPlus) && !s.client.Caps().Has(imap.CapIMAP4rev2) {
		return fmt.Errorf("imapstore: the server lacks UIDPLUS; fbpub will not expunge other clients' deleted messages")
	}
	if _, err := s.selectFolder(ctx, folder, nil); err != nil {
		return err
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	err := s.observe("UID STORE", func() error {
		return s.client.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
	})
	if err == nil {
		err = s.observe("UID EXPUNGE", func() error { return s.client.UIDExpunge(set).Close() })
	}
	if err != nil {
		if isNo(err) {
			return fmt.Errorf("imapstore: removing from %q: %w", folder, err)
		}
		return opErr(ctx, "UID STORE", err)
	}
	return nil
}

// KolabFolderType returns folder's Kolab folder-type annotation ("event",
// "event.default", "mail", …; shared value first), or "" when it has none
// or the server has no METADATA.
func (s *Session) KolabFolderType(ctx context.Context, folder string) (string, error) {
	if !s.features.Metadata {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	var typ string
	err := s.observe("GETMETADATA", func() error {
		d, err := s.client.GetMetadata(folder, folderTypeEntries, nil).Wait()
		if err != nil {
			return err
		}
		for _, e := range folderTypeEntries {
			if v := d.Entries[e]; v != nil && len(*v) > 0 {
				typ = strings.ToLower(strings.TrimSpace(string(*v)))
				return nil
			}
		}
		return nil
	})
	if err != nil && !isNo(err) {
		return "", opErr(ctx, "GETMETADATA", err)
	}
	return typ, nil
}
