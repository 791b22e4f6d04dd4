// Command fbpub publishes calendar free/busy and .ics feeds out of an IMAP
// server.
//
//	fbpub serve   [flags]         serve the configured IMAP server's calendars
//	fbpub demo    [--listen ADDR] serve sample calendars from an embedded server
//	fbpub render  [flags] FILE    print the VFREEBUSY fbpub would publish for FILE
//	fbpub version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // time zones work on machines without a zoneinfo database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// A second signal, while shutting down, exits at once.
		<-ctx.Done()
		stop()
		c := make(chan os.Signal, 1)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		<-c
		os.Exit(1)
	}()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fbpub:", err)
		os.Exit(1)
	}
}

const usage = `fbpub publishes calendar free/busy and feeds out of an IMAP server.

Usage:
  fbpub serve  [--config FILE] [flags]   serve the configured IMAP server's calendars
  fbpub check  [--config FILE] [flags]   validate the configuration, log in, and show what would be published
  fbpub demo   [--listen ADDR]           serve sample calendars from an embedded IMAP server
  fbpub render [--start T] [--end T] [--tz ZONE] [--owner mailto:ADDR] FILE|-
                                         print the VFREEBUSY fbpub would publish for FILE
  fbpub version

Run "fbpub COMMAND -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr, getenv)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr, getenv)
	case "check":
		return check(ctx, args[1:], stdout, stderr, getenv)
	case "render":
		return render(args[1:], stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "fbpub", version())
		return nil
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
