package imapstore

import (
	"context"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// A folder's details: the proxy's rights on it, its ACL and its Kolab
// annotations, read when it first appears, when its state moves, and on
// the re-validation interval (feed decides when).

// Details reads, for each of fs, the session's rights (MYRIGHTS), the
// ACL where the session may read it (GETACL), and the Kolab annotations
// (GETMETADATA), all pipelined, and fills them in.
func (s *Session) Details(ctx context.Context, fs []Folder) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	return s.details(ctx, fs)
}

// details is Details for a caller that holds s.mu and has bound the
// connection.
func (s *Session) details(ctx context.Context, out []Folder) error {
	// GETMETADATA and MYRIGHTS of every folder go out together, before
	// any answer is read: one round trip for both.
	meta := s.sendMetadata(out)
	rights := s.sendMyRights(out)
	if err := s.readMetadata(ctx, out, meta); err != nil {
		return err
	}
	if !s.features.ACL {
		return nil
	}
	if err := s.readMyRights(ctx, out, rights); err != nil {
		return err
	}
	return s.readACLs(ctx, out)
}

// sendMetadata sends a GETMETADATA of the Kolab annotations for each
// folder of out, where the server has METADATA (none otherwise).
func (s *Session) sendMetadata(out []Folder) []*imapclient.GetMetadataCommand {
	if !s.features.Metadata {
		return nil
	}
	meta := make([]*imapclient.GetMetadataCommand, len(out))
	for i := range out {
		meta[i] = s.client.GetMetadata(out[i].Name, append(slices.Clone(folderTypeEntries), incidencesFor), nil)
	}
	return meta
}

// sendMyRights sends a MYRIGHTS for each folder of out, where the server
// has ACL (none otherwise).
func (s *Session) sendMyRights(out []Folder) []*imapclient.MyRightsCommand {
	if !s.features.ACL {
		return nil
	}
	rights := make([]*imapclient.MyRightsCommand, len(out))
	for i := range out {
		rights[i] = s.client.MyRights(out[i].Name)
	}
	return rights
}

// readMetadata reads the answers to sendMetadata's commands into out's
// Type and IncidencesFor. A NO (no such entry, no right) leaves them
// empty.
func (s *Session) readMetadata(ctx context.Context, out []Folder, meta []*imapclient.GetMetadataCommand) error {
	for i, c := range meta {
		out[i].Type, out[i].IncidencesFor = "", ""
		err := s.observe("GETMETADATA", func() error {
			d, err := c.Wait()
			if err == nil {
				for _, e := range folderTypeEntries {
					if v := d.Entries[e]; v != nil && len(*v) > 0 {
						out[i].Type = strings.ToLower(strings.TrimSpace(string(*v)))
						break
					}
				}
				if v := d.Entries[incidencesFor]; v != nil {
					out[i].IncidencesFor = strings.ToLower(strings.TrimSpace(string(*v)))
				}
			}
			return err
		})
		if err != nil && !isNo(err) {
			return opErr(ctx, "GETMETADATA", err)
		}
	}
	return nil
}

// readMyRights reads the answers to sendMyRights's commands into out's
// Rights.
func (s *Session) readMyRights(ctx context.Context, out []Folder, rights []*imapclient.MyRightsCommand) error {
	for i, c := range rights {
		out[i].Rights, out[i].RightsKnown = "", false
		err := s.observe("MYRIGHTS", func() error {
			d, err := c.Wait()
			if err == nil {
				out[i].Rights, out[i].RightsKnown = rightsString(d.Rights), true
			}
			return err
		})
		if err != nil && !isNo(err) {
			return opErr(ctx, "MYRIGHTS", err)
		}
		// A NO answer (the folder vanished, or no rights at all)
		// leaves Rights empty but known: nothing may be read.
		if err != nil {
			out[i].RightsKnown = true
		}
	}
	return nil
}

// readACLs reads the ACL of each folder of out where the session holds
// the a right (its Rights, read first): it tells fbpub who else may read
// the folder. The GETACL commands are pipelined.
func (s *Session) readACLs(ctx context.Context, out []Folder) error {
	acls := map[int]*imapclient.GetACLCommand{}
	for i := range out {
		out[i].ACL, out[i].ACLKnown = nil, false
		if strings.ContainsRune(out[i].Rights, 'a') {
			acls[i] = s.client.GetACL(out[i].Name)
		}
	}
	for i := range out {
		c := acls[i]
		if c == nil {
			continue
		}
		err := s.observe("GETACL", func() error {
			d, err := c.Wait()
			if err == nil {
				out[i].ACL = make(map[string]string, len(d.Rights))
				for id, rs := range d.Rights {
					out[i].ACL[string(id)] = rightsString(rs)
				}
				out[i].ACLKnown = true
			}
			return err
		})
		if err != nil && !isNo(err) {
			return opErr(ctx, "GETACL", err)
		}
	}
	return nil
}

func rightsString(rs imap.RightSet) string {
	b := make([]byte, len(rs))
	for i, r := range rs {
		b[i] = byte(r)
	}
	return string(b)
}

func isNo(err error) bool {
	ie, ok := err.(*imap.Error)
	return ok && ie.Type == imap.StatusResponseTypeNo
}
