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
	now := time.Now().UTC()
	o, err := renderFlags(args, now, stderr)
	if err != nil {
		return err
	}
	data, err := readInput(o.file, stdin)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	objs, err := objectsOf(data)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	res := freebusy.Compute(objs, o.w, &freebusy.Options{Owner: o.owner, Expand: &calendar.Options{Zone: o.loc}})
	if res.Truncated > 0 {
		fmt.Fprintf(stderr, "fbpub: %d recurring event(s) were cut off at the expansion limit\n", res.Truncated)
	}
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "fbpub: %d event(s) had values that could not be read; the rest of each counts\n", res.Errors)
	}
	reply := freebusy.Reply{Organizer: o.owner, UID: "fbpub-render", Stamp: now, Window: o.w, Periods: res.Periods}
	if o.unavailable {
		reply.Periods = freebusy.Merge(append(res.Periods, o.offHours(objs, stderr)...))
	}
	return reply.Encode(stdout)
}

// renderOptions are what fbpub render's flags ask for.
type renderOptions struct {
	w     freebusy.Window
	loc   *time.Location
	owner string
	// unavailable marks the time outside working hours (--off-hours
	// unavailable); hours are the working hours where the file has no
	// VAVAILABILITY (nil: the whole day).
	unavailable bool
	hours       *availability.Hours
	file        string // "-" for standard input
}

// renderFlags reads and checks fbpub render's flags; the window is 60
// days from the start of now's day by default.
func renderFlags(args []string, now time.Time, stderr io.Writer) (renderOptions, error) {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	var o renderOptions
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, errors.New("render: name one file, or - for standard input")
	}
	o.file, o.owner = fs.Arg(0), *owner
	var err error
	if o.w.Start, err = time.Parse(time.RFC3339, *start); err != nil {
		return o, fmt.Errorf("render: --start: %q is not an RFC 3339 time", *start)
	}
	if o.w.End, err = time.Parse(time.RFC3339, *end); err != nil {
		return o, fmt.Errorf("render: --end: %q is not an RFC 3339 time", *end)
	}
	if !o.w.End.After(o.w.Start) {
		return o, errors.New("render: --end must be after --start")
	}
	if o.loc, err = time.LoadLocation(*tz); err != nil {
		return o, fmt.Errorf("render: --tz: unknown zone %q", *tz)
	}
	if *offHours != "free" && *offHours != "unavailable" {
		return o, fmt.Errorf("render: --off-hours: %q is not free or unavailable", *offHours)
	}
	o.unavailable = *offHours == "unavailable"
	if *workingHours != "" {
		if o.hours, err = availability.ParseHours(*workingHours); err != nil {
			return o, fmt.Errorf("render: --working-hours: %w", err)
		}
	}
	return o, nil
}

// readInput reads the file name, or standard input for "-" (at most one
// byte more than a calendar may have, so that too large is seen).
func readInput(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(stdin, calendar.MaxPayload+1))
	}
	return os.ReadFile(name)
}

// offHours returns the time of the window outside working hours, as fbpub
// serve does with publish.off_hours = "unavailable": the file's
// VAVAILABILITY decides, else --working-hours.
func (o renderOptions) offHours(objs []*calendar.Object, stderr io.Writer) []freebusy.Period {
	var avs []calendar.Availability
	for _, obj := range objs {
		a, err := obj.Availabilities(o.w.Start, o.w.End, &calendar.Options{Zone: o.loc})
		if err != nil {
			fmt.Fprintf(stderr, "fbpub: a VAVAILABILITY had values that could not be read; the rest of it counts\n")
		}
		avs = append(avs, a...)
	}
	return availability.OffHours(avs, o.hours, o.loc, o.w)
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
