//go:build !linux

package imapstore

import "net"

// quickAck is Linux's TCP_QUICKACK (see quickack_linux.go); elsewhere c
// as it is.
func quickAck(c net.Conn) net.Conn { return c }
