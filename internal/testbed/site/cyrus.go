package site

import (
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Cyrus is a private Cyrus IMAP started by testbed/cyrus-up: the server
// without NOTIFY (Cyrus 3.6), whose mailboxes live in one list of the
// whole server rather than in users' homes.
type Cyrus struct{ server }

// cyrusAdmin is the test bed's Cyrus administrator (see testbed/cyrus-up):
// it creates the site's mailboxes, as a site's provisioning does.
const cyrusAdmin = "cyrusadmin"

// StartCyrus runs testbed/cyrus-up DIR (a new instance, or the one DIR
// already holds).
func StartCyrus(root, dir string) (*Cyrus, error) {
	s, err := up(root, "cyrus", dir)
	if err != nil {
		return nil, err
	}
	return &Cyrus{s}, nil
}

func (c *Cyrus) Name() string { return "Cyrus" }

// userBox is the administrator's name of user's folder ("" for INBOX).
func userBox(user, folder string) string {
	if folder == "" {
		return "user/" + user
	}
	return "user/" + user + "/" + folder
}

// adminRights are what the administrator grants itself on a Calendar
// while it writes into it (a Cyrus administrator may only look up and
// administer users' folders).
var adminRights = imap.RightSet("lrswipkxtecda")

// Populate gives c the users names as Dovecot.Populate does (INBOX,
// Sent, Drafts, Trash, Archive, a Calendar of EventsPerCalendar events
// shared with the proxy by nine users in ten) and returns the sharing
// users. The administrator creates them over IMAP, commands pipelined:
// the first templates users' events are appended, the others' copied
// from one of them (COPY, server side). The users have no password: only
// the proxy and the administrator log in.
func (c *Cyrus) Populate(names []string, now time.Time) ([]string, error) {
	cl, err := c.Dial(cyrusAdmin)
	if err != nil {
		return nil, err
	}
	defer logout(cl)
	// waitAll waits for pipelined commands, the first error first.
	type waiter interface{ Wait() error }
	waitAll := func(cmds []waiter) error {
		var first error
		for _, w := range cmds {
			if err := w.Wait(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	const batch = 200
	var shared []string
	for lo := 0; lo < len(names); lo += batch {
		var cmds []waiter
		for _, u := range names[lo:min(lo+batch, len(names))] {
			cmds = append(cmds, cl.Create(userBox(u, ""), nil))
			for _, f := range []string{"Sent", "Drafts", "Trash", "Archive", "Calendar"} {
				cmds = append(cmds, cl.Create(userBox(u, f), nil))
			}
			cmds = append(cmds, cl.SetACL(userBox(u, "Calendar"), cyrusAdmin, imap.RightModificationReplace, adminRights))
		}
		if err := waitAll(cmds); err != nil {
			return nil, fmt.Errorf("creating users from %s: %w", names[lo], err)
		}
	}
	tpls := min(templates, len(names))
	for seed, u := range names[:tpls] {
		if err := appendTemplate(cl, userBox(u, "Calendar"), seed, now); err != nil {
			return nil, err
		}
	}
	for seed, tpl := range names[:tpls] {
		if _, err := cl.Select(userBox(tpl, "Calendar"), &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return nil, fmt.Errorf("EXAMINE %s's Calendar: %w", tpl, err)
		}
		var all imap.SeqSet
		all.AddRange(1, 0) // 1:*
		var cmds []waiter
		for i := tpls + seed; i < len(names); i += tpls {
			cmd := cl.Copy(all, userBox(names[i], "Calendar"))
			cmds = append(cmds, waitFunc(func() error { _, err := cmd.Wait(); return err }))
		}
		if err := waitAll(cmds); err != nil {
			return nil, fmt.Errorf("copying %s's Calendar: %w", tpl, err)
		}
		if err := cl.Unselect().Wait(); err != nil {
			return nil, err
		}
	}
	for lo := 0; lo < len(names); lo += batch {
		var cmds []waiter
		for i := lo; i < min(lo+batch, len(names)); i++ {
			u := names[i]
			box := userBox(u, "Calendar")
			cmds = append(cmds, dropACL(cl, box, cyrusAdmin))
			if i%10 != 9 {
				cmds = append(cmds, cl.SetACL(box, imap.RightsIdentifier(Proxy), imap.RightModificationReplace, imap.RightSet("lr")))
				shared = append(shared, u)
			}
		}
		if err := waitAll(cmds); err != nil {
			return nil, fmt.Errorf("ACLs from %s: %w", names[lo], err)
		}
	}
	return shared, nil
}

// dropACL removes who from box's ACL: a SETACL of no rights, which Cyrus
// takes as DELETEACL (go-imap has no DELETEACL).
func dropACL(cl *imapclient.Client, box, who string) *imapclient.SetACLCommand {
	return cl.SetACL(box, imap.RightsIdentifier(who), imap.RightModificationReplace, imap.RightSet(""))
}

// waitFunc makes a func a waiter.
type waitFunc func() error

func (f waitFunc) Wait() error { return f() }

// Append appends one event to owner's Calendar as the administrator,
// who grants itself the rights for the while.
func (c *Cyrus) Append(owner, uid string, start time.Time, dur time.Duration) error {
	cl, err := c.Dial(cyrusAdmin)
	if err != nil {
		return err
	}
	defer logout(cl)
	box := userBox(owner, "Calendar")
	if err := cl.SetACL(box, cyrusAdmin, imap.RightModificationReplace, adminRights).Wait(); err != nil {
		return err
	}
	return errors.Join(AppendEvent(cl, box, uid, start, dur, ""), dropACL(cl, box, cyrusAdmin).Wait())
}

// WarmUp lists the other users' folders with STATUS as the proxy, as
// fbpub's discovery does, and returns how long it took and how many
// folders it saw.
func (c *Cyrus) WarmUp() (time.Duration, int, error) { return c.warmUp("Other Users/*") }
