package imapstore

import (
	"context"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// fetchChanged is the first round trip of an incremental fetch on a
// server with CONDSTORE: the flags of what changed since q.ChangedSince
// only (new messages among them), then every UID into l, for expunges —
// unless the count shows there were none: the messages known before
// (q.Previous) plus the new ones are then exactly the folder (an expunge
// lowers the count; a message appended and expunged in between is in
// neither). It returns the messages whose flags were fetched.
func (s *Session) fetchChanged(ctx context.Context, q Query, l *Listing) ([]*imapclient.FetchMessageBuffer, error) {
	meta, err := s.fetchMeta(allUIDs(), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: q.ChangedSince, RFC822Size: q.WholeBelow > 0})
	if err != nil {
		return nil, opErr(ctx, "UID FETCH", err)
	}
	var added []uint32
	for _, m := range meta {
		if !q.Known(uint32(m.UID)) {
			added = append(added, uint32(m.UID))
		}
	}
	if q.Previous != nil && uint32(len(q.Previous)+len(added)) == l.State.Messages {
		l.UIDs = append(slices.Clone(q.Previous), added...)
	} else {
		var sd *imap.SearchData
		err := s.observe("UID SEARCH", func() (err error) {
			sd, err = s.client.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
			return err
		})
		if err != nil {
			return nil, opErr(ctx, "UID SEARCH", err)
		}
		for _, u := range sd.AllUIDs() {
			l.UIDs = append(l.UIDs, uint32(u))
		}
	}
	slices.Sort(l.UIDs)
	return meta, nil
}
