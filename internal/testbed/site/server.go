package site

import (
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

// server is what a Dovecot and a Cyrus of the test bed share: an
// instance that testbed/<kind>-up started in Dir, listening on Addr.
type server struct {
	root string // the module root, which holds testbed/
	kind string // "dovecot" or "cyrus": testbed/<kind>-up and -down
	Dir  string // DIR of the -up script: configuration, data, logs
	Addr string // 127.0.0.1:PORT
}

// up runs testbed/<kind>-up DIR (a new instance, or the one DIR already
// holds, on its port and with its data), with env added to the
// environment.
func up(root, kind, dir string, env ...string) (server, error) {
	script := kind + "-up"
	cmd := exec.Command(filepath.Join(root, "testbed", script), dir)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return server{}, fmt.Errorf("%s: %w", script, err)
	}
	s := server{root: root, kind: kind}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_ADDR="); ok {
			s.Addr = v
		}
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_DIR="); ok {
			s.Dir = v
		}
	}
	if s.Addr == "" || s.Dir == "" {
		return server{}, fmt.Errorf("%s: unexpected output %q", script, out)
	}
	return s, nil
}

// Stop stops the instance; with keep, DIR stays (and can be started again).
func (s *server) Stop(keep bool) error {
	args := []string{s.Dir}
	if keep {
		args = []string{"--keep", s.Dir}
	}
	cmd := exec.Command(filepath.Join(s.root, "testbed", s.kind+"-down"), args...)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func (s *server) Address() string { return s.Addr }

// MasterPID is the pid of the server's master process, whose children
// are its IMAP processes.
func (s *server) MasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, "run", "master.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Dial logs user in (password Password(user)).
func (s *server) Dial(user string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, Password(user)).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	return c, nil
}

// logout ends c's session.
func logout(c *imapclient.Client) {
	c.Logout().Wait()
	c.Close()
}

// warmUp lists the folders that match pattern with STATUS as the proxy,
// as fbpub's discovery does, and returns how long it took and how many
// folders it saw.
func (s *server) warmUp(pattern string) (time.Duration, int, error) {
	c, err := s.Dial(Proxy)
	if err != nil {
		return 0, 0, err
	}
	defer logout(c)
	t := time.Now()
	boxes, err := c.List("", pattern, &imap.ListOptions{ReturnStatus: &imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: true,
	}}).Collect()
	if err != nil {
		return 0, 0, fmt.Errorf("LIST %s as %s: %w", pattern, Proxy, err)
	}
	return time.Since(t), len(boxes), nil
}
