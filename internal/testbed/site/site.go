// Package site makes a Dovecot or a Cyrus that looks like a real site's:
// thousands of users, each with INBOX, Sent, Drafts, Trash, Archive and a
// Calendar of events that most of them share with fbpub's proxy login. On
// Dovecot the users' homes are copied on disk from a few templates made
// over IMAP, so that thousands of users take seconds; on Cyrus, whose
// mailboxes are entries in one list of the server, the administrator
// creates them over IMAP, pipelined (about a minute for 5,000).
// bench/scale measures fbpub against them.
//
// It is test-bed code, like package testbed: it starts its server with
// testbed/dovecot-up or testbed/cyrus-up and writes fixtures through
// go-imap.
package site

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Proxy is the login fbpub uses; dovecot-up creates it with the password
// "fbproxy-pw" (every test bed user's password is "<user>-pw").
const Proxy = "fbproxy"

func Password(user string) string { return user + "-pw" }

// dovecotConf is added to the test bed's configuration.
const dovecotConf = `service imap {
  vsz_limit = 2G
}`

// Dovecot is a private Dovecot started by testbed/dovecot-up.
type Dovecot struct{ server }

// Start runs testbed/dovecot-up DIR (a new instance, or the one
// DIR already holds, on its port and with its data).
func Start(root, dir string) (*Dovecot, error) {
	// Dovecot's default vsz_limit (256 MB) is too small for a LIST of the
	// shared namespace with STATUS at 5,000 sharers (the process dies Out
	// of memory): a site that size raises it.
	// FBPUB_SITE_DOVECOT_CONF adds settings of a run's own (say, a higher
	// mail_max_userip_connections for more NOTIFY connections).
	conf := dovecotConf
	if extra := os.Getenv("FBPUB_SITE_DOVECOT_CONF"); extra != "" {
		conf += "\n" + extra
	}
	s, err := up(root, "dovecot", dir, "FBPUB_TESTBED_DOVECOT_CONF="+conf)
	if err != nil {
		return nil, err
	}
	return &Dovecot{s}, nil
}

func (d *Dovecot) Name() string { return "Dovecot" }

// Append appends one event to owner's Calendar, as the owner.
func (d *Dovecot) Append(owner, uid string, start time.Time, dur time.Duration) error {
	c, err := d.Dial(owner)
	if err != nil {
		return err
	}
	defer logout(c)
	return AppendEvent(c, "Calendar", uid, start, dur, "")
}

// templates is how many distinct mailboxes are made over IMAP; every
// other user gets a copy of one of them, on disk.
const templates = 10

// EventsPerCalendar is the number of events in every user's Calendar, all
// within fbpub's default window (7 days ago to 90 days ahead).
const EventsPerCalendar = 30

// Populate gives d the users names (u00000…), each with INBOX, Sent,
// Drafts, Trash, Archive and a Calendar of EventsPerCalendar events; every
// tenth user (i%10 == 9) does not share the Calendar, the others grant the
// the proxy "lr". It returns the sharing users.
//
// A site's directory is not grown over IMAP: templates mailboxes are made
// with IMAP commands (so that Dovecot writes its own files), then Dovecot
// is stopped, every user's home is written as a copy of a template's,
// the passwd-file and the shared-mailboxes dictionary are written, and
// Dovecot is started again on the same port. Dovecot reads the copied
// indexes as its own. It returns the instance as started again.
func (d *Dovecot) Populate(names []string, now time.Time) (*Dovecot, []string, error) {
	tpl := make([]string, templates)
	for i := range tpl {
		tpl[i] = fmt.Sprintf("tpl%d", i)
	}
	if err := d.addUsers(tpl); err != nil {
		return nil, nil, err
	}
	var wg sync.WaitGroup
	errs := make([]error, templates)
	for i, u := range tpl {
		wg.Go(func() { errs[i] = d.makeTemplate(u, i, now) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	if err := d.Stop(true); err != nil {
		return nil, nil, err
	}

	// Read each template home once.
	type file struct {
		rel   string
		mode  fs.FileMode
		mtime time.Time
		dir   bool
		data  []byte
	}
	homes := make([][]file, templates)
	var uid, gid int
	for i, u := range tpl {
		base := filepath.Join(d.Dir, "home", u)
		err := filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(base, p)
			info, err := e.Info()
			if err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			uid, gid = int(st.Uid), int(st.Gid)
			f := file{rel: rel, mode: info.Mode().Perm(), mtime: info.ModTime(), dir: e.IsDir()}
			if !f.dir {
				if f.data, err = os.ReadFile(p); err != nil {
					return err
				}
			}
			homes[i] = append(homes[i], f)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if err := os.RemoveAll(base); err != nil {
			return nil, nil, err
		}
	}
	shared := make([]string, 0, len(names))
	for i, n := range names {
		if i%10 != 9 {
			shared = append(shared, n)
		}
	}
	work := make(chan int)
	copyErrs := make(chan error, 4)
	var cwg sync.WaitGroup
	for range 4 {
		cwg.Go(func() {
			for i := range work {
				if err := func() error {
					home := filepath.Join(d.Dir, "home", names[i])
					for _, f := range homes[i%templates] {
						p := filepath.Join(home, f.rel)
						if i%10 == 9 && (filepath.Base(p) == "dovecot-acl" || filepath.Base(p) == "dovecot-acl-list") {
							continue // not shared: the default ACL, the owner's alone
						}
						if f.dir {
							if err := os.Mkdir(p, f.mode); err != nil {
								return err
							}
						} else if err := os.WriteFile(p, f.data, f.mode); err != nil {
							return err
						}
						if err := os.Chown(p, uid, gid); err != nil {
							return err
						}
					}
					// The template's times, directories last: Dovecot's
					// list of ACL'd mailboxes (dovecot-acl-list) holds each
					// dovecot-acl's mtime, and a mismatch makes it rebuild
					// the shared-mailboxes dictionary, a whole rewrite of
					// the file per user: quadratic in the directory.
					tpl := homes[i%templates]
					for k := len(tpl) - 1; k >= 0; k-- {
						f := tpl[k]
						p := filepath.Join(home, f.rel)
						if err := os.Chtimes(p, f.mtime, f.mtime); err != nil && !(i%10 == 9 && errors.Is(err, fs.ErrNotExist)) {
							return err
						}
					}
					return nil
				}(); err != nil {
					copyErrs <- err
					return
				}
			}
		})
	}
	var copyErr error
feed:
	for i := range names {
		select {
		case work <- i:
		case copyErr = <-copyErrs:
			break feed
		}
	}
	close(work)
	cwg.Wait()
	if copyErr == nil {
		select {
		case copyErr = <-copyErrs:
		default:
		}
	}
	if copyErr != nil {
		return nil, nil, fmt.Errorf("copying homes: %w", copyErr)
	}

	// The dictionary of who shares with whom (acl_shared_dict): a key line
	// and a value line per entry, as Dovecot's file dict writes it.
	var dict bytes.Buffer
	for _, n := range shared {
		fmt.Fprintf(&dict, "shared/shared-boxes/user/%s/%s\n1\n", Proxy, n)
	}
	dictPath := filepath.Join(d.Dir, "shared", "shared-mailboxes.db")
	if err := os.WriteFile(dictPath, dict.Bytes(), 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.Chown(dictPath, uid, gid); err != nil {
		return nil, nil, err
	}
	if err := d.setUsers(names, tpl); err != nil {
		return nil, nil, err
	}
	nd, err := Start(d.root, d.Dir)
	if err != nil {
		return nil, nil, err
	}
	return nd, shared, nil
}

// addUsers appends users to the passwd-file (the uid and gid of its first
// line) and waits until Dovecot takes the last of them.
func (d *Dovecot) addUsers(users []string) error {
	if err := d.rewriteUsers(users, nil); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := d.Dial(users[len(users)-1])
		if err == nil {
			logout(c)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Dovecot did not take the new users: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// setUsers writes add into the passwd-file and removes drop from it.
func (d *Dovecot) setUsers(add, drop []string) error { return d.rewriteUsers(add, drop) }

func (d *Dovecot) rewriteUsers(add, drop []string) error {
	path := filepath.Join(d.Dir, "users")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Split(first, ":")
	if len(fields) < 4 {
		return fmt.Errorf("unexpected passwd-file line %q", first)
	}
	dropped := map[string]bool{}
	for _, u := range drop {
		dropped[u] = true
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), ":")
		if !dropped[name] {
			out.WriteString(sc.Text() + "\n")
		}
	}
	for _, u := range add {
		fmt.Fprintf(&out, "%s:{PLAIN}%s:%s:%s::%s::\n", u, Password(u), fields[2], fields[3], filepath.Join(d.Dir, "home", u))
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, out.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// makeTemplate gives user the folders and the shared Calendar, over IMAP.
func (d *Dovecot) makeTemplate(user string, seed int, now time.Time) error {
	c, err := d.Dial(user)
	if err != nil {
		return err
	}
	defer logout(c)
	for _, f := range []string{"Sent", "Drafts", "Trash", "Archive", "Calendar"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			return fmt.Errorf("CREATE %s as %s: %w", f, user, err)
		}
	}
	if err := c.SetACL("Calendar", imap.RightsIdentifier(Proxy), imap.RightModificationReplace, imap.RightSet("lr")).Wait(); err != nil {
		return fmt.Errorf("SETACL as %s: %w", user, err)
	}
	return appendTemplate(c, "Calendar", seed, now)
}

// appendTemplate appends the EventsPerCalendar events of template seed
// to folder: spread over -6 … +86 days from now, in working hours, 30 to
// 120 minutes long, every fifth a weekly series of four.
func appendTemplate(c *imapclient.Client, folder string, seed int, now time.Time) error {
	day := now.UTC().Truncate(24 * time.Hour)
	for k := range EventsPerCalendar {
		start := day.AddDate(0, 0, -6+(k*3+seed)%92).Add(time.Duration(8+(k+seed)%9) * time.Hour)
		dur := time.Duration(30*(1+(k+seed)%4)) * time.Minute
		rrule := ""
		if k%5 == 0 {
			rrule = "RRULE:FREQ=WEEKLY;COUNT=4\r\n"
		}
		uid := fmt.Sprintf("scale-%d-%d@bench.fbpub", seed, k)
		if err := AppendEvent(c, folder, uid, start, dur, rrule); err != nil {
			return fmt.Errorf("APPEND to %s: %w", folder, err)
		}
	}
	return nil
}

// AppendEvent appends one event, as a Kolab-style message of its own.
func AppendEvent(c *imapclient.Client, folder, uid string, start time.Time, dur time.Duration, rrule string) error {
	const f = "20060102T150405Z"
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub//bench scale//EN\r\nBEGIN:VEVENT\r\n" +
		"UID:" + uid + "\r\nDTSTAMP:" + start.Format(f) + "\r\nDTSTART:" + start.Format(f) + "\r\n" +
		"DTEND:" + start.Add(dur).Format(f) + "\r\n" + rrule + "SUMMARY:Meeting " + uid + "\r\n" +
		"LOCATION:Room 4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	msg := "From: bench@example.org\r\nSubject: " + uid + "\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/calendar; charset=utf-8; method=PUBLISH\r\n\r\n" + ics
	cmd := c.Append(folder, int64(len(msg)), nil)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// WarmUp lists the shared namespace with STATUS as the proxy, as fbpub's
// discovery does, and returns how long it took and how many folders it saw.
func (d *Dovecot) WarmUp() (time.Duration, int, error) { return d.warmUp("shared/*") }
