package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// apply carries the plan out: log copies, then appends, then removals,
// so that an interruption anywhere loses nothing.
//
// logReadable says whether the uploader may read the log: a delegate who
// may only add to it (i without r) adds every copy, without looking for
// one made before.
func (s *Service) apply(ctx context.Context, sess *imapstore.Session, p plan, folder, logFolder string, logExists, logReadable bool, user string, kolab bool) error {
	if len(p.toLog) > 0 {
		if !logExists {
			if err := sess.CreateFolder(ctx, logFolder); err != nil {
				if !imapstore.Refused(err) {
					return err
				}
				return &DeniedError{Right: acl.CreateMailbox, Folder: s.opts.LogFolder, Why: "create the deleted-events log"}
			}
		}
		// A copy the log holds already (left by an interrupted earlier
		// attempt, or by a racing upload) is not made again.
		var already map[string]*stored
		if logReadable {
			var err error
			if already, err = s.read(ctx, sess, logFolder); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		now := s.opts.Now().UTC().Format(time.RFC3339)
		for _, rm := range p.toLog {
			if d := already[rm.uid]; d != nil && slices.ContainsFunc(d.copies, func(c *held) bool { return c.hash == rm.hash }) {
				continue
			}
			msg := message(rm.obj, user, s.opts.Now(), "X-Fbpub-Deleted: "+now+"; by="+headerSafe(user)+"; reason="+rm.why, false)
			if err := sess.AppendMessage(ctx, logFolder, msg); err != nil {
				return err
			}
		}
	}
	for _, in := range p.appends {
		if err := sess.AppendMessage(ctx, folder, message(in.obj, user, s.opts.Now(), "", kolab)); err != nil {
			return err
		}
	}
	return sess.RemoveMessages(ctx, folder, p.remove)
}

// message builds the message that holds one object, with the object's UID
// as subject as Kolab clients do: a text/calendar message, or with kolab a
// Kolab format 3 object (multipart/mixed, an explanation for mail clients,
// and the event as xCal in an application/calendar+xml attachment).
func message(o *calendar.Object, user string, now time.Time, extra string, kolab bool) []byte {
	cal := ical.NewComponent(ical.CompCalendar)
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//fbpub//upload//EN")
	cal.Children = append(cal.Children, calendar.UsedTimezones([]*calendar.Object{o})...)
	cal.Children = append(cal.Children, o.Events()...)
	body, _ := calendar.Marshal(cal)
	var b bytes.Buffer
	var id [12]byte
	_, _ = rand.Read(id[:])
	fmt.Fprintf(&b, "From: %s\r\n", headerSafe(user))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", headerSafe(o.UID)))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@fbpub>\r\n", hex.EncodeToString(id[:]))
	fmt.Fprintf(&b, "X-Fbpub-UID: %s\r\n", mime.QEncoding.Encode("utf-8", headerSafe(o.UID)))
	if extra != "" {
		b.WriteString(extra + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	if kolab {
		var x bytes.Buffer
		_ = calendar.EncodeXCal(&x, cal)
		boundary := "=_fbpub_" + hex.EncodeToString(id[:6])
		b.WriteString("X-Kolab-Type: application/x-vnd.kolab.event\r\n")
		b.WriteString("X-Kolab-Mime-Version: 3.0\r\n")
		b.WriteString("Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n")
		b.WriteString("--" + boundary + "\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
		b.WriteString("This is a Kolab Groupware object. To view it, use a client that understands the Kolab format.\r\n")
		b.WriteString("--" + boundary + "\r\nContent-Type: application/calendar+xml; charset=utf-8; name=kolab.xml\r\n")
		b.WriteString("Content-Disposition: attachment; filename=kolab.xml\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.Write(x.Bytes())
		b.WriteString("\r\n--" + boundary + "--\r\n")
		return b.Bytes()
	}
	b.WriteString("Content-Type: text/calendar; charset=utf-8; component=VEVENT\r\n")
	b.WriteString("Content-Transfer-Encoding: 8bit\r\n\r\n")
	b.Write(body)
	return b.Bytes()
}

// headerSafe keeps a value on one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}
