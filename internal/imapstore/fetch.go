package imapstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Reading a folder: fetch.go holds Fetch, its first round trip and what
// follows it (body structures, then the wanted parts); cold.go the first
// round of a folder read from scratch, which brings content along;
// incremental.go the first round with CHANGEDSINCE; uidfetch.go how the
// answers to a UID FETCH are collected.

// Part is one MIME part of a message, fetched on its own.
type Part struct {
	// Path is the IMAP section number ([2] for the second part of a
	// multipart, [1] for the body of a single-part message).
	Path      []int
	MediaType string            // lower case, e.g. "text/calendar"
	Params    map[string]string // Content-Type parameters, keys lower case
	// Encoding is the Content-Transfer-Encoding still applied to Body.
	Encoding string
	Body     []byte
	// TooLarge is set, and Body empty, when the part exceeded MaxPart.
	TooLarge bool
}

// Message is one message of a folder: its flags and wanted parts.
type Message struct {
	UID     uint32
	Flags   []string
	Deleted bool   // flagged \Deleted: on its way out, not to be published
	ModSeq  uint64 // with CONDSTORE
	Parts   []Part
	// Raw is the whole message, fetched instead of its parts when it was
	// small enough (Query.WholeBelow); the caller finds its parts.
	Raw []byte
}

// Query says what to fetch from a folder.
type Query struct {
	// Want selects the parts to fetch by media type (lower case). Nil
	// fetches none: only UIDs and flags.
	Want func(mediaType string) bool
	// Known reports the UIDs whose parts the caller already holds from an
	// earlier fetch at the same UIDVALIDITY. Their parts are not fetched
	// again: a message's content never changes in IMAP, only its flags.
	// Nil means none are known.
	Known func(uid uint32) bool
	// ChangedSince, when non-zero and the server has CONDSTORE, limits the
	// flags fetched to messages whose MODSEQ is greater (RFC 7162
	// CHANGEDSINCE); the UID list is still complete.
	ChangedSince uint64
	// Previous, with ChangedSince, lists the UIDs of the earlier fetch
	// (those Known reports). When the folder's message count shows that
	// nothing was expunged since, the UID list is derived from it instead
	// of searched for: one round trip less, and no list of every UID.
	Previous []uint32
	// MaxPart bounds the size of one fetched part (default 16 MiB).
	MaxPart uint32
	// WholeBelow, when non-zero, reads the content of a folder read from
	// scratch in its first round trip instead of reading body structures
	// first and then the wanted parts. Messages of at most this many
	// octets come whole (Message.Raw); or, when the folder's last
	// message has one wanted part, every message's body structure and the
	// first WholeBelow octets of the part at that place come, and a
	// message whose one wanted part that is comes with it (Message.Parts;
	// see Session.firstContent).
	WholeBelow uint32
	// Received, when set, is called on Fetch's goroutine with each
	// message whose content came in the first round trip (whole, or its
	// one wanted part), as soon as it has arrived, so that the caller can
	// parse while the rest is read. Those messages are then left out of
	// Listing.Messages (their UIDs and flags are in the listing as for
	// every message).
	Received func(Message)
}

// Listing is what Fetch found.
type Listing struct {
	// State was read when the folder was selected, before anything was
	// fetched: a change that lands during the fetch moves the folder past
	// this state, so the next check sees it.
	State State
	// UIDs lists every message in the folder, ascending.
	UIDs []uint32
	// Deleted says, for each message whose flags were fetched, whether it
	// is flagged \Deleted. FlagsComplete tells whether that is every
	// message (and then only those flagged \Deleted are in Deleted), or
	// only those changed since Query.ChangedSince.
	Deleted       map[uint32]bool
	FlagsComplete bool
	// Messages are the messages not Known, with their wanted parts,
	// ascending by UID. Messages flagged \Deleted come without parts.
	Messages []Message
}

// batch is how many messages one UID FETCH of bodies names.
const batch = 500

// Fetch selects folder read-only and fetches what q asks for: every UID,
// flags (all, or those changed since q.ChangedSince), and the wanted parts
// of the messages not yet known. A folder that does not exist or cannot be
// selected gives ErrNotFound.
func (s *Session) Fetch(ctx context.Context, folder string, q Query) (*Listing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	if q.MaxPart == 0 {
		q.MaxPart = 16 << 20
	}
	nothingKnown := q.Known == nil
	if nothingKnown {
		q.Known = func(uint32) bool { return false }
	}
	if q.Received == nil {
		// What would go to Received goes to the listing instead.
		var early []Message
		q.Received = func(m Message) { early = append(early, m) }
		l, err := s.fetch(ctx, folder, q, nothingKnown)
		if err == nil && len(early) > 0 {
			l.Messages = append(l.Messages, early...)
			slices.SortFunc(l.Messages, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
		}
		return l, err
	}
	return s.fetch(ctx, folder, q, nothingKnown)
}

func (s *Session) fetch(ctx context.Context, folder string, q Query, nothingKnown bool) (*Listing, error) {
	l, meta, handed, err := s.fetchFirst(ctx, folder, q, nothingKnown)
	if err != nil {
		return nil, err
	}
	return s.fetchRest(ctx, q, l, meta, handed)
}

// fetchFirst selects folder and makes the first round trip of Fetch:
// every UID with its flags, or those changed since q.ChangedSince, with
// body structures, or with content when nothing is known (see
// firstContent). It returns the listing without Deleted, the messages
// fetched and the UIDs of those handed to q.Received.
func (s *Session) fetchFirst(ctx context.Context, folder string, q Query, nothingKnown bool) (*Listing, []*imapclient.FetchMessageBuffer, *uidSet, error) {
	sel, err := s.selectFolder(ctx, folder, &imap.SelectOptions{ReadOnly: true, CondStore: s.features.CondStore})
	if err != nil {
		return nil, nil, nil, err
	}
	l := &Listing{
		State: State{
			UIDValidity:   sel.UIDValidity,
			HighestModSeq: sel.HighestModSeq,
			UIDNext:       uint32(sel.UIDNext),
			Messages:      sel.NumMessages,
		},
		Deleted: map[uint32]bool{},
	}
	if sel.NumMessages == 0 {
		l.FlagsComplete = true
		return l, nil, nil, nil
	}
	if q.ChangedSince > 0 && s.features.CondStore {
		meta, err := s.fetchChanged(ctx, q, l)
		if err != nil {
			return nil, nil, nil, err
		}
		return l, meta, nil, nil
	}
	meta, handed, err := s.fetchAll(ctx, q, l, nothingKnown)
	if err != nil {
		return nil, nil, nil, err
	}
	return l, meta, handed, nil
}

// fetchAll is the first round trip of a fetch without CHANGEDSINCE: the
// UID and flags of every message into l, and, for a folder read from
// scratch (nothingKnown), every body structure or the content itself
// (firstContent). It returns the messages fetched and the UIDs of those
// handed to q.Received.
func (s *Session) fetchAll(ctx context.Context, q Query, l *Listing, nothingKnown bool) ([]*imapclient.FetchMessageBuffer, *uidSet, error) {
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: q.WholeBelow > 0}
	handed := &uidSet{}
	var each func(*imapclient.FetchMessageBuffer)
	if q.Want != nil && nothingKnown {
		if q.WholeBelow > 0 {
			var err error
			each, err = s.firstContent(q, l.State.Messages, opts, handed)
			if err != nil {
				return nil, nil, opErr(ctx, "FETCH", err)
			}
		} else {
			// Every body structure at once.
			opts.BodyStructure = &imap.FetchItemBodyStructure{}
		}
	}
	meta, err := s.fetchMetaEach(allUIDs(), opts, each)
	if err != nil {
		return nil, nil, opErr(ctx, "UID FETCH", err)
	}
	for _, m := range meta {
		l.UIDs = append(l.UIDs, uint32(m.UID))
	}
	l.FlagsComplete = true
	return meta, handed, nil
}

// allUIDs is the UID set 1:*.
func allUIDs() imap.UIDSet { return imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} }

// fetchRest completes Fetch after its first round trip (l and meta): the
// body structures still missing, then the wanted parts. The messages in
// handed went to q.Received already.
func (s *Session) fetchRest(ctx context.Context, q Query, l *Listing, meta []*imapclient.FetchMessageBuffer, handed *uidSet) (*Listing, error) {
	byUID := noteFlags(l, meta, handed)
	fresh := freshUIDs(q, l, handed)
	if q.Want == nil || len(fresh) == 0 {
		return l, nil
	}
	// Small messages are fetched whole; the others by body structure.
	whole := func(u uint32) bool {
		m := byUID[u]
		return q.WholeBelow > 0 && m != nil && m.RFC822Size > 0 && m.RFC822Size <= int64(q.WholeBelow)
	}
	if err := s.fetchStructures(ctx, fresh, byUID, whole); err != nil {
		return nil, err
	}
	byPath := planParts(q, l, fresh, byUID, handed, whole)
	if err := s.fetchParts(ctx, l.Messages, byPath); err != nil {
		return nil, err
	}
	return l, nil
}

// noteFlags records in l.Deleted the \Deleted flag of the messages of
// meta (all of them when the flags are not complete, else those flagged),
// and returns by UID those not handed to q.Received.
func noteFlags(l *Listing, meta []*imapclient.FetchMessageBuffer, handed *uidSet) map[uint32]*imapclient.FetchMessageBuffer {
	byUID := map[uint32]*imapclient.FetchMessageBuffer{}
	for _, m := range meta {
		u := uint32(m.UID)
		if d := isDeleted(m.Flags); d || !l.FlagsComplete {
			l.Deleted[u] = d
		}
		if !handed.has(u) {
			byUID[u] = m
		}
	}
	return byUID
}

// freshUIDs lists the new messages of l whose content is still to
// fetch: not known, not \Deleted, not handed to q.Received.
func freshUIDs(q Query, l *Listing, handed *uidSet) []uint32 {
	var fresh []uint32
	for _, u := range l.UIDs {
		if !q.Known(u) && !l.Deleted[u] && !handed.has(u) {
			fresh = append(fresh, u)
		}
	}
	return fresh
}

// fetchStructures fetches the body structures of the fresh messages that
// are not fetched whole and came without one, into byUID.
func (s *Session) fetchStructures(ctx context.Context, fresh []uint32, byUID map[uint32]*imapclient.FetchMessageBuffer, whole func(uint32) bool) error {
	var need imap.UIDSet
	for _, u := range fresh {
		if whole(u) {
			continue
		}
		if m := byUID[u]; m == nil || m.BodyStructure == nil {
			need.AddNum(imap.UID(u))
		}
	}
	if len(need) == 0 {
		return nil
	}
	more, err := s.fetchMeta(need, &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}})
	if err != nil {
		return opErr(ctx, "UID FETCH", err)
	}
	for _, m := range more {
		if old := byUID[uint32(m.UID)]; old != nil {
			old.BodyStructure = m.BodyStructure
		} else {
			byUID[uint32(m.UID)] = m
		}
	}
	return nil
}

// planParts appends the fresh messages to l.Messages, with the wanted
// parts their body structures name, and plans the part fetches: messages
// that share a part path are fetched together. It returns, by path key,
// the indexes into l.Messages to fetch; the empty key names the messages
// to fetch whole.
func planParts(q Query, l *Listing, fresh []uint32, byUID map[uint32]*imapclient.FetchMessageBuffer, handed *uidSet, whole func(uint32) bool) map[string][]int {
	byPath := map[string][]int{} // path key → indexes into l.Messages
	var wholeIdx []int
	for _, u := range fresh {
		m := byUID[u]
		if m == nil { // expunged between the commands
			continue
		}
		var raw []byte
		if whole(u) && len(m.BodySection) > 0 {
			raw = m.FindBodySection(wholeSection(q.WholeBelow))
			if handed.has(u) {
				continue // handed to Received as it arrived
			}
		}
		if l.Messages == nil {
			l.Messages = make([]Message, 0, len(fresh))
		}
		msg := Message{UID: u, ModSeq: m.ModSeq, Flags: flagStrings(m.Flags), Raw: raw}
		if whole(u) {
			if msg.Raw == nil {
				wholeIdx = append(wholeIdx, len(l.Messages))
			}
		} else if m.BodyStructure != nil {
			msg.Parts = wantedParts(m.BodyStructure, q)
			for _, p := range msg.Parts {
				if !p.TooLarge {
					key := pathKey(p.Path)
					byPath[key] = append(byPath[key], len(l.Messages))
				}
			}
		}
		l.Messages = append(l.Messages, msg)
	}
	if len(wholeIdx) > 0 {
		byPath[""] = wholeIdx
	}
	return byPath
}

// fetchParts runs the part fetches planParts planned, path by path in
// key order, in batches.
func (s *Session) fetchParts(ctx context.Context, msgs []Message, byPath map[string][]int) error {
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		idx := byPath[key]
		for start := 0; start < len(idx); start += batch {
			chunk := idx[start:min(start+batch, len(idx))]
			if err := s.fetchBodies(msgs, chunk, key); err != nil {
				return opErr(ctx, "UID FETCH BODY", err)
			}
		}
	}
	return nil
}

// wantedParts lists the single parts of bs whose media type q wants,
// with their bodies still empty, those over q.MaxPart marked TooLarge.
func wantedParts(bs imap.BodyStructure, q Query) []Part {
	var parts []Part
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		sp, ok := part.(*imap.BodyStructureSinglePart)
		if !ok {
			return true
		}
		mt := sp.MediaType()
		if !q.Want(mt) {
			return true
		}
		parts = append(parts, Part{Path: slices.Clone(path), MediaType: mt, Params: lowerKeys(sp.Params),
			Encoding: strings.ToLower(sp.Encoding), TooLarge: sp.Size > q.MaxPart})
		return true
	})
	return parts
}

// selectFolder selects folder (read-only or not, as opts say) and records
// it; a folder that does not exist or may not be selected is ErrNotFound.
func (s *Session) selectFolder(ctx context.Context, folder string, opts *imap.SelectOptions) (*imap.SelectData, error) {
	var sel *imap.SelectData
	err := s.observe("SELECT", func() (err error) {
		sel, err = s.client.Select(folder, opts).Wait()
		return err
	})
	if err != nil {
		s.selected = ""
		if isNo(err) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, folder)
		}
		return nil, opErr(ctx, "SELECT", err)
	}
	s.selected = folder
	return sel, nil
}
