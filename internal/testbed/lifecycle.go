package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot walks up from the working directory to the directory that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// start runs testbed/<kind>-up in a new directory and returns the server it
// reports.
func start(kind Kind) (*Server, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	srv := &Server{Kind: kind, root: root}
	if err := srv.up(""); err != nil {
		return nil, err
	}
	return srv, nil
}

// up runs testbed/<kind>-up, in dir if it is not empty, and records the
// address and directory it prints.
func (s *Server) up(dir string) error {
	script := filepath.Join(s.root, "testbed", string(s.Kind)+"-up")
	var args []string
	if dir != "" {
		args = append(args, dir)
	}
	cmd := exec.Command(script, args...)
	// Let the script stop the server itself if this test binary dies
	// without reaching <kind>-down (a timeout panic, a signal).
	cmd.Env = append(os.Environ(), fmt.Sprintf("FBPUB_TESTBED_WATCH_PID=%d", os.Getpid()))
	if s.conf != "" {
		cmd.Env = append(cmd.Env, "FBPUB_TESTBED_DOVECOT_CONF="+s.conf)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	var addr, gotDir string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_ADDR="); ok {
			addr = v
		} else if v, ok := strings.CutPrefix(line, "FBPUB_TESTBED_DIR="); ok {
			gotDir = v
		}
	}
	if addr == "" || gotDir == "" {
		return fmt.Errorf("%s printed no address and directory: %q", script, stdout.String())
	}
	if s.Addr != "" && s.Addr != addr {
		return fmt.Errorf("%s restarted %s on %s instead of %s", script, s.Kind, addr, s.Addr)
	}
	s.Addr, s.Dir = addr, gotDir
	return nil
}

// down runs testbed/<kind>-down; keep keeps the directory so that the
// instance can be started again.
func (s *Server) down(keep bool) error {
	script := filepath.Join(s.root, "testbed", string(s.Kind)+"-down")
	args := []string{s.Dir}
	if keep {
		args = []string{"--keep", s.Dir}
	}
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", script, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Stop simulates the server going away: it kills the server's master
// process and every session, keeping the data. Open clients see their connection close.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("testbed: Stop: %s is already stopped", s.Kind)
	}
	if err := s.down(true); err != nil {
		t.Fatalf("testbed: Stop: %v", err)
	}
	s.stopped = true
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopped {
			if err := s.up(s.Dir); err != nil {
				t.Errorf("testbed: restarting %s after the test: %v", s.Kind, err)
				return
			}
			s.stopped = false
		}
	})
}

// Start brings the server back after Stop, on the same port with the same data.
// If the test ends while the server is stopped, it is started again so that
// later tests find it running.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopped {
		t.Fatalf("testbed: Start: %s is already running", s.Kind)
	}
	if err := s.up(s.Dir); err != nil {
		t.Fatalf("testbed: Start: %v", err)
	}
	s.stopped = false
}

// ensureRunning fails the test if the server is stopped.
func (s *Server) ensureRunning(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		t.Fatalf("testbed: %s is stopped; call Start first", s.Kind)
	}
}
