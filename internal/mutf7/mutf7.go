// Package mutf7 encodes and decodes IMAP folder names in modified UTF-7
// (RFC 3501 section 5.1.3), which servers without UTF8=ACCEPT use on the
// wire. imapstore writes NOTIFY's mailbox filter with it (go-imap writes
// that filter verbatim), and the test bed its raw commands; go-imap has
// its own for the rest.
package mutf7

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// encoding is base64 with "," for "/" and no padding (RFC 3501 section
// 5.1.3).
var encoding = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding).Strict()

// Encode encodes a folder name in modified UTF-7.
func Encode(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		raw := make([]byte, 2*len(u))
		for i, v := range u {
			raw[2*i], raw[2*i+1] = byte(v>>8), byte(v)
		}
		b.WriteByte('&')
		b.WriteString(encoding.EncodeToString(raw))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// Decode decodes a modified UTF-7 folder name strictly: printable
// ASCII only, every shift closed, no printable ASCII shifted, valid
// UTF-16.
func Decode(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		ch := s[i]
		if ch < 0x20 || ch > 0x7e {
			return "", errors.New("mutf7: byte outside printable ASCII")
		}
		if ch != '&' {
			b.WriteByte(ch)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New("mutf7: unterminated shift")
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := encoding.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", errors.New("mutf7: bad base64")
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for j := 0; j < len(u); j++ {
			var r rune
			switch {
			case utf16.IsSurrogate(rune(u[j])):
				if j+1 >= len(u) {
					return "", errors.New("mutf7: lone surrogate")
				}
				r = utf16.DecodeRune(rune(u[j]), rune(u[j+1]))
				if r == utf8.RuneError {
					return "", errors.New("mutf7: bad surrogate pair")
				}
				j++
			default:
				r = rune(u[j])
			}
			if r >= 0x20 && r <= 0x7e {
				return "", errors.New("mutf7: printable ASCII shifted")
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}
