package imapstore

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

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

	all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}} // 1:*
	var meta []*imapclient.FetchMessageBuffer
	if q.ChangedSince > 0 && s.features.CondStore {
		// Flags of what changed only (new messages among them), then
		// every UID, for expunges — unless the count shows there were
		// none: the messages known before plus the new ones are then
		// exactly the folder (an expunge lowers the count; a message
		// appended and expunged in between is in neither).
		meta, err = s.fetchMeta(all, &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: q.ChangedSince, RFC822Size: q.WholeBelow > 0})
		if err != nil {
			return nil, nil, nil, opErr(ctx, "UID FETCH", err)
		}
		var added []uint32
		for _, m := range meta {
			if !q.Known(uint32(m.UID)) {
				added = append(added, uint32(m.UID))
			}
		}
		if q.Previous != nil && uint32(len(q.Previous)+len(added)) == sel.NumMessages {
			l.UIDs = append(slices.Clone(q.Previous), added...)
		} else {
			var sd *imap.SearchData
			err := s.observe("UID SEARCH", func() (err error) {
				sd, err = s.client.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
				return err
			})
			if err != nil {
				return nil, nil, nil, opErr(ctx, "UID SEARCH", err)
			}
			for _, u := range sd.AllUIDs() {
				l.UIDs = append(l.UIDs, uint32(u))
			}
		}
		slices.Sort(l.UIDs)
		return l, meta, nil, nil
	}
	opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: q.WholeBelow > 0}
	handed := &uidSet{}
	var each func(*imapclient.FetchMessageBuffer)
	if q.Want != nil && nothingKnown {
		if q.WholeBelow > 0 {
			each, err = s.firstContent(q, sel.NumMessages, opts, handed)
			if err != nil {
				return nil, nil, nil, opErr(ctx, "FETCH", err)
			}
		} else {
			// Every body structure at once.
			opts.BodyStructure = &imap.FetchItemBodyStructure{}
		}
	}
	meta, err = s.fetchMetaEach(all, opts, each)
	if err != nil {
		return nil, nil, nil, opErr(ctx, "UID FETCH", err)
	}
	for _, m := range meta {
		l.UIDs = append(l.UIDs, uint32(m.UID))
	}
	l.FlagsComplete = true
	return l, meta, handed, nil
}

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
	return true
}

// fetchRest completes Fetch after its first round trip (l and meta): the
// body structures still missing, then the wanted parts. The messages in
// handed went to q.Received already.
func (s *Session) fetchRest(ctx context.Context, q Query, l *Listing, meta []*imapclient.FetchMessageBuffer, handed *uidSet) (*Listing, error) {
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

	// New messages: body structures (unless already fetched), then parts.
	var fresh []uint32
	for _, u := range l.UIDs {
		if !q.Known(u) && !l.Deleted[u] && !handed.has(u) {
			fresh = append(fresh, u)
		}
	}
	if q.Want == nil || len(fresh) == 0 {
		return l, nil
	}
	// Small messages are fetched whole; the others by body structure.
	whole := func(u uint32) bool {
		m := byUID[u]
		return q.WholeBelow > 0 && m != nil && m.RFC822Size > 0 && m.RFC822Size <= int64(q.WholeBelow)
	}
	var need imap.UIDSet
	var wholeIdx []int
	for _, u := range fresh {
		if whole(u) {
			continue
		}
		if m := byUID[u]; m == nil || m.BodyStructure == nil {
			need.AddNum(imap.UID(u))
		}
	}
	if len(need) > 0 {
		more, err := s.fetchMeta(need, &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}})
		if err != nil {
			return nil, opErr(ctx, "UID FETCH", err)
		}
		for _, m := range more {
			if old := byUID[uint32(m.UID)]; old != nil {
				old.BodyStructure = m.BodyStructure
			} else {
				byUID[uint32(m.UID)] = m
			}
		}
	}

	// Plan the part fetches: messages that share a part path are fetched
	// together, in batches.
	byPath := map[string][]int{} // path key → indexes into l.Messages
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
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		idx := byPath[key]
		for start := 0; start < len(idx); start += batch {
			chunk := idx[start:min(start+batch, len(idx))]
			if err := s.fetchBodies(l.Messages, chunk, key); err != nil {
				return nil, opErr(ctx, "UID FETCH BODY", err)
			}
		}
	}
	return l, nil
}

// wantedParts lists the single parts of bs whose media type q wants,
// with their bodies still empty, those over q.MaxPart marked TooLarge.
func wantedParts(bs imap.BodyStructure, q Query) []Part {
	var parts []Part
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		sp, ok := part.(*imap.BodyStructureSinglePart)
		if !ok || !q.Want(sp.MediaType()) {
			return true
		}
		parts = append(parts, Part{Path: slices.Clone(path), MediaType: sp.MediaType(), Params: lowerKeys(sp.Params),
			Encoding: strings.ToLower(sp.Encoding), TooLarge: sp.Size > q.MaxPart})
		return true
	})
	return parts
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

// wholeSection is BODY.PEEK[]<0.n>: the first n octets of a message.
func wholeSection(n uint32) *imap.FetchItemBodySection {
	return &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: int64(n)}}
}

func isDeleted(flags []imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), string(imap.FlagDeleted)) })
}

func flagStrings(flags []imap.Flag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, string(f))
	}
	return out
}

// fetchEach runs one UID FETCH, calling fn with every message as it
// arrives, and moves the connection's deadline on with each.
func (s *Session) fetchEach(set imap.UIDSet, opts *imap.FetchOptions, fn func(*imapclient.FetchMessageBuffer)) error {
	return s.observe("UID FETCH", func() error {
		cmd := s.client.Fetch(set, opts)
		defer cmd.Close()
		for m := cmd.Next(); m != nil; m = cmd.Next() {
			buf, err := collect(m)
			if err != nil {
				return err
			}
			s.progress()
			fn(buf)
		}
		return cmd.Close()
	})
}

// collect is imapclient's FetchMessageData.Collect for the items fbpub
// asks for, reading each literal into a buffer of its announced size at
// once instead of growing one (io.ReadAll), which was a measurable share
// of reading a folder.
func collect(m *imapclient.FetchMessageData) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{SeqNum: m.SeqNum}
	for item := m.Next(); item != nil; item = m.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataBodySection:
			b, err := readLiteral(item.Literal)
			if err != nil {
				return buf, err
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: item.Section, Bytes: b})
		case imapclient.FetchItemDataBinarySection:
			b, err := readLiteral(item.Literal)
			if err != nil {
				return buf, err
			}
			buf.BinarySection = append(buf.BinarySection, imapclient.FetchBinarySectionBuffer{Section: item.Section, Bytes: b})
		case imapclient.FetchItemDataFlags:
			buf.Flags = item.Flags
		case imapclient.FetchItemDataRFC822Size:
			buf.RFC822Size = item.Size
		case imapclient.FetchItemDataUID:
			buf.UID = item.UID
		case imapclient.FetchItemDataBodyStructure:
			buf.BodyStructure = item.BodyStructure
		case imapclient.FetchItemDataModSeq:
			buf.ModSeq = item.ModSeq
		case imapclient.FetchItemDataInternalDate:
			buf.InternalDate = item.Time
		case imapclient.FetchItemDataEnvelope:
			buf.Envelope = item.Envelope
		case imapclient.FetchItemDataBinarySectionSize:
			buf.BinarySectionSize = append(buf.BinarySectionSize, item)
		}
	}
	return buf, nil
}

// readLiteral reads a literal whole; nil stays nil (NIL).
func readLiteral(lit imap.LiteralReader) ([]byte, error) {
	if lit == nil {
		return nil, nil
	}
	if n := lit.Size(); n >= 0 && n <= 64<<20 {
		b := make([]byte, n)
		_, err := io.ReadFull(lit, b)
		return b, err
	}
	return io.ReadAll(lit)
}

func (s *Session) fetchMeta(set imap.UIDSet, opts *imap.FetchOptions) ([]*imapclient.FetchMessageBuffer, error) {
	return s.fetchMetaEach(set, opts, nil)
}

// fetchMetaEach is fetchMeta calling each, when set, with every message
// as it arrives.
func (s *Session) fetchMetaEach(set imap.UIDSet, opts *imap.FetchOptions, each func(*imapclient.FetchMessageBuffer)) ([]*imapclient.FetchMessageBuffer, error) {
	var msgs []*imapclient.FetchMessageBuffer
	err := s.fetchEach(set, opts, func(buf *imapclient.FetchMessageBuffer) {
		msgs = append(msgs, buf)
		if each != nil {
			each(buf)
		}
	})
	slices.SortFunc(msgs, uidOrder)
	return msgs, err
}

func uidOrder(a, b *imapclient.FetchMessageBuffer) int { return cmp.Compare(a.UID, b.UID) }

// fetchBodies fetches the part at path of the messages at idx and stores
// each body in its Part; the empty key fetches whole messages into Raw.
func (s *Session) fetchBodies(msgs []Message, idx []int, key string) error {
	path := parseKey(key)
	var set imap.UIDSet
	byUID := map[imap.UID]*Message{}
	for _, i := range idx {
		set.AddNum(imap.UID(msgs[i].UID))
		byUID[imap.UID(msgs[i].UID)] = &msgs[i]
	}
	section := &imap.FetchItemBodySection{Part: path, Peek: true}
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}
	return s.fetchEach(set, opts, func(buf *imapclient.FetchMessageBuffer) {
		msg := byUID[buf.UID]
		if msg == nil {
			return
		}
		body := buf.FindBodySection(section)
		if key == "" {
			msg.Raw = body
			return
		}
		for i := range msg.Parts {
			if pathKey(msg.Parts[i].Path) == key {
				msg.Parts[i].Body = body
			}
		}
	})
}

func pathKey(p []int) string {
	var b strings.Builder
	for i, n := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}

func parseKey(k string) []int {
	if k == "" {
		return nil // the whole message
	}
	var out []int
	for _, s := range strings.Split(k, ".") {
		var n int
		fmt.Sscan(s, &n)
		out = append(out, n)
	}
	return out
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
