package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fbpub/fbpub/internal/availability"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/freebusy"
)

// render prints the VFREEBUSY fbpub would publish for one file: an
// iCalendar file or a whole message as stored in IMAP.
func render(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	start := fs.String("start", today.Format(time.RFC3339), "window start (RFC 3339)")
	end := fs.String("end", today.AddDate(0, 0, 60).Format(time.RFC3339), "window end (RFC 3339)")
	tz := fs.String("tz", "UTC", "the owner's time zone for floating and all-day times (IANA name)")
	owner := fs.String("owner", "", "the owner's address (mailto:…), for the PARTSTAT rule and ORGANIZER")
	offHours := fs.String("off-hours", "free", "how time outside working hours shows: free (not marked) or unavailable (BUSY-UNAVAILABLE)")
	workingHours := fs.String("working-hours", "", `working hours where the file has no VAVAILABILITY, e.g. "MO-FR 09:00-17:00" on the --tz clock; empty: the whole day`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: fbpub render [flags] FILE.ics|MESSAGE.eml|-")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("render: name one file, or - for standard input")
	}
	var w freebusy.Window
	var err error
	if w.Start, err = time.Parse(time.RFC3339, *start); err != nil {
		return fmt.Errorf("render: --start: %q is not an RFC 3339 time", *start)
	}
	if w.End, err = time.Parse(time.RFC3339, *end); err != nil {
		return fmt.Errorf("render: --end: %q is not an RFC 3339 time", *end)
	}
	if !w.End.After(w.Start) {
		return errors.New("render: --end must be after --start")
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		return fmt.Errorf("render: --tz: unknown zone %q", *tz)
	}
	if *offHours != "free" && *offHours != "unavailable" {
		return fmt.Errorf("render: --off-hours: %q is not free or unavailable", *offHours)
	}
	var hours *availability.Hours
	if *workingHours != "" {
		if hours, err = availability.ParseHours(*workingHours); err != nil {
			return fmt.Errorf("render: --working-hours: %w", err)
		}
	}
	var data []byte
	if name := fs.Arg(0); name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, calendar.MaxPayload+1))
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	objs, err := objectsOf(data)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	res := freebusy.Compute(objs, w, &freebusy.Options{Owner: *owner, Expand: &calendar.Options{Zone: loc}})
	if res.Truncated > 0 {
		fmt.Fprintf(stderr, "fbpub: %d recurring event(s) were cut off at the expansion limit\n", res.Truncated)
	}
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "fbpub: %d event(s) had values that could not be read; the rest of each counts\n", res.Errors)
	}
	reply := freebusy.Reply{Organizer: *owner, UID: "fbpub-render", Stamp: now, Window: w, Periods: res.Periods}
	if *offHours == "unavailable" {
		// As fbpub serve does with publish.off_hours = "unavailable": the
		// file's VAVAILABILITY decides, else --working-hours.
		var avs []calendar.Availability
		for _, o := range objs {
			a, err := o.Availabilities(w.Start, w.End, &calendar.Options{Zone: loc})
			if err != nil {
				fmt.Fprintf(stderr, "fbpub: a VAVAILABILITY had values that could not be read; the rest of it counts\n")
			}
			avs = append(avs, a...)
		}
		reply.Periods = freebusy.Merge(append(res.Periods, availability.OffHours(avs, hours, loc, w)...))
	}
	return reply.Encode(stdout)
}

// objectsOf reads an iCalendar file, or the calendar parts of a message.
func objectsOf(data []byte) ([]*calendar.Object, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if bytes.HasPrefix(bytes.ToUpper(trimmed[:min(len(trimmed), 15)]), []byte("BEGIN:VCALENDAR")) {
		cals, err := calendar.Decode(data)
		if err != nil {
			return nil, err
		}
		return calendar.Objects(cals), nil
	}
	parts, err := calendar.MessageParts(data)
	if err != nil {
		return nil, err
	}
	var objs []*calendar.Object
	var errs []error
	for _, p := range parts {
		o, err := calendar.PartObjects(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o...)
	}
	if len(objs) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return objs, nil
}
