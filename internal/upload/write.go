package upload

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// apply carries the plan out: log copies, then appends, then removals,
// so that an interruption anywhere loses nothing. Before each write it
// calls hold, and stops with its error: the upload no longer holds the
// folder.
func (s *Service) apply(ctx context.Context, sess *imapstore.Session, p plan, t *target, lg deletedLog, user string, hold func() error) error {
	if len(p.toLog) > 0 {
		if err := s.writeLog(ctx, sess, lg, p.toLog, user, hold); err != nil {
			return err
		}
	}
	for _, in := range p.appends {
		if err := hold(); err != nil {
			return err
		}
		if err := sess.AppendMessage(ctx, t.name, message(in.obj, user, s.opts.Now(), "", t.kolab)); err != nil {
			return err
		}
	}
	if len(p.remove) == 0 {
		return nil
	}
	if err := hold(); err != nil {
		return err
	}
	return sess.RemoveMessages(ctx, t.name, p.remove)
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
