package imapstore

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

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

// lowerKeys returns m with its keys in lower case: m itself when they
// are, as go-imap writes the parameters of a body structure, else a copy.
// The parts that share m only read it.
func lowerKeys(m map[string]string) map[string]string {
	for k := range m {
		if k != strings.ToLower(k) {
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[strings.ToLower(k)] = v
			}
			return out
		}
	}
	return m
}
