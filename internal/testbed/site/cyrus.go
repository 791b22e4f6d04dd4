package site

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Cyrus is a private Cyrus IMAP started by testbed/cyrus-up: the server
// without NOTIFY (Cyrus 3.6), whose mailboxes live in one list of the
// whole server rather than in users' homes.
type Cyrus struct {
	root string // the module root, which holds testbed/
	Dir  string // DIR of cyrus-up
	Addr string // 127.0.0.1:PORT
}

// cyrusAdmin is the test bed's Cyrus administrator (see testbed/cyrus-up):
// it creates the site's mailboxes, as a site's provisioning does.
const cyrusAdmin = "cyrusadmin"

// StartCyrus runs testbed/cyrus-up DIR (a new instance, or the one DIR
// already holds).
func StartCyrus(root, dir string) (*Cyrus, error) {
	cmd := exec.Command(filepath.Join(root, "testbed", "cyrus-up"), dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("cyrus-up: %w", err)
	}
	c := &Cyrus{root: root}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_ADDR="); ok {
			c.Addr = v
		}
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_DIR="); ok {
			c.Dir = v
		}
	}
	if c.Addr == "" || c.Dir == "" {
		return nil, fmt.Errorf("cyrus-up: unexpected output %q", out)
	}
	return c, nil
}

func (c *Cyrus) Name() string    { return "Cyrus" }
func (c *Cyrus) Address() string { return c.Addr }

// Stop stops the instance; with keep, DIR stays (and can be started again).
func (c *Cyrus) Stop(keep bool) error {
	args := []string{c.Dir}
	if keep {
		args = []string{"--keep", c.Dir}
	}
	cmd := exec.Command(filepath.Join(c.root, "testbed", "cyrus-down"), args...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// MasterPID is the pid of Cyrus' master, whose children are its imapd
// processes.
func (c *Cyrus) MasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "run", "master.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (c *Cyrus) dial(user string) (*imapclient.Client, error) {
	cl, err := imapclient.DialInsecure(c.Addr, nil)
	if err != nil {
		return nil, err
	}
	if err := cl.Login(user, Password(user)).Wait(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	return cl, nil
}

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
	cl, err := c.dial(cyrusAdmin)
	if err != nil {
		return nil, err
	}
	defer func() {
		cl.Logout().Wait()
		cl.Close()
	}()
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
	day := now.UTC().Truncate(24 * time.Hour)
	for seed, u := range names[:tpls] {
		for k := range EventsPerCalendar {
			// As Dovecot's templates (makeTemplate).
			start := day.AddDate(0, 0, -6+(k*3+seed)%92).Add(time.Duration(8+(k+seed)%9) * time.Hour)
			dur := time.Duration(30*(1+(k+seed)%4)) * time.Minute
			rrule := ""
			if k%5 == 0 {
				rrule = "RRULE:FREQ=WEEKLY;COUNT=4\r\n"
			}
			if err := AppendEvent(cl, userBox(u, "Calendar"), fmt.Sprintf("scale-%d-%d@bench.fbpub", seed, k), start, dur, rrule); err != nil {
				return nil, fmt.Errorf("APPEND to %s: %w", u, err)
			}
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
	cl, err := c.dial(cyrusAdmin)
	if err != nil {
		return err
	}
	defer func() {
		cl.Logout().Wait()
		cl.Close()
	}()
	box := userBox(owner, "Calendar")
	if err := cl.SetACL(box, cyrusAdmin, imap.RightModificationReplace, adminRights).Wait(); err != nil {
		return err
	}
	return errors.Join(AppendEvent(cl, box, uid, start, dur, ""), dropACL(cl, box, cyrusAdmin).Wait())
}

// WarmUp lists the other users' folders with STATUS as the proxy, as
// fbpub's discovery does, and returns how long it took and how many
// folders it saw.
func (c *Cyrus) WarmUp() (time.Duration, int, error) {
	cl, err := c.dial(Proxy)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		cl.Logout().Wait()
		cl.Close()
	}()
	t := time.Now()
	boxes, err := cl.List("", "Other Users/*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true,
	}}).Collect()
	if err != nil {
		return 0, 0, fmt.Errorf("LIST Other Users/* as %s: %w", Proxy, err)
	}
	return time.Since(t), len(boxes), nil
}
