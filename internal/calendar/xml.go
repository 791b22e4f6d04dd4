package calendar

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

// node is a small XML tree: enough for Kolab's formats, bounded in size.
type node struct {
	name     string // local name, lower case
	attrs    map[string]string
	text     string
	children []*node
	// buf gathers text while the element is open: a comment or a
	// processing instruction splits it into many pieces, which adding to
	// text one by one would copy again each time (quadratic).
	buf []byte
}

const (
	maxXMLDepth = 32
	maxXMLNodes = 200000
)

// parseXML reads an XML document into a tree. It refuses DTDs (no entity
// expansion) and bounds depth and size. An encoding declared other than
// UTF-8 is converted as a MIME charset is (ToUTF8; one it does not know is
// ErrCharset). Text that declares none is UTF-8, where an invalid octet
// costs its character, not the document.
func parseXML(data []byte) (*node, error) {
	root, declared, err := parseXMLText(data)
	if errors.Is(err, ErrMalformed) && !declared && !utf8.Valid(data) {
		root, _, err = parseXMLText(bytes.ToValidUTF8(data, []byte("\uFFFD")))
	}
	return root, err
}

// parseXMLText is parseXML's one pass; declared reports whether the text
// declared an encoding other than UTF-8.
func parseXMLText(data []byte) (_ *node, declared bool, _ error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = false
	var charsetErr error
	dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		declared = true
		b, err := io.ReadAll(io.LimitReader(r, MaxPayload))
		if err != nil {
			return nil, err
		}
		b, charsetErr = ToUTF8(charset, b)
		return bytes.NewReader(b), charsetErr
	}
	root := &node{}
	stack := []*node{root}
	count := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if charsetErr != nil {
				return nil, declared, charsetErr
			}
			return nil, declared, ErrMalformed
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > maxXMLNodes || len(stack) > maxXMLDepth {
				return nil, declared, ErrTooLarge
			}
			n := &node{name: strings.ToLower(t.Name.Local)}
			for _, a := range t.Attr {
				if n.attrs == nil {
					n.attrs = map[string]string{}
				}
				n.attrs[strings.ToLower(a.Name.Local)] = a.Value
			}
			top := stack[len(stack)-1]
			top.children = append(top.children, n)
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) > 1 {
				stack[len(stack)-1].close()
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			top := stack[len(stack)-1]
			if len(top.buf) < MaxPayload {
				top.buf = append(top.buf, t...)
			}
		case xml.Directive:
			return nil, declared, errors.Join(ErrMalformed, errors.New("DTD not allowed"))
		}
	}
	for _, n := range stack[1:] { // elements left open
		n.close()
	}
	if len(root.children) != 1 {
		return nil, declared, ErrMalformed
	}
	return root.children[0], declared, nil
}

// close makes the text gathered for n its text.
func (n *node) close() {
	n.text, n.buf = string(n.buf), nil
}

// child returns the first child named name, or nil.
func (n *node) child(name string) *node {
	if n == nil {
		return nil
	}
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// all returns the children named name.
func (n *node) all(name string) []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, c := range n.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// val is the trimmed text of the child named name ("" if absent).
func (n *node) val(name string) string {
	if c := n.child(name); c != nil {
		return strings.TrimSpace(c.text)
	}
	return ""
}

// kids returns n's children; none for a nil node.
func (n *node) kids() []*node {
	if n == nil {
		return nil
	}
	return n.children
}
