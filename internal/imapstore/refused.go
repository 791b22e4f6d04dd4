package imapstore

import (
	"errors"

	"github.com/emersion/go-imap/v2"
)

// Refused reports whether err holds the server's own answer to a command
// (a tagged NO or BAD): the server is there and said no. Any other error
// of a Session's method is the conversation failing (a cut connection, a
// timeout, a server that stopped answering), which a retry may cure.
func Refused(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}
