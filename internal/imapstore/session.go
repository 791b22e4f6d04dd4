// Package imapstore is fbpub's access to the IMAP server: the only package
// that speaks IMAP, through go-imap v2 (v2.0.0-beta.9), which reads every
// answer; the one thing written on the wire beside it is the ID command
// with x-originating-ip before a requester's login (login.go), which
// go-imap's ID cannot send. It logs in, finds folders through
// every namespace with the proxy's rights on them, reads folder states and
// fetches the calendar parts of messages. It knows nothing of iCalendar:
// callers say which MIME types they want and get their bodies.
//
// go-imap takes no context and has a fixed 30 s response timeout, so every
// operation here binds its connection to the caller's context (closing the
// connection when the context ends), and every command sets a deadline on
// the socket, moved on while a long answer keeps arriving.
package imapstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TLSMode says how the connection to the server is protected: one of the
// constants below (config validates the names).
type TLSMode string

// The TLS modes. Certificates are verified unless Options.TLSConfig says
// otherwise.
const (
	TLSNone     TLSMode = "none"
	TLSStartTLS TLSMode = "starttls"
	TLSImplicit TLSMode = "tls"
)

// Options say how to reach and log in to the server.
type Options struct {
	Addr      string // host:port
	TLS       TLSMode
	TLSConfig *tls.Config // nil: verify against the system roots
	User      string
	Password  string
	// Timeout bounds each operation on the socket (default 30 s).
	Timeout time.Duration
	// Observe, when set, is called after every IMAP command with its name
	// ("LOGIN", "LIST", "UID FETCH", …), its error and its duration. It
	// must be safe for concurrent use.
	Observe func(command string, err error, d time.Duration)
	// OnReconnect, when set, is called by a Pool when a login succeeds
	// after failures.
	OnReconnect func()
	// OnConnections, when set, is called by a Pool with +1 when it opens
	// a session and -1 when one is closed or found dead.
	OnConnections func(delta int)
	// OnChange, when set, is called (on the reader goroutine: it must not
	// block) when the server reports unsolicited changes to the selected
	// folder.
	OnChange func()
	Logger   *slog.Logger
	// RecycleAfter is how many distinct other users' folders a pooled
	// session may touch before the pool logs it out instead of reusing
	// it (default DefaultRecycleAfter; see Session.worn).
	RecycleAfter int
}

// DefaultRecycleAfter is Options.RecycleAfter's default. Dovecot sets up
// a namespace in a session for each other user whose folders it touches,
// and keeps it until logout: about 90 KB of the imap process's memory
// each, and every command costs a little more on a session that holds
// thousands (Dovecot finds a folder's namespace by walking the list of
// them). Setting a namespace up again costs several STATUS of an owner
// the session holds, so recycling is not free: the default bounds a
// session's memory (about 100 MB of Dovecot's) for a small share of its
// CPU. The session of the listings is not recycled (see Session.worn).
// bench/README.md has the figures (bench/scale's steady phases).
const DefaultRecycleAfter = 1000

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 30 * time.Second
}

// ErrAuth means the server refused the credentials.
var ErrAuth = errors.New("imapstore: authentication failed")

// ErrUnavailable means the server refused a login for a reason other than
// the credentials, which its response code names: a limit on connections
// (Dovecot's mail_max_userip_connections answers NO [LIMIT]), a back end
// that is down ([UNAVAILABLE]). The error carries the server's text; a
// later attempt may succeed.
var ErrUnavailable = errors.New("imapstore: server refused the login for now")

// loginRefused classifies a LOGIN the server answered with NO: ErrAuth,
// unless the response code says the refusal is not about the credentials
// (RFC 5530: LIMIT, UNAVAILABLE, INUSE, SERVERBUG), then ErrUnavailable
// with the server's text. A NO without a code counts as refused
// credentials, as servers answer wrong passwords without one too.
func loginRefused(opts *Options, ie *imap.Error) error {
	switch ie.Code {
	case imap.ResponseCodeLimit, imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, imap.ResponseCodeServerBug:
		return fmt.Errorf("%w: login as %q at %s: %s [%s] %s", ErrUnavailable, opts.User, opts.Addr, ie.Type, ie.Code, ie.Text)
	}
	return fmt.Errorf("%w for %q", ErrAuth, opts.User)
}

// ErrNotFound means the folder does not exist or the session may not see
// it; IMAP servers do not tell the two apart, and neither does fbpub.
var ErrNotFound = errors.New("imapstore: folder not found")

// Features are the server capabilities fbpub adapts to.
type Features struct {
	ACL        bool // RFC 4314: MYRIGHTS, GETACL
	CondStore  bool // RFC 7162: HIGHESTMODSEQ, CHANGEDSINCE
	ListStatus bool // RFC 5819: folder states in the LIST answer
	Metadata   bool // RFC 5464: folder annotations
	Namespace  bool // RFC 2342
	Notify     bool // RFC 5465
	IMAP4rev2  bool
	// Server is the server software (ServerDovecot, ServerCyrus) as its
	// ID answer names it, or "" when unknown.
	Server string
}

// String lists the features for logs, e.g. "ACL CONDSTORE LIST-STATUS".
func (f Features) String() string {
	var s []string
	if f.Server != "" {
		s = append(s, "server="+f.Server)
	}
	add := func(ok bool, name string) {
		if ok {
			s = append(s, name)
		}
	}
	add(f.IMAP4rev2, "IMAP4rev2")
	add(f.ACL, "ACL")
	add(f.CondStore, "CONDSTORE")
	add(f.ListStatus, "LIST-STATUS")
	add(f.Metadata, "METADATA")
	add(f.Namespace, "NAMESPACE")
	add(f.Notify, "NOTIFY")
	return strings.Join(s, " ")
}

// Session is one logged-in IMAP connection. Its methods may be called from
// several goroutines; they are serialized, because the selected folder
// belongs to the connection.
type Session struct {
	opts     Options
	conn     net.Conn
	client   *imapclient.Client
	features Features
	spaces   []Namespace

	mu sync.Mutex // serializes operations; guards selected
	// selected is the folder currently selected, "" if none.
	selected string
	// born is when the session logged in: on Dovecot it sees only the
	// other users who shared a folder before then (see Pool.Fresh).
	born time.Time
	// touched holds the other users whose folders the session listed or
	// read the state of, listed whether it sent a LIST (see worn), and
	// listedAt when it sent the first (see SharersRetry); guarded by mu.
	touched  map[string]struct{}
	listed   bool
	listedAt time.Time
}

// touch records that the session touched folder's owner, if another
// user. The caller holds s.mu.
func (s *Session) touch(folder string) {
	kind, owner, _ := s.place(folder, 0)
	if kind != OtherUsers || owner == "" {
		return
	}
	if s.touched == nil {
		s.touched = map[string]struct{}{}
	}
	s.touched[owner] = struct{}{}
}

// touchedCount is how many other users the session has touched.
func (s *Session) touchedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.touched)
}

// hasListed reports whether the session has sent a LIST.
func (s *Session) hasListed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listed
}

// worn reports whether a pool should log the session out rather than
// reuse it. A session that serves owners' folders (owners) is worn once
// it touched Options.RecycleAfter other users (see DefaultRecycleAfter),
// or listed when it does not serve listings (lists): Dovecot then holds
// every sharer's namespace in it, which makes each of its commands
// dearer. One that serves listings and has listed is kept, as its
// successor would set up every sharer's namespace again.
func (s *Session) worn(owners, lists bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.listed:
		return !lists
	case !owners:
		return false
	}
	limit := s.opts.RecycleAfter
	if limit <= 0 {
		limit = DefaultRecycleAfter
	}
	return len(s.touched) >= limit
}

// Dial connects, logs in and reads the capabilities and namespaces. The
// password never appears in an error.
func Dial(ctx context.Context, opts Options) (*Session, error) {
	s := &Session{opts: opts, born: time.Now()}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.DiscardHandler)
	}
	copts := &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Expunge: func(uint32) { s.changed() },
			Mailbox: func(*imapclient.UnilateralDataMailbox) { s.changed() },
			// An unsolicited FETCH must be read to the end, or the
			// connection stalls.
			Fetch: func(m *imapclient.FetchMessageData) { s.changed(); _, _ = m.Collect() },
		},
	}
	var err error
	s.conn, s.client, err = login(ctx, &s.opts, copts, nil)
	if err != nil {
		return nil, err
	}
	stop := s.bind(ctx)
	defer stop()
	caps := s.client.Caps()
	s.features = Features{
		IMAP4rev2:  caps.Has(imap.CapIMAP4rev2),
		ACL:        caps.Has(imap.CapACL),
		CondStore:  caps.Has(imap.CapCondStore),
		ListStatus: caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2),
		Metadata:   caps.Has(imap.CapMetadata) || caps.Has(imap.CapMetadataServer),
		Namespace:  caps.Has(imap.CapNamespace) || caps.Has(imap.CapIMAP4rev2),
		Notify:     caps.Has(imap.CapNotify),
	}
	if err := s.readNamespaces(); err != nil {
		s.client.Close()
		return nil, err
	}
	if s.features.Server, err = s.identify(); err != nil {
		s.client.Close()
		return nil, fmt.Errorf("imapstore: ID at %s: %w", opts.Addr, err)
	}
	return s, nil
}

// login connects as opts say (TLS at once, after STARTTLS, or none),
// hands the connection to go-imap with copts, waits for the greeting and
// logs in. It returns the connection to set deadlines on (go-imap's own
// are hidden from it: see ownDeadlines) and the client; the connection
// has no deadline left. greet, when set, runs on the connection once it
// is set up and before go-imap reads from it, and returns the connection
// to set deadlines on and the one go-imap is to read (see CheckLogin);
// with greet, STARTTLS is greet's to do. The password never appears in an error.
func login(ctx context.Context, opts *Options, copts *imapclient.Options, greet func(net.Conn, *tls.Config) (conn, rw net.Conn, err error)) (net.Conn, *imapclient.Client, error) {
	d := net.Dialer{Timeout: opts.timeout()}
	raw, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("imapstore: connect %s: %w", opts.Addr, err)
	}
	raw = quickAck(raw)
	tlsConfig := opts.TLSConfig
	if tlsConfig == nil {
		host, _, _ := net.SplitHostPort(opts.Addr)
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	copts.TLSConfig = tlsConfig
	conn := raw
	_ = conn.SetDeadline(time.Now().Add(opts.timeout()))
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	fail := func(err error) (net.Conn, *imapclient.Client, error) {
		raw.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return nil, nil, err
	}
	if opts.TLS == TLSImplicit {
		tc := tls.Client(raw, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("imapstore: TLS with %s: %w", opts.Addr, err))
		}
		conn = tc
	}
	var client *imapclient.Client
	switch {
	case greet != nil:
		var rw net.Conn
		conn, rw, err = greet(conn, tlsConfig)
		if err != nil {
			return fail(err)
		}
		client = imapclient.New(ownDeadlines{rw}, copts)
	case opts.TLS == TLSStartTLS:
		client, err = imapclient.NewStartTLS(ownDeadlines{conn}, copts)
		if err != nil {
			return fail(fmt.Errorf("imapstore: STARTTLS with %s: %w", opts.Addr, err))
		}
	default:
		client = imapclient.New(ownDeadlines{conn}, copts)
	}
	if err := client.WaitGreeting(); err != nil {
		client.Close()
		return fail(fmt.Errorf("imapstore: greeting from %s: %w", opts.Addr, err))
	}
	t0 := time.Now()
	err = client.Login(opts.User, opts.Password).Wait()
	if opts.Observe != nil {
		opts.Observe("LOGIN", err, time.Since(t0))
	}
	if err != nil {
		client.Close()
		var ie *imap.Error
		if errors.As(err, &ie) {
			return fail(loginRefused(opts, ie))
		}
		return fail(fmt.Errorf("imapstore: login to %s: %w", opts.Addr, err))
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, client, nil
}

// Features returns what the server offers.
func (s *Session) Features() Features { return s.features }

// User is the login name of this session.
func (s *Session) User() string { return s.opts.User }

// Closed is closed when the connection is gone.
func (s *Session) Closed() <-chan struct{} { return s.client.Closed() }

// Close logs out (briefly) and closes the connection.
func (s *Session) Close() error {
	_ = s.conn.SetDeadline(time.Now().Add(2 * time.Second))
	_ = s.client.Logout().Wait()
	return s.client.Close()
}

func (s *Session) changed() {
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// bind gives the socket a deadline and closes the connection if ctx ends
// first. The returned func undoes both (but not a close that happened).
func (s *Session) bind(ctx context.Context) (release func()) {
	_ = s.conn.SetDeadline(time.Now().Add(s.opts.timeout()))
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	return func() {
		stop()
		_ = s.conn.SetDeadline(time.Time{})
	}
}

// observe runs one command and reports it. Each command gets the whole
// timeout from its start: the deadline on the connection is set here, so
// that a slow answer to one command cannot eat the time of the next.
func (s *Session) observe(name string, f func() error) error {
	t0 := time.Now()
	s.progress()
	err := f()
	if s.opts.Observe != nil {
		s.opts.Observe(name, err, time.Since(t0))
	}
	return err
}

// progress moves the connection's deadline a timeout ahead: called when
// a command starts, and as a long answer (a FETCH of thousands of
// messages) keeps arriving, so that only a stalled server times out.
func (s *Session) progress() {
	if s.conn != nil {
		_ = s.conn.SetDeadline(time.Now().Add(s.opts.timeout()))
	}
}

// ownDeadlines hides the connection's deadlines from go-imap, which sets
// its own: a fixed 30 s while a response is being read, and none at all
// while it waits for the next one — so a server that stops answering
// between two responses would hold a command forever. fbpub sets the
// deadlines itself (bind, progress), on the connection underneath.
type ownDeadlines struct{ net.Conn }

func (ownDeadlines) SetDeadline(time.Time) error      { return nil }
func (ownDeadlines) SetReadDeadline(time.Time) error  { return nil }
func (ownDeadlines) SetWriteDeadline(time.Time) error { return nil }

// opErr wraps a failed operation, preferring the context's reason when the
// context ended the connection.
func opErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("imapstore: %s: %w", what, context.Cause(ctx))
	}
	return fmt.Errorf("imapstore: %s: %w", what, err)
}

// Noop sends NOOP: a cheap round trip that proves the session is alive.
func (s *Session) Noop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	release := s.bind(ctx)
	defer release()
	if err := s.observe("NOOP", func() error { return s.client.Noop().Wait() }); err != nil {
		return opErr(ctx, "NOOP", err)
	}
	return nil
}
