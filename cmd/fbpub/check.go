package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/imapstore"
)

// check validates the configuration, logs in as the proxy, and prints the
// server's features and which folders would be published for whom — and
// why the others would not.
func check(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig("check", args, stderr, getenv)
	if err != nil {
		return err
	}
	// The files the configuration names (password, CA) are read here: only
	// then is it known to be usable.
	s, err := newService(cfg, cfg.Logger(io.Discard))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "configuration: ok")
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	defer s.pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var features imapstore.Features
	var spaces []imapstore.Namespace
	err = s.pool.Do(ctx, func(ss *imapstore.Session) error {
		features, spaces = ss.Features(), ss.Namespaces()
		return nil
	})
	if err != nil {
		return fmt.Errorf("IMAP %s as %s: %w", cfg.IMAP.Addr, cfg.IMAP.User, err)
	}
	fmt.Fprintf(stdout, "IMAP: %s (TLS %s), logged in as %s\n", cfg.IMAP.Addr, cfg.IMAP.TLS, cfg.IMAP.User)
	fmt.Fprintf(stdout, "server features: %s\n", features)
	for _, missing := range []struct {
		ok   bool
		what string
	}{
		{features.ACL, "no ACL extension: every calendar folder the proxy can select is published"},
		{features.CondStore, "no CONDSTORE: changes are detected by UIDNEXT, message counts and flags"},
		{features.ListStatus, "no LIST-STATUS: folder states are read with pipelined STATUS"},
		{features.Namespace, "no NAMESPACE: every folder counts as the proxy's own"},
	} {
		if !missing.ok {
			fmt.Fprintf(stdout, "  note: %s\n", missing.what)
		}
	}
	for _, ns := range spaces {
		fmt.Fprintf(stdout, "namespace: %-11s prefix %q\n", ns.Kind, ns.Prefix)
	}
	decisions, err := s.cache.Explain(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(decisions, func(a, b feed.Decision) int {
		if c := strings.Compare(a.Folder.Owner, b.Folder.Owner); c != 0 {
			return c
		}
		return strings.Compare(a.Folder.Name, b.Folder.Name)
	})
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(stdout, "\npublished:")
	n := 0
	for _, d := range decisions {
		if d.Reason == "" {
			n++
			rights := d.Folder.Rights
			if !d.Folder.RightsKnown {
				rights = "(no ACL)"
			}
			fmt.Fprintf(tw, "  %s\t%s\trights %s\t/calendar/%s/%s.ics\n", d.Folder.Owner, d.Folder.Name, rights, d.Folder.Owner, d.Folder.Path())
		}
	}
	tw.Flush()
	if n == 0 {
		fmt.Fprintln(stdout, "  (none: grant the proxy lr on a Calendar folder)")
	}
	fmt.Fprintln(stdout, "\nnot published:")
	for _, d := range decisions {
		if d.Reason != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", d.Folder.Name, d.Reason)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	header := false
	for _, d := range decisions {
		if d.Untrusted == "" {
			continue
		}
		if !header {
			fmt.Fprintln(stdout, "\nKolab annotations not used (see README, \"Who may set these annotations\"):")
			header = true
		}
		fmt.Fprintf(tw, "  %s\t%s\n", d.Folder.Name, d.Untrusted)
	}
	return tw.Flush()
}
