package imapstore

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// CheckLogin proves a requester's password: it logs in as opts.User with
// opts.Password on a connection of its own, learns how the server spells
// the identity it authenticated, and logs out. A refused login is
// ErrAuth; any other error says the server could not be asked.
//
// Servers may fold the case of a login (Dovecot's
// auth_username_format=%Lu, Cyrus' username_tolower): "BOB" logs in as
// "bob". The server's spelling is read from the ACL of the user's own
// INBOX (GETACL INBOX), where both Dovecot (its owner entry, printed under
// the user's name) and Cyrus (the owner's entry) name the user: user is
// the one identifier there equal to opts.User under case folding. It is
// "" when that cannot be learned: no ACL extension, GETACL refused, no
// such entry, or more than one. A caller must then treat the name as
// unconfirmed (acl.Requester.Confirmed).
//
// When client is valid, it is sent before LOGIN as the ID field
// "x-originating-ip" (RFC 2971), so that a server which trusts fbpub's
// address (Dovecot's login_trusted_networks) charges failed logins and
// logs them to the requester's address instead of fbpub's. A server
// without ID, or one that refuses it, is logged in to all the same.
func CheckLogin(ctx context.Context, opts Options, client netip.Addr) (user string, err error) {
	var mu sync.Mutex
	var entries []string // identifiers of the INBOX ACL; guarded by mu
	onData := func(r *response) {
		if r.kind != "ACL" || r.lexErr != nil || len(r.fields) < 1 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// ACL mailbox (identifier rights)*
		for i := 1; i+1 < len(r.fields); i += 2 {
			entries = append(entries, r.fields[i].s)
		}
	}
	var before func(*notifyConn) error
	if client.IsValid() {
		before = func(c *notifyConn) error {
			if !c.knowsCaps() {
				if _, err := c.exec("", atomArg("CAPABILITY")); err != nil {
					return fmt.Errorf("imapstore: CAPABILITY at %s: %w", opts.Addr, opErrCtx(ctx, err))
				}
			}
			if !c.has("ID") {
				return nil
			}
			_, err := c.exec("ID", atomArg("ID"), listArg(
				stringArg("name"), stringArg("fbpub"),
				stringArg("x-originating-ip"), stringArg(client.Unmap().String())))
			if err != nil && !isNo(err) {
				return fmt.Errorf("imapstore: ID at %s: %w", opts.Addr, opErrCtx(ctx, err))
			}
			return nil
		}
	}
	c, err := dialOwn(ctx, &opts, onData, before)
	if err != nil {
		return "", err
	}
	defer c.close()
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	if !c.has("ACL") {
		return "", nil
	}
	if _, err := c.exec("GETACL", atomArg("GETACL"), stringArg("INBOX")); err != nil {
		if isNo(err) {
			return "", nil
		}
		return "", fmt.Errorf("imapstore: GETACL at %s: %w", opts.Addr, opErrCtx(ctx, err))
	}
	mu.Lock()
	defer mu.Unlock()
	return spelling(entries, opts.User), nil
}

// spelling returns the one identifier of ids equal to user under case
// folding, or "" if there is none or more than one.
func spelling(ids []string, user string) string {
	found := ""
	for _, id := range ids {
		if !strings.EqualFold(id, user) || id == found {
			continue
		}
		if found != "" {
			return ""
		}
		found = id
	}
	return found
}
