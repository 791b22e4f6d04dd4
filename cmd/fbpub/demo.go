package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/demo"
)

// runDemo starts the embedded IMAP server with sample calendars and serves
// them with the real fbpub code.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defaultListen := "127.0.0.1:8080"
	if v := getenv("FBPUB_LISTEN"); v != "" {
		defaultListen = v
	}
	listen := fs.String("listen", defaultListen, "HTTP listen address (host:port; default FBPUB_LISTEN, else 127.0.0.1:8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := demo.Start(time.Now(), io.Discard)
	if err != nil {
		return err
	}
	defer srv.Close()

	cfg := config.Default()
	cfg.Listen = *listen
	cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
	cfg.IMAP.User, cfg.IMAP.Password = demo.Proxy, config.Secret(srv.Password)
	cfg.Publish.MailDomain = "example.org"
	cfg.Publish.DefaultZone = "Europe/Berlin"
	// A team, for the group URLs and the scheduling page, working the
	// usual hours.
	cfg.Teams = map[string][]string{"team": {"alice", "bob", "carol"}}
	cfg.Publish.WorkingHours = "MO-FR 09:00-17:00"
	if v := getenv("FBPUB_LOG_LEVEL"); v != "" {
		cfg.Log.Level = v
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	log.Info("demo IMAP server started", "addr", srv.Addr, "folders", demo.Folders())
	s, err := newService(cfg, log)
	if err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		addr, ok := <-ready
		if !ok {
			return
		}
		base := "http://" + addr
		fmt.Fprintf(stdout, `fbpub demo is running. Try:
  curl %[1]s/freebusy/alice@example.org.vfb
  curl %[1]s/freebusy/bob.vfb
  curl %[1]s/calendar/alice/Calendar.ics
  curl %[1]s/calendar/alice/Calendar/Work.ics
  curl %[1]s/calendar/carol.ics
  curl '%[1]s/freebusy/slots?group=team&duration=PT1H'
  open %[1]s/team/team in a browser: the team's week, and when all are free
  curl %[1]s/metrics
Press Ctrl-C to stop.
`, base)
	}()
	err = s.run(ctx, ready)
	close(ready)
	return err
}
