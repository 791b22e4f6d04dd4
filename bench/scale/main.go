// Command scale measures fbpub as a site runs it: a private Dovecot (or,
// with -server cyrus, Cyrus) with N mailboxes, the fbpub binary in front
// of it, and clients asking for random users' free/busy. See
// bench/README.md.
//
//	go run ./bench/scale -n 1000
//	go run ./bench/scale -n 5000 -duration 30s -notify on,off
//	go run ./bench/scale -n 5000 -server cyrus -notify off
//
// Each user has INBOX, Sent, Drafts, Trash, Archive and a Calendar of 30
// events; nine users in ten share the Calendar with the proxy. For each
// NOTIFY setting fbpub is started cold and measured in phases: start (time
// to the first answer and to /readyz), first touch (every user once),
// steady random load at each rate, idle, and one change (an event
// appended, until fbpub's answer shows it). Per phase the report gives the
// IMAP commands fbpub sent, by verb and per request (from its /metrics),
// Dovecot's CPU (all its processes, from /proc), fbpub's CPU per request,
// its resident memory and heap per cached event, and latency percentiles.
// (The report says "Dovecot" or "Cyrus" for the IMAP server's figures.)
// The report is printed and saved to bench/results/scale-<date>-n<N>.txt.
//
// Everything runs on loopback, in a temporary directory removed at the
// end (-keep keeps it); the load is bounded in count and time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fbpub/fbpub/internal/testbed/site"
)

func main() {
	n := flag.Int("n", 1000, "mailboxes (users) on the IMAP server")
	duration := flag.Duration("duration", 30*time.Second, "length of each steady-load phase and of the idle phase")
	rates := flag.String("rates", "50,500", "request rates of the steady-load phases, per second")
	notify := flag.String("notify", "on,off", "FBPUB_NOTIFY settings to run, each with a cold start")
	sharingOnly := flag.Bool("sharing-only", false, "ask only for users who share a Calendar: no phase of names sharing nothing, and steady load over the sharing users (no look-ups, whose proxy sessions cost Dovecot memory per sharer)")
	touchConc := flag.Int("touch-concurrency", 8, "clients of the first-touch phase")
	maxInflight := flag.Int("max-inflight", 256, "requests in flight at most during steady load; a tick past it is counted as dropped")
	keep := flag.Bool("keep", false, "keep the temporary directory (Dovecot's data, fbpub's log)")
	replicas := flag.String("replicas", "1", "replica counts to run, each with its cold starts: 1, or n replicas sharing one redis-server behind a round-robin proxy (e.g. 1,3)")
	server := flag.String("server", "dovecot", "the IMAP server: dovecot, or cyrus (Cyrus 3.6: no NOTIFY, so -notify off is what it runs either way)")
	probeBatch := flag.Int("probe", 0, "instead of running fbpub, measure Dovecot's CPU per per-owner LIST and STATUS over batches of this many owners (see site.Dovecot.Probe), then stop")
	out := flag.String("out", "", "report file (default bench/results/scale-<UTC date-time>-n<N>.txt; \"-\" saves none)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{n: *n, duration: *duration, touchConc: *touchConc, maxInflight: *maxInflight, keep: *keep, out: *out, sharingOnly: *sharingOnly, probe: *probeBatch, server: *server}
	if cfg.server != "dovecot" && cfg.server != "cyrus" {
		fmt.Fprintf(os.Stderr, "scale: bad -server %q (dovecot or cyrus)\n", *server)
		os.Exit(2)
	}
	if cfg.server == "cyrus" && cfg.probe > 0 {
		fmt.Fprintln(os.Stderr, "scale: -probe measures Dovecot only")
		os.Exit(2)
	}
	for _, r := range strings.Split(*rates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "scale: bad -rates %q\n", *rates)
			os.Exit(2)
		}
		cfg.rates = append(cfg.rates, v)
	}
	for _, s := range strings.Split(*notify, ",") {
		switch s = strings.TrimSpace(s); s {
		case "on", "off":
			cfg.notify = append(cfg.notify, s == "on")
		default:
			fmt.Fprintf(os.Stderr, "scale: bad -notify %q (on, off or on,off)\n", *notify)
			os.Exit(2)
		}
	}
	for _, r := range strings.Split(*replicas, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "scale: bad -replicas %q\n", *replicas)
			os.Exit(2)
		}
		cfg.replicas = append(cfg.replicas, v)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	n           int
	duration    time.Duration
	rates       []int
	notify      []bool
	touchConc   int
	maxInflight int
	keep        bool
	out         string
	sharingOnly bool
	// replicas are the replica counts to run; replicaN the one of a run.
	replicas []int
	replicaN int
	probe    int
	server   string // dovecot or cyrus
}

// imapServer is the IMAP server of a run: a site.Dovecot or a site.Cyrus.
type imapServer interface {
	Name() string
	Address() string
	// MasterPID is the server's master process: its CPU and its
	// children's are the server's.
	MasterPID() (int, error)
	Stop(keep bool) error
	// WarmUp lists the other users' folders as the proxy, once.
	WarmUp() (time.Duration, int, error)
	// Append appends one event to owner's Calendar.
	Append(owner, uid string, start time.Time, dur time.Duration) error
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale: %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, cfg config) (err error) {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "fbpub-scale.")
	if err != nil {
		return err
	}
	// Dovecot's unprivileged processes read the passwd-file and homes below.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	defer func() {
		if cfg.keep || err != nil {
			logf("kept %s", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()

	logf("building fbpub")
	bin := filepath.Join(tmp, "fbpub")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fbpub")
	build.Dir, build.Stderr = root, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	rev, _ := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()

	var rep report
	rep.printf("bench/scale: N = %d mailboxes on %s, %s, fbpub %s", cfg.n, map[string]string{"dovecot": "Dovecot", "cyrus": "Cyrus"}[cfg.server], time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.TrimSpace(string(rev)))
	load, _ := os.ReadFile("/proc/loadavg")
	rep.printf("machine: %d CPUs (GOMAXPROCS of fbpub = %d), load average at start %s", runtime.NumCPU(), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	rep.printf("mailboxes: INBOX, Sent, Drafts, Trash, Archive, Calendar (%d events, 6 of them weekly series of 4); 9 in 10 share the Calendar with %s (lr)", site.EventsPerCalendar, site.Proxy)
	rep.printf("fbpub: defaults (check interval 1 s, revalidate 5 min, revalidate_watched 1 h, discovery 5 min), FBPUB_NOTIFY as per run; FBPUB_STATE_DIR empty at start (a cold start), kept for the restart phase (one replica)")
	// fbpub inherits the environment: say which of the Go runtime's knobs
	// and of fbpub's own settings were set (the harness sets the IMAP
	// ones, FBPUB_NOTIFY and FBPUB_STATE_DIR itself).
	var knobs []string
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			knobs = append(knobs, k+"="+v)
		}
	}
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FBPUB_") && !strings.Contains(k, "PASSWORD") {
			knobs = append(knobs, k+"="+strconv.Quote(v))
		}
	}
	if len(knobs) > 0 {
		rep.printf("fbpub's environment: %s", strings.Join(knobs, " "))
	}
	if cfg.sharingOnly {
		rep.printf("-sharing-only: no request for a user who shares nothing (no look-ups)")
	}

	// --- the IMAP server and its users ---
	t0 := time.Now()
	names := make([]string, cfg.n)
	for i := range names {
		names[i] = fmt.Sprintf("u%05d", i)
	}
	now := time.Now()
	var (
		srv    imapServer
		dc     *site.Dovecot
		shared []string
	)
	if cfg.server == "cyrus" {
		cy, err := site.StartCyrus(root, filepath.Join(tmp, "cyrus"))
		if err != nil {
			return err
		}
		defer func() { cy.Stop(cfg.keep || err != nil) }()
		logf("creating %d users in %s", cfg.n, cy.Dir)
		if shared, err = cy.Populate(names, now); err != nil {
			return err
		}
		srv = cy
	} else {
		dc, err = site.Start(root, filepath.Join(tmp, "dc"))
		if err != nil {
			return err
		}
		defer func() { dc.Stop(cfg.keep || err != nil) }()
		logf("creating %d users in %s", cfg.n, dc.Dir)
		var dc2 *site.Dovecot
		dc2, shared, err = dc.Populate(names, now)
		if err != nil {
			return err
		}
		*dc = *dc2
		srv = dc
	}
	rep.printf("setup: %d users (%d sharing, %d events cached after a first touch) created in %.1f s; %s at %s",
		cfg.n, len(shared), len(shared)*site.EventsPerCalendar, time.Since(t0).Seconds(), srv.Name(), srv.Address())
	// The first LIST of the shared namespace after the directory was
	// written makes Dovecot create the proxy's private index of every
	// sharer (INDEXPVT) and read every ACL for the first time: a one-time
	// cost of a new site, not of an fbpub start, made here so that every
	// run starts from the same server (on Cyrus too, for the same start).
	warm, folders, err := srv.WarmUp()
	if err != nil {
		return err
	}
	rep.printf("%s's first LIST of the other users' folders with STATUS as %s after the directory was written: %d folders in %.1f s (one-time; not part of any phase)", srv.Name(), site.Proxy, folders, warm.Seconds())
	rep.printf("")
	rep.printf("The machine is shared with other developers' jobs (2 CPUs): trust counts (IMAP commands per")
	rep.printf("request, CPU time per request) more than wall-clock figures (latency, start-up, CPU %% of a core).")

	var runErr error
	if cfg.probe > 0 {
		pid, err := dc.MasterPID()
		if err != nil {
			return err
		}
		runErr = dc.Probe(func() time.Duration { return treeCPU(pid) }, rep.printf, shared, cfg.probe)
		cfg.notify = nil
	}
	n := 0
runs:
	for _, nr := range cfg.replicas {
		for _, nt := range cfg.notify {
			if runErr = ctx.Err(); runErr != nil {
				break runs
			}
			c := cfg
			c.replicaN = nr
			if runErr = runFbpub(ctx, c, &rep, srv, bin, tmp, names, shared, nt, n); runErr != nil {
				break runs
			}
			n++
		}
	}
	if runErr != nil {
		// Interrupted (Ctrl-C) or failed: the phases measured so far are
		// saved, marked as such.
		rep.printf("")
		rep.printf("INCOMPLETE: %v", runErr)
	}

	path := cfg.out
	if path == "" {
		path = filepath.Join(root, "bench", "results", fmt.Sprintf("scale-%s-n%d.txt", time.Now().UTC().Format("20060102-150405"), cfg.n))
	}
	if path != "-" {
		if err := os.WriteFile(path, []byte(rep.String()), 0o644); err != nil {
			return err
		}
		logf("saved %s", path)
	}
	return runErr
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside fbpub's module")
	}
	return filepath.Dir(mod), nil
}

type report struct{ b strings.Builder }

func (r *report) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	r.b.WriteString(line + "\n")
	fmt.Fprintln(os.Stderr, line)
}

func (r *report) String() string { return r.b.String() }

// instance is a running fbpub.
type instance struct {
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	hc   *http.Client
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func runFbpub(ctx context.Context, cfg config, rep *report, srv imapServer, bin, tmp string, names, shared []string, notify bool, run int) error {
	nt := map[bool]string{true: "on", false: "off"}[notify]
	rep.printf("")
	if cfg.replicaN > 1 {
		rep.printf("=== NOTIFY %s, %d replicas sharing one redis-server behind a round-robin proxy, imap.connections %d each (CPU, memory and commands: their sum) ===", nt, cfg.replicaN, replicaConnections(cfg.replicaN))
	} else {
		rep.printf("=== NOTIFY %s ===", nt)
	}
	addr, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(tmp, fmt.Sprintf("fbpub-notify-%s-r%d.log", nt, cfg.replicaN))
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"FBPUB_IMAP_ADDR="+srv.Address(), "FBPUB_IMAP_TLS=none", "FBPUB_IMAP_USER="+site.Proxy,
		"FBPUB_IMAP_PASSWORD="+site.Password(site.Proxy), "FBPUB_MAIL_DOMAIN=example.org",
		"FBPUB_LISTEN="+addr, "FBPUB_NOTIFY="+strconv.FormatBool(notify), "FBPUB_LOG_LEVEL=info")
	// One replica keeps its state (snapshots, directory) in a directory
	// empty at start, for the restart phase; replicas keep none.
	var stateDir string
	if cfg.replicaN <= 1 {
		stateDir = filepath.Join(tmp, fmt.Sprintf("state-notify-%s", nt))
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return err
		}
		cmd.Env = append(cmd.Env, "FBPUB_STATE_DIR="+stateDir)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	tr := &http.Transport{MaxIdleConns: cfg.maxInflight, MaxIdleConnsPerHost: cfg.maxInflight, IdleConnTimeout: time.Minute}
	in := &instance{cmd: cmd, base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
	dcPID, err := srv.MasterPID()
	if err != nil {
		return err
	}
	m := &meter{in: in, dcPID: dcPID, server: srv.Name(), events: len(shared) * site.EventsPerCalendar}
	_, portStr, _ := net.SplitHostPort(srv.Address())
	port, _ := strconv.Atoi(portStr)
	wctx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Go(func() { m.watchConns(wctx, port) })
	defer func() { stopWatch(); watching.Wait() }()

	// --- start ---
	before := m.sample(ctx, false)
	start := time.Now()
	cl, err := startCluster(ctx, cmd, addr, cfg.replicaN, tmp)
	if err != nil {
		return err
	}
	defer func() {
		cl.stop()
		tr.CloseIdleConnections()
	}()
	m.pid, m.others = cl.pids()[0], cl.pids()[1:]
	first := shared[0]
	// The first answer and readiness are polled apart: a request that
	// waits for IMAP must not hide when /readyz turned 200.
	poll := func(path string) (time.Duration, error) { return pollOK(ctx, in, start, path, logPath) }
	var ready time.Duration
	var readyErr error
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		ready, readyErr = poll("/readyz")
	}()
	firstAnswer, err := poll("/freebusy/" + first + ".vfb")
	<-readyDone
	if err != nil {
		return err
	}
	if readyErr != nil {
		return readyErr
	}
	// Let the start-up discovery finish before the next phase, and count
	// it: until fbpub logged its first discovery pass, then sent no IMAP
	// command for a second (at most 10 min).
	discovered := waitLog(ctx, logPath, "owners discovered", 10*time.Minute)
	settled := m.quiet(ctx, time.Second, 10*time.Minute)
	rep.printf("start: first discovery pass logged %.1f s after exec", discovered.Sub(start).Seconds())
	after := m.sample(ctx, true)
	m.baseRSS, m.baseHeap = after.rss, after.heap
	rep.printf("start: first answer (%s.vfb) %.0f ms after exec, /readyz 200 after %.0f ms", first, ms(firstAnswer), ms(ready))
	m.report(rep, fmt.Sprintf("start, until no IMAP command for 1 s (discovery done: %.1f s after exec)", settled.Sub(start).Seconds()-1), before, after, nil)

	// --- first touch ---
	// Every sharing user once, then those who share nothing, for at most
	// the phase duration: each of them makes fbpub look the name up on
	// Dovecot (see bench/README.md).
	logf("NOTIFY %s: first touch of %d sharing users", nt, len(shared))
	order := slices.Clone(shared)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	before = m.sample(ctx, false)
	res := closedLoop(ctx, in, order, cfg.touchConc, time.Time{})
	after = m.sample(ctx, true)
	m.touched = true
	m.report(rep, fmt.Sprintf("first touch of the %d sharing users (%d clients)", len(order), cfg.touchConc), before, after, res)
	asked, whom := names, "random users"
	if cfg.sharingOnly {
		asked, whom = shared, "random sharing users"
	} else {
		var nothing []string
		for _, u := range names {
			if !sharing(u) {
				nothing = append(nothing, u)
			}
		}
		rand.Shuffle(len(nothing), func(i, j int) { nothing[i], nothing[j] = nothing[j], nothing[i] })
		logf("NOTIFY %s: first touch of %d users sharing nothing, at most %s", nt, len(nothing), cfg.duration)
		before = m.sample(ctx, false)
		res = closedLoop(ctx, in, nothing, cfg.touchConc, time.Now().Add(cfg.duration))
		after = m.sample(ctx, true)
		m.report(rep, fmt.Sprintf("first touch of the %d users sharing nothing (%d clients, at most %s: %d asked)", len(nothing), cfg.touchConc, cfg.duration, res.asked), before, after, res)
	}

	// --- steady load ---
	for _, rate := range cfg.rates {
		logf("NOTIFY %s: %d req/s for %s", nt, rate, cfg.duration)
		before = m.sample(ctx, false)
		res := openLoop(ctx, in, asked, rate, cfg.duration, cfg.maxInflight)
		after = m.sample(ctx, true)
		m.report(rep, fmt.Sprintf("steady %d req/s, %s, %s", rate, cfg.duration, whom), before, after, res)
	}

	// --- idle ---
	logf("NOTIFY %s: idle for %s", nt, cfg.duration)
	before = m.sample(ctx, false)
	select {
	case <-time.After(cfg.duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	after = m.sample(ctx, true)
	m.report(rep, fmt.Sprintf("idle %s", cfg.duration), before, after, nil)

	// --- one change ---
	// An event at 03:00 UTC tomorrow (the templates use 08:00–17:00; each
	// run its own day) in a cached user's Calendar (each run its own);
	// fbpub's answer is polled every 10 ms. With NOTIFY off nothing asks
	// for that user meanwhile but the poll itself.
	owner := shared[(len(shared)/2+run)%len(shared)]
	if _, _, err := in.get(ctx, "/freebusy/"+owner+".vfb"); err != nil {
		return err
	}
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1+run).Add(3 * time.Hour)
	want := at.Format("20060102T150405Z")
	before = m.sample(ctx, false)
	changed := time.Now()
	if err := srv.Append(owner, fmt.Sprintf("change-%s-%d@bench.fbpub", nt, time.Now().UnixNano()), at, time.Hour); err != nil {
		return fmt.Errorf("APPEND the change: %w", err)
	}
	var visible time.Duration
	polls := 0
	for visible == 0 {
		if time.Since(changed) > time.Minute {
			return fmt.Errorf("the change to %s was not visible within a minute", owner)
		}
		code, body, err := in.get(ctx, "/freebusy/"+owner+".vfb")
		polls++
		if err != nil {
			return err
		}
		if code == 200 && strings.Contains(body, want) {
			visible = time.Since(changed)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	after = m.sample(ctx, true)
	rep.printf("one change: an event appended to %s's Calendar was in the answer after %.0f ms (%d polls)", owner, ms(visible), polls)
	m.report(rep, "one change (until visible)", before, after, nil)

	if stateDir == "" {
		return nil
	}
	// --- restart ---
	// fbpub stopped (SIGTERM) and started again on its state directory:
	// the time to the first answer for the start phase's user, and what
	// it cost until then, then until the start-up discovery is done.
	logf("NOTIFY %s: restart on the state directory", nt)
	cl.stop()
	tr.CloseIdleConnections()
	rep.printf("restart: state directory %s", stateDirSize(stateDir))
	restartLog := filepath.Join(tmp, fmt.Sprintf("fbpub-notify-%s-restart.log", nt))
	logFile2, err := os.Create(restartLog)
	if err != nil {
		return err
	}
	defer logFile2.Close()
	cmd2 := exec.Command(cmd.Path, cmd.Args[1:]...)
	cmd2.Env, cmd2.Stdout, cmd2.Stderr = cmd.Env, logFile2, logFile2
	m.pid = 0         // the new process's counters start at zero
	m.touched = false // and it has cached only what it is asked for
	before = m.sample(ctx, false)
	start = time.Now()
	if cl, err = startCluster(ctx, cmd2, addr, 1, tmp); err != nil {
		return err
	}
	m.pid = cl.pids()[0]
	firstAnswer, err = pollOK(ctx, in, start, "/freebusy/"+first+".vfb", restartLog)
	if err != nil {
		return err
	}
	answered := m.sample(ctx, false)
	restored := "restored its directory"
	if b, _ := os.ReadFile(restartLog); !strings.Contains(string(b), "directory restored") {
		restored = "DID NOT restore its directory (a cold start)"
	}
	rep.printf("restart: first answer (%s.vfb) %.0f ms after exec; fbpub %s", first, ms(firstAnswer), restored)
	m.report(rep, "restart, until the first answer", before, answered, nil)
	discovered = waitLog(ctx, restartLog, "owners discovered", 10*time.Minute)
	settled = m.quiet(ctx, time.Second, 10*time.Minute)
	after = m.sample(ctx, false)
	m.report(rep, fmt.Sprintf("restart, until no IMAP command for 1 s (first discovery pass logged %.1f s after exec)", discovered.Sub(start).Seconds()), before, after, nil)
	return nil
}

// pollOK asks in for path every 5 ms until it answers 200 (at most 5
// minutes after start), and returns how long after start that was.
func pollOK(ctx context.Context, in *instance, start time.Time, path, logPath string) (time.Duration, error) {
	for deadline := start.Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("fbpub did not answer %s with 200 within 5 minutes (log %s)", path, logPath)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if code, _, _ := in.get(ctx, path); code == 200 {
			return time.Since(start), nil
		}
	}
}

// stateDirSize describes what fbpub keeps in dir: its directory file and
// the snapshots.
func stateDirSize(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var snaps, snapBytes, dirBytes int64
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case e.Name() == "directory.json":
			dirBytes = info.Size()
		case strings.HasSuffix(e.Name(), ".json"):
			snaps++
			snapBytes += info.Size()
		}
	}
	return fmt.Sprintf("directory.json %.1f KB, %d snapshots %.1f MB", float64(dirBytes)/1024, snaps, float64(snapBytes)/1e6)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitLog waits until the file at path holds text, at most max, and
// returns when it did (or gave up).
func waitLog(ctx context.Context, path, text string, max time.Duration) time.Time {
	for end := time.Now().Add(max); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), text) {
			return time.Now()
		}
	}
	return time.Now()
}
