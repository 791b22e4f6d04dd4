package testbed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a private redis-server that a test started with StartRedis: it
// listens on a loopback port of its own, keeps its files in its own
// directory, saves nothing to disk (no RDB snapshots, no AOF), and is
// stopped when the test ends. Its methods may be called from the test's
// goroutines concurrently.
type Redis struct {
	// Addr is the address it listens on, "127.0.0.1:PORT"; it stays the
	// same across Kill and Start.
	Addr string
	// Dir holds its configuration and log.
	Dir string
	// Password is its requirepass, "" for none.
	Password string
	// CAFile is the PEM certificate of the private CA that signed its
	// TLS certificate (for 127.0.0.1), when it was started with TLS;
	// URL then starts with rediss://.
	CAFile string

	mu  sync.Mutex
	cmd *exec.Cmd     // guarded by mu; nil while killed
	end chan struct{} // guarded by mu; closed when cmd has exited
}

// RedisOptions changes the instance StartRedis starts; nil means
// defaults.
type RedisOptions struct {
	// Password, when set, makes Redis refuse every command until a
	// client authenticates with it (requirepass).
	Password string
	// TLS makes Redis speak TLS only, with a certificate for 127.0.0.1
	// from a CA of its own (Redis.CAFile); clients need no certificate.
	TLS bool
}

// StartRedis starts a redis-server of the test's own on a free loopback
// port and stops it when the test ends. When redis-server is not
// installed or does not start, it fails the test if the environment
// variable CI is "true" and skips it with a hint otherwise (testbed/install
// installs Debian's redis-server). It does not need Main.
func StartRedis(t testing.TB, opts *RedisOptions) *Redis {
	t.Helper()
	skipShort(t, "Redis")
	if opts == nil {
		opts = &RedisOptions{}
	}
	r := &Redis{Dir: t.TempDir(), Password: opts.Password}
	var err error
	if opts.TLS {
		err = r.makeCerts()
	}
	if err == nil {
		err = r.start()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testbed: Redis not available: %v", err)
		}
		t.Skipf("testbed: Redis not available (%s); run testbed/install as root or set CI=true to make this fatal", oneLine(err))
	}
	t.Cleanup(func() { r.kill() })
	return r
}

// URL returns the redis:// URL that reaches the instance, with its
// password when it has one, and database 0.
func (r *Redis) URL() string {
	u := url.URL{Scheme: "redis", Host: r.Addr, Path: "/0"}
	if r.CAFile != "" {
		u.Scheme = "rediss"
	}
	if r.Password != "" {
		u.User = url.UserPassword("", r.Password)
	}
	return u.String()
}

// Kill ends the server with SIGKILL, the way a crash or an OOM kill would:
// open connections break, and its data is gone (it saves nothing).
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	if !r.kill() {
		t.Fatalf("testbed: Kill: Redis is not running")
	}
}

// Start brings the server back after Kill, on the same port, empty.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	running := r.cmd != nil
	r.mu.Unlock()
	if running {
		t.Fatalf("testbed: Start: Redis is already running")
	}
	if err := r.start(); err != nil {
		t.Fatalf("testbed: Start: %v", err)
	}
}

// kill ends the server and waits for it; it reports whether one ran.
func (r *Redis) kill() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return false
	}
	r.cmd.Process.Kill()
	<-r.end
	r.cmd, r.end = nil, nil
	return true
}

// start runs redis-server on r.Addr, or on a new free port when r.Addr is
// empty (trying a few ports, in case another process takes the one
// picked), and waits until it answers PING.
func (r *Redis) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr != nil {
			return errors.New("redis-server is not installed")
		}
		bin = "/usr/bin/redis-server"
	}
	fixed := r.Addr != ""
	for attempt := 0; ; attempt++ {
		addr := r.Addr
		if !fixed {
			if addr, err = freePort(); err != nil {
				return err
			}
		}
		err = r.run(bin, addr)
		if err == nil {
			r.Addr = addr
			return nil
		}
		if fixed || attempt == 4 {
			return err
		}
	}
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// run starts redis-server on addr and waits until it answers.
func (r *Redis) run(bin, addr string) error {
	_, port, _ := net.SplitHostPort(addr)
	// The password goes into the file, not onto the command line where
	// ps would show it.
	conf := []string{
		"port " + port,
		"bind 127.0.0.1",
		"protected-mode yes",
		`save ""`,
		"appendonly no",
		"daemonize no",
		"dir " + strconv.Quote(r.Dir),
		"logfile " + strconv.Quote(filepath.Join(r.Dir, "redis.log")),
	}
	if r.Password != "" {
		conf = append(conf, "requirepass "+strconv.Quote(r.Password))
	}
	var tlsConfig *tls.Config
	if r.CAFile != "" {
		conf[0] = "port 0"
		conf = append(conf, "tls-port "+port,
			"tls-cert-file "+strconv.Quote(filepath.Join(r.Dir, "server.pem")),
			"tls-key-file "+strconv.Quote(filepath.Join(r.Dir, "server.key")),
			"tls-ca-cert-file "+strconv.Quote(r.CAFile),
			"tls-auth-clients no")
		caPEM, err := os.ReadFile(r.CAFile)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		tlsConfig = &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	}
	file := filepath.Join(r.Dir, "redis.conf")
	if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(bin, file)
	cmd.Dir = r.Dir
	// A test binary that dies (a timeout panic, a signal) takes its
	// Redis along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	end := make(chan struct{})
	go func() {
		cmd.Wait()
		close(end)
	}()
	c := redis.NewClient(&redis.Options{Addr: addr, Password: r.Password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, TLSConfig: tlsConfig})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case <-end:
			return fmt.Errorf("redis-server on %s exited: %s", addr, lastLines(filepath.Join(r.Dir, "redis.log")))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-end
			return fmt.Errorf("redis-server on %s does not answer: %v", addr, err)
		}
	}
	r.mu.Lock()
	r.cmd, r.end = cmd, end
	r.mu.Unlock()
	return nil
}

// lastLines returns the last lines of a log, joined on one line.
func lastLines(file string) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// makeCerts writes a CA (ca.pem, r.CAFile) and a certificate it signed for
// 127.0.0.1 and localhost (server.pem, server.key) into r.Dir.
func (r *Redis) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fbpub test bed CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	files := []struct {
		name, typ string
		der       []byte
	}{{"ca.pem", "CERTIFICATE", caDER}, {"server.pem", "CERTIFICATE", leafDER}, {"server.key", "PRIVATE KEY", keyDER}}
	for _, f := range files {
		b := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := os.WriteFile(filepath.Join(r.Dir, f.name), b, 0o600); err != nil {
			return err
		}
	}
	r.CAFile = filepath.Join(r.Dir, "ca.pem")
	return nil
}
