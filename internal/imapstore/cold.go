package imapstore

import (
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// firstContent sets opts, the first round trip of a folder read from
// scratch, to bring content along, and returns what to do with each
// message as it arrives; handed collects the UIDs of those handed to
// q.Received. The body structure of the folder's last message (number
// last, asked for once SELECT has said how many there are: go-imap
// would not match the answer to a FETCH * to its command) chooses: when
// it shows one wanted part, not too large, every message's body
// structure and the first WholeBelow octets of the part at that place
// come (structure then part); otherwise the first WholeBelow octets of
// every message. Calendar folders hold messages of
// one layout (Kolab's: the calendar in part 2), so the guess is right for
// nearly every message, and a message it misses has its parts fetched by
// its body structure after the first round.
//
// Structure then part is what a cold read pays least for: the part
// alone, not the whole message, crosses the wire and is decoded, and the
// caller has no MIME to split (BenchmarkFolder10k in internal/feed
// measures it against a bare fetch of the same parts).
func (s *Session) firstContent(q Query, last uint32, opts *imap.FetchOptions, handed *uidSet) (func(*imapclient.FetchMessageBuffer), error) {
	var probe []*imapclient.FetchMessageBuffer
	err := s.observe("FETCH", func() (err error) {
		probe, err = s.client.Fetch(imap.SeqSetNum(last), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
		return err
	})
	if err != nil && !isNo(err) {
		return nil, err
	}
	var wanted []Part
	if len(probe) == 1 && probe[0].BodyStructure != nil {
		wanted = wantedParts(probe[0].BodyStructure, q)
	}
	if len(wanted) == 1 && !wanted[0].TooLarge {
		section := &imap.FetchItemBodySection{Part: wanted[0].Path, Peek: true,
			Partial: &imap.SectionPartial{Offset: 0, Size: int64(q.WholeBelow)}}
		opts.BodySection = []*imap.FetchItemBodySection{section}
		opts.BodyStructure = &imap.FetchItemBodyStructure{}
		opts.RFC822Size = false
		return func(m *imapclient.FetchMessageBuffer) {
			if takeStructured(q, section, m) {
				handed.add(uint32(m.UID))
			}
		}, nil
	}
	// When small messages are fetched whole, the first WholeBelow octets
	// of every message: one round trip holds the whole content of a
	// folder of small messages. Their size then tells which messages came
	// whole (less than WholeBelow octets), without RFC822.SIZE.
	whole := wholeSection(q.WholeBelow)
	opts.BodySection = []*imap.FetchItemBodySection{whole}
	opts.RFC822Size = false
	return func(m *imapclient.FetchMessageBuffer) {
		if takeWhole(q, whole, m) {
			handed.add(uint32(m.UID))
		}
	}, nil
}

// takeWhole notes whether m, fetched with section (the first WholeBelow
// octets), came whole: RFC822Size is then its size, else WholeBelow+1, to
// be fetched by body structure. A message that came whole, with content
// and not \Deleted, goes to q.Received; takeWhole reports whether it did.
func takeWhole(q Query, section *imap.FetchItemBodySection, m *imapclient.FetchMessageBuffer) bool {
	raw := m.FindBodySection(section)
	if raw == nil || uint32(len(raw)) >= q.WholeBelow {
		// Cut at WholeBelow (or NIL): fetched by body structure.
		m.RFC822Size = int64(q.WholeBelow) + 1
		return false
	}
	m.RFC822Size = int64(len(raw))
	if q.Received != nil && len(raw) > 0 && !isDeleted(m.Flags) {
		q.Received(Message{UID: uint32(m.UID), Flags: flagStrings(m.Flags), ModSeq: m.ModSeq, Raw: raw})
		m.BodySection = nil // the receiver's now; m is kept for its UID and flags
		return true
	}
	return false
}

// takeStructured hands m, fetched with its body structure and section
// (the first WholeBelow octets of one part), to q.Received when its body
// structure shows that this part is its one wanted part, and that it came
// whole; or that it has no wanted part at all. It reports whether it did.
// The parts of any other message (not \Deleted) are fetched after the
// first round, by body structure.
func takeStructured(q Query, section *imap.FetchItemBodySection, m *imapclient.FetchMessageBuffer) bool {
	if q.Received == nil || isDeleted(m.Flags) || m.BodyStructure == nil {
		return false
	}
	wanted := wantedParts(m.BodyStructure, q)
	if len(wanted) > 1 {
		return false
	}
	msg := Message{UID: uint32(m.UID), Flags: flagStrings(m.Flags), ModSeq: m.ModSeq}
	if len(wanted) == 1 {
		p := wanted[0]
		body := m.FindBodySection(section)
		if p.TooLarge || !slices.Equal(p.Path, section.Part) || body == nil || int64(len(body)) >= section.Partial.Size {
			return false
		}
		p.Body = body
		msg.Parts = []Part{p}
	}
	q.Received(msg)
	// The content is the receiver's now; m is kept, until the end of the
	// fetch, for its UID and flags only.
	m.BodySection, m.BodyStructure = nil, nil
	return true
}

// uidSet is a set of UIDs, noted in ascending order as a server answers
// UID FETCH 1:*, and looked up by binary search, cheaper than a map for
// the thousands of messages of a cold read. The nil set is empty.
type uidSet struct {
	uids     []uint32
	unsorted bool
}

func (s *uidSet) add(u uint32) {
	if n := len(s.uids); n > 0 && s.uids[n-1] >= u {
		s.unsorted = true
	}
	s.uids = append(s.uids, u)
}

func (s *uidSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.uids)
}

func (s *uidSet) has(u uint32) bool {
	if s == nil {
		return false
	}
	if s.unsorted {
		slices.Sort(s.uids)
		s.unsorted = false
	}
	_, ok := slices.BinarySearch(s.uids, u)
	return ok
}

// wholeSection is BODY.PEEK[]<0.n>: the first n octets of a message.
func wholeSection(n uint32) *imap.FetchItemBodySection {
	return &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: int64(n)}}
}
