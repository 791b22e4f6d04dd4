package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/connlimit"
	"github.com/fbpub/fbpub/internal/feed"
	"github.com/fbpub/fbpub/internal/httpapi"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/upload"
	"github.com/fbpub/fbpub/metrics"
)

// loadConfig applies defaults, the config file (--config or FBPUB_CONFIG),
// the environment and the flags, in that order, and validates the result.
// environ is the process's environment, for the warning about unknown
// FBPUB_* variables; a variable for tests.
var environ = os.Environ

func loadConfig(name string, args []string, stderr io.Writer, getenv func(string) string) (config.Config, error) {
	cfg := config.Default()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", getenv("FBPUB_CONFIG"), "TOML configuration file (also FBPUB_CONFIG)")
	// Parse once to find the file, then again so that flags win over it.
	probe := flag.NewFlagSet(name, flag.ContinueOnError)
	probe.SetOutput(io.Discard)
	pfile := probe.String("config", *file, "")
	probe.Usage = func() {}
	var scratch config.Config
	scratch.Flags(probe)
	_ = probe.Parse(args)
	if *pfile != "" {
		if err := cfg.LoadFile(*pfile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(getenv); err != nil {
		return cfg, err
	}
	cfg.Warnings = append(cfg.Warnings, config.UnknownEnv(environ())...)
	cfg.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig("serve", args, stderr, getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	s, err := newService(cfg, log)
	if err != nil {
		return err
	}
	return s.run(ctx, nil)
}

// service is fbpub wired together: IMAP pool → feed cache → HTTP.
type service struct {
	cfg     config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics.Metrics
	// imap is how every connection reaches the IMAP server.
	imap    imapServer
	pool    *imapstore.Pool
	cache   *feed.Cache
	handler http.Handler
	// watcher pushes changes of the most requested folders (IDLE); nil
	// when publish.watch is 0.
	watcher *imapstore.Watcher
	// shared is the state shared with other replicas through Redis; nil
	// when cache.redis is not set. run closes it.
	shared *shared.Client
	// replicas is what replicas sharing Redis do for each other (see
	// replicas.go); nil without Redis.
	replicas *replicas
}

func newService(cfg config.Config, log *slog.Logger) (*service, error) {
	password, err := cfg.Password()
	if err != nil {
		return nil, err
	}
	mode := imapstore.TLSMode(cfg.IMAP.TLSMode())
	tlsConfig, err := caConfig("imap.ca_file", cfg.IMAP.CAFile)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		tlsConfig.ServerName, _, _ = net.SplitHostPort(cfg.IMAP.Addr)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	srv := imapServer{addr: cfg.IMAP.Addr, tls: mode, tlsConfig: tlsConfig, timeout: time.Duration(cfg.IMAP.Timeout), metrics: m}
	po := srv.options(cfg.IMAP.User, password)
	po.OnReconnect = m.IMAPReconnects.Inc
	po.OnConnections = func(d int) { m.IMAPConnections.Add(float64(d)) }
	po.Logger = log.With("component", "imap")
	pool := imapstore.NewPool(po, cfg.IMAP.Connections)
	policy := cfg.Policy(serverSemantics(pool, time.Duration(cfg.IMAP.Timeout)))
	policy.Unresolved = unresolvedGroups(log, m)
	proxies, err := cfg.TrustedProxies()
	if err != nil {
		return nil, err
	}
	// The last step that can fail: nothing after it closes the client.
	sharedState, err := newShared(cfg, reg, log)
	if err != nil {
		return nil, err
	}
	svc := &service{cfg: cfg, log: log, reg: reg, metrics: m, pool: pool, imap: srv, shared: sharedState}
	svc.cache = svc.newCache(policy)
	svc.handler = svc.newHandler(policy, proxies)
	switch {
	case sharedState != nil:
		svc.replicas = svc.newReplicas(password)
	case cfg.Publish.Watch > 0:
		svc.watcher = svc.newWatcher(password)
	}
	return svc, nil
}

// imapServer is what every IMAP connection of fbpub shares: the server,
// how to reach it, and the metrics of its commands.
type imapServer struct {
	addr      string
	tls       imapstore.TLSMode
	tlsConfig *tls.Config
	timeout   time.Duration
	metrics   *metrics.Metrics
}

// options are the options of a connection that logs in as user, without
// a logger.
func (s imapServer) options(user, password string) imapstore.Options {
	return imapstore.Options{Addr: s.addr, TLS: s.tls, TLSConfig: s.tlsConfig,
		User: user, Password: password, Timeout: s.timeout,
		Observe: func(cmd string, err error, d time.Duration) { s.metrics.ObserveIMAP(cmd, imapResult(err), d) }}
}

// dial opens a session as user, for uploads and link management, which
// write as the requester.
func (s imapServer) dial(ctx context.Context, user, password string) (*imapstore.Session, error) {
	return imapstore.Dial(ctx, s.options(user, password))
}

// serverSemantics says how the server combines ACL entries, for a
// requester other than the owner: Dovecot's precedence layers (in a
// shared namespace, where Dovecot grants no owner rights), Cyrus's union
// (where "authenticated" is a plain user name), else the RFC's union.
func serverSemantics(pool *imapstore.Pool, timeout time.Duration) func(string) *acl.Options {
	return func(string) *acl.Options {
		switch serverOf(pool, timeout) {
		case imapstore.ServerDovecot:
			return acl.Dovecot("")
		case imapstore.ServerCyrus:
			return acl.Cyrus()
		}
		return nil
	}
}

// serverOf is the server the pool's sessions found (its ID), "" when
// unknown or no session could log in within timeout.
func serverOf(pool *imapstore.Pool, timeout time.Duration) string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f, err := pool.Features(ctx)
	if err != nil {
		return ""
	}
	return f.Server
}

// serverMetadata says who may write a folder's shared annotations on the
// server: Cyrus asks for l, r and w; RFC 5464, which Dovecot follows, l
// and one of r, s, w, i, p.
func serverMetadata(pool *imapstore.Pool, timeout time.Duration) func() acl.MetadataRule {
	return func() acl.MetadataRule {
		if serverOf(pool, timeout) == imapstore.ServerCyrus {
			return acl.CyrusMetadata
		}
		return acl.RFCMetadata
	}
}

// newCache makes the feed cache over the pool.
func (s *service) newCache(policy *acl.Policy) *feed.Cache {
	cfg := s.cfg
	if limit := memoryLimit(cfg.Cache.MaxBytes); limit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
	return feed.New(feed.Options{
		Policy:            policy,
		Proxy:             cfg.IMAP.User,
		Metadata:          serverMetadata(s.pool, time.Duration(cfg.IMAP.Timeout)),
		Source:            s.pool,
		CheckInterval:     time.Duration(cfg.Publish.CheckInterval),
		Revalidate:        time.Duration(cfg.Publish.Revalidate),
		RevalidateWatched: time.Duration(cfg.Publish.RevalidateWatched),
		Discovery:         time.Duration(cfg.Publish.Discovery),
		CheckBudget:       time.Duration(cfg.Publish.CheckBudget),
		Patterns:          cfg.Publish.Folders,
		StateDir:          cfg.Publish.StateDir,
		MaxBytes:          cfg.Cache.MaxBytes,
		Metrics:           s.metrics,
		Logger:            s.log,
		// An owner a look-up did not find is not looked up again for a
		// minute (discovery may still find them).
		NegativeTTL: min(time.Duration(cfg.Publish.Discovery), time.Minute),
	})
}

// memoryLimit is the Go runtime's soft memory limit for a cache bounded
// to maxBytes (0: none): twice the bound, for the garbage between
// collections, and 128 MiB for the rest of the process. Far below it the
// collector paces itself as GOGC says; near it, it collects sooner, so
// the resident size follows cache.max_bytes. GOMEMLIMIT, when set, wins.
func memoryLimit(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return 0
	}
	return 2*maxBytes + 128<<20
}

// newHandler makes the HTTP handler over the cache, with uploads and
// secret links when they are enabled.
func (s *service) newHandler(policy *acl.Policy, proxies []netip.Prefix) http.Handler {
	cfg := s.cfg
	var putCalendar func(context.Context, upload.Request) (upload.Result, error)
	if cfg.Upload.Enabled {
		putCalendar = upload.New(upload.Options{Dial: s.imap.dial, LogFolder: cfg.Upload.LogFolder,
			MaxEvents: cfg.Upload.MaxEvents, Logger: s.log,
			// Replicas (cache.redis): one upload per folder at a time
			// across them, by a lease in Redis; nil: this process's lock.
			Shared: s.shared}).Put
	}
	var links *httpapi.LinkStore
	if cfg.Publish.Links {
		links = &httpapi.LinkStore{
			Read: s.pool.Links,
			Dial: func(ctx context.Context, user, password string) (httpapi.LinkSession, error) {
				sess, err := s.imap.dial(ctx, user, password)
				if err != nil {
					return nil, err // not a nil *Session in an interface
				}
				return sess, nil
			},
			Proxy: cfg.IMAP.User, TTL: time.Duration(cfg.Publish.CheckInterval), BaseURL: cfg.Publish.PublicURL,
		}
	}
	team := httpapi.Team{Groups: cfg.Teams, MaxGroup: cfg.Publish.MaxGroup,
		WorkingHours: cfg.WorkingHours(), OffHours: cfg.Publish.OffHours == "unavailable"}
	return httpapi.New(httpapi.Options{
		Cache:      s.cache,
		MailDomain: cfg.Publish.MailDomain,
		PastDays:   cfg.Publish.PastDays, FutureDays: cfg.Publish.FutureDays,
		Zone:      cfg.Zones(),
		Addresses: cfg.Publish.Addresses,
		MaxAge:    time.Duration(cfg.Publish.CheckInterval),
		Refresh:   time.Duration(cfg.Publish.Refresh),
		Ready:     s.pool.Ping,
		Verify: func(ctx context.Context, c httpapi.Credentials) (httpapi.Verified, error) {
			user, err := imapstore.CheckLogin(ctx, s.imap.options(c.User, c.Password), c.Client)
			if errors.Is(err, imapstore.ErrAuth) {
				return httpapi.Verified{}, nil
			}
			return httpapi.Verified{OK: err == nil, User: user}, err
		},
		Logins: httpapi.LoginLimits{Concurrent: cfg.Access.LoginChecks, Wait: time.Duration(cfg.Access.LoginWait),
			PerAddress: cfg.Access.LoginFailuresPerAddress, Global: cfg.Access.LoginFailures},
		Upload:         putCalendar,
		MaxUpload:      cfg.Upload.MaxBytes,
		Policy:         policy,
		Groups:         cfg.Groups(),
		UserHeader:     cfg.Access.UserHeader,
		TrustedProxies: proxies,
		Team:           team,
		Links:          links,
		ReadyDetail:    s.readyDetail(),
		Gatherer:       s.reg,
		Metrics:        s.metrics,
		Logger:         s.log,
		// Replicas (cache.redis): failed logins and wrong links are
		// counted across them; nil: in this process.
		Shared: s.shared,
	})
}

// newWatcher makes the watcher that pushes changes of the published
// folders, logged in as the proxy.
func (s *service) newWatcher(password string) *imapstore.Watcher {
	o := s.imap.options(s.cfg.IMAP.User, password)
	o.Logger = s.log.With("component", "watch")
	changed := s.cache.Changed
	// A NOTIFY connection reads the states of its folders once its
	// NOTIFY SET is in effect: only those that moved since their owner's
	// last check need another. Replicas are told of every folder
	// instead, as their checks may be older than this one's.
	settled := s.cache.Settled
	if s.shared != nil {
		changed = s.cache.Announce // to every replica
		settled = nil
	}
	return imapstore.NewWatcherWith(imapstore.WatchOptions{
		Options:  o,
		MaxIdle:  s.cfg.Publish.Watch,
		NoNotify: !s.cfg.Publish.Notify,
		// Up to notify_connections NOTIFY SETs of 2,000 folders each,
		// opened as the published folders need them.
		NotifyConns: s.cfg.Publish.NotifyConnections,
		// Where more folders are published than the NOTIFY SETs
		// carry, the watch may take in a folder requested far more
		// than the others every half minute (watchHot,
		// Cache.Watchlist); following them that often cost
		// Dovecot more (a NOTIFY SET, an EXAMINE of each new folder, a
		// resync of every folder) than the checks it saved.
		Hold: 5 * time.Minute,
		// A folder a NOTIFY connection watches may have changed unseen
		// when that connection was down or its list was being
		// replaced: the watcher then reads their states (Settled), or
		// calls Changed for each folder of that connection, so that
		// their next requests read their states again. The others were
		// never relied on being watched, and their checks went on as
		// ever.
		Changed: changed,
		Settled: settled,
	})
}

// run logs in once to report the server's features, then serves HTTP until
// ctx ends, and shuts down gracefully. ready, when not nil, receives the
// listening address.
func (s *service) run(ctx context.Context, ready chan<- string) error {
	defer s.pool.Close()
	if s.shared != nil {
		defer s.shared.Close()
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.announce(ctx)
	// The cache works with the other replicas before its first
	// discovery pass, whose owner checks they share.
	if s.replicas != nil {
		defer s.replicas.start(ctx)()
	}
	// Owners are discovered in the background: requests do not wait
	// for the whole directory.
	dctx, stopDiscovery := context.WithCancel(ctx)
	var discovery sync.WaitGroup
	s.cache.Starting() // a request before Run's first pass waits for it
	discovery.Go(func() { s.cache.Run(dctx) })
	defer discovery.Wait()
	defer stopDiscovery()
	if s.watcher != nil {
		defer s.watcher.Close()
		go s.watchHot(ctx, s.watcher, nil)
	}
	srv := s.httpServer()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.limit(ln)) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "version", version())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// httpServer is the HTTP server of run: net/http with timeouts for clients
// that stop sending; limit deals with those that stop reading.
func (s *service) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// limit bounds the open HTTP connections (http.max_connections) and how
// long a write to a client may block (http.write_timeout), and counts
// both. Reaching the bound is logged at most once a minute.
func (s *service) limit(ln net.Listener) net.Listener {
	var lastWarn atomic.Int64 // unix seconds
	return connlimit.Listen(ln, connlimit.Options{
		Max:          s.cfg.HTTP.MaxConnections,
		WriteTimeout: time.Duration(s.cfg.HTTP.WriteTimeout),
		Open:         func(d int) { s.metrics.HTTPConnections.Add(float64(d)) },
		Waited: func() {
			s.metrics.HTTPConnectionsWaited.Inc()
			now, last := time.Now().Unix(), lastWarn.Load()
			if now-last >= 60 && lastWarn.CompareAndSwap(last, now) {
				s.log.Warn("HTTP connection limit reached: new connections wait until one closes",
					"max_connections", s.cfg.HTTP.MaxConnections)
			}
		},
		TimedOut: s.metrics.HTTPWriteTimeouts.Inc,
	})
}

// watchHot gives the watcher w the published folders, those requested far
// more than the others first and those it watches next (see
// Cache.Watchlist), every half minute and within a few seconds of a
// folder's first publication: with NOTIFY it watches them all (as many
// as its connections carry), with IDLE the first publish.watch. onTick,
// when set, is told every few seconds what w watches with NOTIFY (nil
// with IDLE), and ends the watch by returning false.
func (s *service) watchHot(ctx context.Context, w *imapstore.Watcher, onTick func(notified []string) bool) {
	const tick, every = 2 * time.Second, 30 * time.Second
	var last, warned time.Time
	var published uint64
	// The cache asks w at each request which folders NOTIFY watches, so
	// that one stops counting the moment w stops watching it.
	s.cache.WatchedBy(w)
	defer s.cache.WatchedBy(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
		// Folders published since the last Watch (a first request for
		// an owner) are watched at the next tick, not half a minute on.
		if p := s.cache.Published(); time.Since(last) >= every || p != published {
			if list := s.cache.Watchlist(w.Watching()); len(list) > 0 {
				w.Watch(list)
				last, published = time.Now(), p
				// Whether the NOTIFY connections carry the list
				// changes with a new list: asked then, not every tick.
				if w.Mode() == imapstore.WatchNotify && time.Since(warned) >= time.Hour {
					if carried, wanted := w.NotifyCapacity(); carried < wanted {
						warned = time.Now()
						s.warnNotifyFull(carried, wanted)
					}
				}
			}
		}
		// The watcher connects in the background, and learns only then
		// whether it has NOTIFY. What NOTIFY watches is not polled.
		watching := w.Watching()
		s.metrics.Watched.Set(float64(len(watching)))
		if onTick == nil {
			continue
		}
		var notified []string
		if w.Mode() == imapstore.WatchNotify {
			// What the other replicas may rely on: not the folders
			// whose NOTIFY SET is still under way.
			notified = slices.DeleteFunc(slices.Clone(watching), func(f string) bool { return !w.Watched(f) })
		}
		if !onTick(notified) {
			return
		}
	}
}

// warnNotifyFull says, at most once an hour (watchHot), that the NOTIFY
// connections carry carried of the wanted published folders, and what
// would watch them all: the rest cost a STATUS at their owners' requests.
func (s *service) warnNotifyFull(carried, wanted int) {
	conns := s.cfg.Publish.NotifyConnections
	need := notifyConnsFor(carried, wanted, conns)
	advice := fmt.Sprintf("set publish.notify_connections = %d and let fbpub's address open %d more IMAP connections (Dovecot: mail_max_userip_connections); see README, \"More than 8,000 published folders\"", need, need-conns)
	if need > config.MaxNotifyConnections {
		advice = fmt.Sprintf("publish.notify_connections = %d (its most) watches about %d; the rest stay polled", config.MaxNotifyConnections, carried*config.MaxNotifyConnections/max(conns, 1))
	}
	s.log.Warn("more published folders than the NOTIFY connections watch: the others are checked at their owners' requests, a STATUS each",
		"watched", carried, "published", wanted, "notify_connections", conns, "advice", advice)
}

// notifyConnsFor is how many NOTIFY connections would carry wanted
// folders, when conns carry carried of them.
func notifyConnsFor(carried, wanted, conns int) int {
	if carried <= 0 || conns <= 0 {
		return conns
	}
	return (wanted*conns + carried - 1) / carried
}

// announce logs in once and says which server features fbpub found and
// which of its own it turned off for lack of them. An unreachable server
// is not fatal: fbpub serves errors until it comes back.
func (s *service) announce(ctx context.Context) {
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	f, err := s.pool.Features(actx)
	if err != nil {
		s.log.Warn("IMAP server not reachable yet; answering 503 until it is", "addr", s.cfg.IMAP.Addr, "err", err)
		return
	}
	s.log.Info("logged in to IMAP", "addr", s.cfg.IMAP.Addr, "user", s.cfg.IMAP.User, "features", f.String())
	if !f.ACL {
		s.log.Warn("server has no ACL extension (RFC 4314): publishing every calendar folder the proxy can select")
	}
	if !f.CondStore {
		s.log.Warn("server has no CONDSTORE (RFC 7162): detecting changes by UIDNEXT and message counts")
	}
	if !f.ListStatus {
		s.log.Info("server has no LIST-STATUS: reading folder states with pipelined STATUS")
	}
	if !f.Namespace {
		s.log.Warn("server has no NAMESPACE: every folder counts as the proxy's own")
	}
}

// caConfig is a TLS configuration trusting the system's roots and the
// PEM certificates in file (the setting named key); nil when file is "".
func caConfig(key, file string) (*tls.Config, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", key, err)
	}
	roots, _ := x509.SystemCertPool()
	if roots == nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("config: %s: no certificate in %s", key, file)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// newShared connects to the Redis of cache.redis, registering its metrics
// on reg; nil when cache.redis is not set. An unreachable Redis is not an
// error (the replica starts degraded, on local state).
//
// Shared through it (README, "Several replicas"): snapshots, owner checks
// and look-ups, and the IMAP watch (wired in replicas.go), the upload
// locks and the failed-login and wrong-link throttles; /readyz and the
// fbpub_redis_* metrics show its mode.
func newShared(cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (*shared.Client, error) {
	if cfg.Cache.Redis == "" {
		return nil, nil
	}
	password, err := cfg.RedisPassword()
	if err != nil {
		return nil, err
	}
	tlsConfig, err := caConfig("cache.redis_ca_file", cfg.Cache.RedisCAFile)
	if err != nil {
		return nil, err
	}
	c, err := shared.New(shared.Options{
		URL: string(cfg.Cache.Redis), Password: password, TLSConfig: tlsConfig,
		Timeout: time.Duration(cfg.Cache.RedisTimeout),
		Metrics: metrics.NewRedis(reg), Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("config: cache.redis: %w", err)
	}
	return c, nil
}

// readyDetail is what /readyz adds to "ready": the shared state's mode;
// nil without Redis.
func (s *service) readyDetail() func() string {
	if s.shared == nil {
		return nil
	}
	return s.shared.Ready
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

// imapResult names the outcome of an IMAP command for the metrics: "ok",
// "no" (the server refused) or "error" (the connection failed).
func imapResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case imapstore.Refused(err):
		return "no"
	}
	return "error"
}
