package site

import (
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Probe measures, on the site as made, what Dovecot's CPU costs for the
// commands a per-owner check can use, on a session that logged in just
// before and on one that has already touched every sharer's namespace
// (as fbpub's pooled sessions have after a first touch of every user):
// LIST "" "shared/<owner>/*" RETURN (STATUS …), and STATUS of the owner's
// Calendar; a login; a listing of the directory. Each figure is
// Dovecot's CPU (cpu: all its processes) over a batch of commands, one
// owner at a time, divided by the batch; printf reports it.
func (dc *Dovecot) Probe(cpu func() time.Duration, printf func(string, ...any), shared []string, batch int) error {
	status := &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true}
	owners := func(from int) []string {
		var out []string
		for i := 0; i < batch; i++ {
			out = append(out, shared[(from+i)%len(shared)])
		}
		return out
	}
	list := func(c *imapclient.Client, o string) error {
		_, err := c.List("", "shared/"+o+"/*", &imap.ListOptions{ReturnStatus: status}).Collect()
		return err
	}
	stat := func(c *imapclient.Client, o string) error {
		_, err := c.Status("shared/"+o+"/Calendar", status).Wait()
		return err
	}
	measure := func(what string, c *imapclient.Client, os []string, op func(*imapclient.Client, string) error) error {
		t0, w0 := cpu(), time.Now()
		for _, o := range os {
			if err := op(c, o); err != nil {
				return fmt.Errorf("%s %s: %w", what, o, err)
			}
		}
		cpu, wall := cpu()-t0, time.Since(w0)
		printf("  %-72s %6.2f ms CPU, %6.2f ms wall per command (%d)", what, float64(cpu.Microseconds())/1000/float64(len(os)),
			float64(wall.Microseconds())/1000/float64(len(os)), len(os))
		return nil
	}
	dial := func() (*imapclient.Client, error) { return dc.Dial(Proxy) }
	printf("")
	printf("=== probe: Dovecot CPU per per-owner command, %d sharers ===", len(shared))
	logins := make([]string, 20)
	if err := measure("LOGIN and LOGOUT of the proxy, nothing else", nil, logins, func(*imapclient.Client, string) error {
		c, err := dial()
		if err != nil {
			return err
		}
		c.Logout().Wait()
		return c.Close()
	}); err != nil {
		return err
	}
	// The first command of a session: does it set up every sharer's
	// namespace, whatever it names?
	first := []struct {
		what string
		op   func(*imapclient.Client, string) error
	}{
		{"STATUS shared/<owner>/Calendar", stat},
		{"LIST shared/<owner>/* RETURN (STATUS)", list},
		{"LIST shared/<owner>/*", func(c *imapclient.Client, o string) error {
			_, err := c.List("", "shared/"+o+"/*", nil).Collect()
			return err
		}},
	}
	for i, f := range first {
		c, err := dial()
		if err != nil {
			return err
		}
		if err := measure("fresh session, its first command: "+f.what, c, []string{shared[(7*i+1)%len(shared)]}, f.op); err != nil {
			return err
		}
		if err := measure("the same session, its second command: "+f.what, c, []string{shared[(7*i+2)%len(shared)]}, f.op); err != nil {
			return err
		}
		c.Logout().Wait()
		c.Close()
	}
	for _, pattern := range []string{"shared/%", "shared/*"} {
		if err := measure("fresh session: LIST \"\" \""+pattern+"\" (names only), login included", nil, []string{""}, func(*imapclient.Client, string) error {
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			l, err := c.List("", pattern, nil).Collect()
			printf("  (%s: %d names)", pattern, len(l))
			return err
		}); err != nil {
			return err
		}
	}
	for _, fresh := range []bool{true, false} {
		c, err := dial()
		if err != nil {
			return err
		}
		label := "fresh session"
		if !fresh {
			label = "session that touched every sharer"
			// Touch every sharer's namespace, one STATUS each, as a
			// long-lived pooled session has after a first touch.
			t0 := time.Now()
			for _, o := range shared {
				if err := stat(c, o); err != nil {
					return err
				}
			}
			printf("  (touching %d sharers with STATUS took %.1f s)", len(shared), time.Since(t0).Seconds())
		}
		if err := measure(label+": LIST shared/<owner>/* RETURN (STATUS), new owners", c, owners(0), list); err != nil {
			return err
		}
		if err := measure(label+": STATUS shared/<owner>/Calendar, new owners", c, owners(batch), stat); err != nil {
			return err
		}
		if err := measure(label+": LIST shared/<owner>/* RETURN (STATUS), again", c, owners(0), list); err != nil {
			return err
		}
		if err := measure(label+": STATUS shared/<owner>/Calendar, again", c, owners(batch), stat); err != nil {
			return err
		}
		if err := measure(label+": LIST \"\" \"shared/%\"", c, []string{""}, func(c *imapclient.Client, _ string) error {
			_, err := c.List("", "shared/%", nil).Collect()
			return err
		}); err != nil {
			return err
		}
		c.Logout().Wait()
		c.Close()
	}
	return nil
}
