package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-imap/v2"

	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/testbed"
)

// Replicas: several fbpub services share one Redis and one Dovecot, as
// behind a load balancer (README, "Several replicas"). Each test runs two
// of them in this process, each with its own Redis client, upload locks,
// throttles, IMAP pool and HTTP listener, exactly as two processes would
// have them.

// inproc is one fbpub replica run in this process: its service and its base URL.
type inproc struct {
	s    *service
	base string
}

// startReplicas runs n fbpub services against srv sharing the Redis at
// redisURL, each configured further by set, until the test ends. Each
// keeps within Dovecot's mail_max_userip_connections (10 per user and
// address): two pooled connections for the proxy and no watcher.
func startReplicas(t *testing.T, n int, srv *testbed.Server, redisURL string, set func(*config.Config)) []inproc {
	t.Helper()
	var out []inproc
	for range n {
		cfg := config.Default()
		cfg.Listen = "127.0.0.1:0"
		cfg.IMAP.Addr, cfg.IMAP.TLS = srv.Addr, "none"
		cfg.IMAP.User, cfg.IMAP.Password = testbed.Proxy, config.Secret(testbed.Password(testbed.Proxy))
		cfg.IMAP.Connections = 2
		cfg.Publish.Watch = 0
		cfg.Publish.MailDomain = "example.org"
		cfg.Cache.Redis = config.RedisURL(redisURL)
		cfg.Cache.RedisTimeout = config.Duration(200 * time.Millisecond)
		if set != nil {
			set(&cfg)
		}
		s, err := newService(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ready, errc := make(chan string, 1), make(chan error, 1)
		go func() { errc <- s.run(ctx, ready) }()
		t.Cleanup(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("run: %v", err)
			}
		})
		select {
		case addr := <-ready:
			out = append(out, inproc{s: s, base: "http://" + addr})
		case err := <-errc:
			t.Fatalf("run: %v", err)
		}
	}
	return out
}

// answer is one HTTP exchange, for goroutines that must not call t.Fatal.
type answer struct {
	code int
	hdr  http.Header
	body string
	err  error
}

// send sends one request as user (HTTP Basic with password; none when
// user is ""), without failing the test.
func send(method, url, user, password, body string) answer {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if method == http.MethodPut {
		req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, hdr: resp.Header, body: string(b), err: err}
}

// vevent is one VEVENT on day; seq "" leaves SEQUENCE out.
func vevent(uid, summary, seq, day, hour string) string {
	s := "BEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:" + day + "T" + hour + "0000Z\r\nDTEND:" + day + "T" + hour + "3000Z\r\nSUMMARY:" + summary + "\r\n"
	if seq != "" {
		s += "SEQUENCE:" + seq + "\r\n"
	}
	return s + "END:VEVENT\r\n"
}

func vcalendar(events ...string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fbpub tests//EN\r\n" + strings.Join(events, "") + "END:VCALENDAR\r\n"
}

// summariesIn reads owner's folder as the owner, straight from IMAP: for
// each UID, the SUMMARY of every message holding it, sorted. A folder that
// does not exist holds nothing.
func summariesIn(t *testing.T, srv *testbed.Server, owner, folder string) map[string][]string {
	t.Helper()
	c := srv.Dial(t, owner)
	defer c.Close()
	out := map[string][]string{}
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return out
	}
	if sel.NumMessages == 0 {
		return out
	}
	msgs, err := c.Fetch(imapAll(), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("fetching %s: %v", folder, err)
	}
	for _, m := range msgs {
		if slices.Contains(m.Flags, imap.FlagDeleted) {
			continue
		}
		parts, _ := calendar.MessageParts(m.BodySection[0].Bytes)
		for _, p := range parts {
			objs, _ := calendar.PartObjects(p)
			for _, o := range objs {
				for _, e := range o.Events() {
					s, _ := e.Props.Text(ical.PropSummary)
					out[o.UID] = append(out[o.UID], s)
				}
			}
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// metricValue returns the value of the sample of /metrics at base whose
// name and labels are series exactly (`fbpub_redis_up`,
// `fbpub_redis_fallbacks_total{op="lock"}`), or -1 when there is none.
func metricValue(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body := getBody(t, base+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	var v float64
	fmt.Sscan(m[1], &v)
	return v
}

// TestUploadsAcrossReplicas: two uploads of conflicting versions of one
// event, at once, through two replicas sharing a Redis, for 50 rounds.
// The replicas take turns (the folder's lease), so each round ends as one
// upload after the other would leave it: no event lost, the folder holding
// one copy of the event (the newest version), and every copy removed in
// the deleted-events log, once. The log does not exist at first: the two
// replicas must not both try to create it.
func TestUploadsAcrossReplicas(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	rs := testbed.StartRedis(t, nil)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("start", vcalendar(vevent("x", "start", "0", day, "09"), vevent("k", "Kept", "", day, "12"))))
	replicas := startReplicas(t, 2, srv, rs.URL(), nil)

	stored := []string{"start"} // every version that reached the folder
	newest, refusals := 0, 0
	const rounds = 50
	for round := 1; round <= rounds; round++ {
		// Replica 0 writes SEQUENCE round; replica 1 one less, as much
		// or one more, in turn.
		seqs := []int{round, round + round%3 - 1}
		summaries := make([]string, 2)
		answers := make([]answer, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, r := range replicas {
			summaries[i] = fmt.Sprintf("replica %d round %d seq %d", i, round, seqs[i])
			body := vcalendar(vevent("k", "Kept", "", day, "12"), vevent("x", summaries[i], fmt.Sprint(seqs[i]), day, "09"))
			wg.Go(func() {
				<-start
				answers[i] = send(http.MethodPut, r.base+"/calendar/alice/Calendar.ics", "alice", testbed.Password("alice"), body)
			})
		}
		close(start)
		wg.Wait()
		for i, a := range answers {
			if a.err != nil || a.code != http.StatusOK {
				t.Fatalf("round %d, PUT through replica %d = %d %v\n%s", round, i, a.code, a.err, a.body)
			}
			if strings.Contains(a.hdr.Get("X-Fbpub-Upload"), "refused=0") {
				stored = append(stored, summaries[i])
				newest = max(newest, seqs[i])
			} else {
				refusals++
			}
		}
		folder := summariesIn(t, srv, "alice", "Calendar")
		logged := summariesIn(t, srv, "alice", "Deleted Events")
		if len(folder["x"]) != 1 || !strings.HasSuffix(folder["x"][0], fmt.Sprintf(" seq %d", newest)) {
			t.Errorf("round %d: the folder holds %q of the event, want one copy, of SEQUENCE %d", round, folder["x"], newest)
		}
		for _, s := range stored {
			inFolder := slices.Contains(folder["x"], s)
			n := 0
			for _, l := range logged["x"] {
				if l == s {
					n++
				}
			}
			switch {
			case !inFolder && n == 0:
				t.Errorf("round %d: %q is lost: in neither the folder %q nor the log", round, s, folder["x"])
			case !inFolder && n != 1:
				t.Errorf("round %d: %q is in the log %d times, want once", round, s, n)
			case inFolder && n != 0:
				t.Errorf("round %d: %q is both in the folder and in the log", round, s)
			}
		}
		if fmt.Sprint(folder["k"]) != "[Kept]" || len(logged["k"]) != 0 {
			t.Errorf("round %d: the event both uploads left alone: folder %q, log %q", round, folder["k"], logged["k"])
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// The replicas did take turns: some upload waited for the other's
	// lease, and every lease was taken in Redis.
	waits := 0.0
	for _, r := range replicas {
		waits += metricValue(t, r.base, "fbpub_redis_lease_wait_seconds_count")
		if f := metricValue(t, r.base, `fbpub_redis_fallbacks_total{op="lock"}`); f != 0 {
			t.Errorf("%s: fbpub_redis_fallbacks_total{op=lock} = %v, want 0", r.base, f)
		}
	}
	if waits == 0 {
		t.Errorf("no upload waited for the other replica's: the uploads never overlapped, the test proved nothing")
	}
	t.Logf("%d rounds: %d versions stored, %d uploads refused as older, %v waits for the other replica's lease", rounds, len(stored), refusals, waits)
}

// TestRedisStopsUnderLoad: Redis is killed while two replicas serve a
// load of reads (anonymous free/busy, a logged-in feed) and uploads: no
// request fails and every answer stays correct; /readyz says degraded and
// fbpub_redis_up drops to 0 on both; Redis started again on the same port
// brings both back to shared mode, still without a failed request.
func TestRedisStopsUnderLoad(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	rs := testbed.StartRedis(t, nil)
	day := time.Now().UTC().AddDate(0, 0, 2).Format("20060102")
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("week", vcalendar(vevent("e-1", "Standup", "", day, "08"), vevent("e-2", "Review", "", day, "10"))))
	srv.CreateFolder(t, "alice", "Calendar/Uploads")
	srv.SetACL(t, "alice", "Calendar/Uploads", testbed.Proxy, "lr")
	srv.Append(t, "alice", "Calendar/Uploads", testbed.CalendarMessage("upload", vcalendar(vevent("u", "Upload 0", "0", day, "14"))))
	replicas := startReplicas(t, 2, srv, rs.URL(), nil)
	pw := testbed.Password("alice")

	// What a correct answer holds, as the first replica gives it in
	// shared mode.
	code, vfb := getBody(t, replicas[0].base+"/freebusy/alice.vfb")
	busy := regexp.MustCompile(`(?m)^FREEBUSY[^\r\n]*`).FindAllString(vfb, -1)
	if code != 200 || len(busy) == 0 {
		t.Fatalf("GET alice.vfb = %d\n%s", code, vfb)
	}

	const (
		before int32 = iota
		degraded
		restored
	)
	const vfbs, feeds, puts = 0, 1, 2 // kinds of request
	var phase atomic.Int32
	var counts [3][3]atomic.Int64 // by phase and kind
	var mu sync.Mutex
	var failures []string
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}
	check := func(kind int, what string, a answer, ok func(answer) bool) {
		p := phase.Load()
		counts[p][kind].Add(1)
		if a.err != nil || !ok(a) {
			fail("phase %d, %s = %d %v\n%.300s", p, what, a.code, a.err, a.body)
		}
	}
	stop := make(chan struct{})
	var load sync.WaitGroup
	for w := range 4 {
		load.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				r := replicas[(w+i)%2]
				if i%2 == 0 {
					a := send(http.MethodGet, r.base+"/freebusy/alice.vfb", "", "", "")
					check(vfbs, "GET alice.vfb", a, func(a answer) bool {
						got := regexp.MustCompile(`(?m)^FREEBUSY[^\r\n]*`).FindAllString(a.body, -1)
						return a.code == 200 && slices.Equal(got, busy)
					})
				} else {
					a := send(http.MethodGet, r.base+"/calendar/alice/Calendar.ics", "alice", pw, "")
					check(feeds, "GET Calendar.ics", a, func(a answer) bool {
						return a.code == 200 && strings.Contains(a.body, "SUMMARY:Standup") && strings.Contains(a.body, "SUMMARY:Review")
					})
				}
			}
		})
	}
	load.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			summary := fmt.Sprintf("Upload %d", n)
			a := send(http.MethodPut, replicas[n%2].base+"/calendar/alice/Calendar/Uploads.ics", "alice", pw,
				vcalendar(vevent("u", summary, fmt.Sprint(n), day, "14")))
			check(puts, "PUT Calendar/Uploads.ics", a, func(a answer) bool {
				return a.code == 200 && strings.Contains(a.body, "SUMMARY:"+summary+"\r\n")
			})
		}
	})
	// enough waits until each kind of request ran in phase p a few
	// times.
	enough := func(p int32) {
		eventually(t, fmt.Sprintf("requests in phase %d", p), func() bool {
			return counts[p][vfbs].Load() >= 30 && counts[p][feeds].Load() >= 30 && counts[p][puts].Load() >= 10
		})
	}
	enough(before)

	rs.Kill(t)
	for _, r := range replicas {
		eventually(t, r.base+" /readyz to say degraded", func() bool {
			code, body := getBody(t, r.base+"/readyz")
			return code == 200 && strings.HasPrefix(body, "ready\nredis: degraded since ")
		})
	}
	phase.Store(degraded)
	for _, r := range replicas {
		if v := metricValue(t, r.base, "fbpub_redis_up"); v != 0 {
			t.Errorf("%s: fbpub_redis_up with Redis dead = %v, want 0", r.base, v)
		}
	}
	enough(degraded)

	rs.Start(t)
	for _, r := range replicas {
		eventually(t, r.base+" /readyz to say shared again", func() bool {
			_, body := getBody(t, r.base+"/readyz")
			return strings.HasPrefix(body, "ready\nredis: shared (")
		})
	}
	phase.Store(restored)
	enough(restored)
	close(stop)
	load.Wait()
	for _, r := range replicas {
		if v := metricValue(t, r.base, "fbpub_redis_up"); v != 1 {
			t.Errorf("%s: fbpub_redis_up with Redis back = %v, want 1", r.base, v)
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
	for p, name := range []string{"before Redis died", "while it was dead", "after it came back"} {
		t.Logf("%s: %d free/busy GETs, %d feed GETs, %d uploads", name, counts[p][vfbs].Load(), counts[p][feeds].Load(), counts[p][puts].Load())
	}
}

// TestLoginThrottleAcrossReplicas: wrong passwords spread over two
// replicas sharing a Redis hit the throttles as they would on one
// replica: after access.login_failures_per_address of them from one
// address, the next login from it is refused with 429 on either replica,
// even with the right password; after access.login_failures from all
// addresses, the next with credentials not yet known gets 503.
//
// The client addresses come from X-Forwarded-For (the replicas trust the
// loopback as their proxy), as behind a load balancer; fbpub passes them
// on to Dovecot, which charges its auth penalty to them, not to the
// loopback the other tests log in from.
func TestLoginThrottleAcrossReplicas(t *testing.T) {
	srv := testbed.Get(t)
	srv.Reset(t)
	rs := testbed.StartRedis(t, nil)
	srv.CreateFolder(t, "alice", "Calendar")
	srv.SetACL(t, "alice", "Calendar", testbed.Proxy, "lr")
	const perAddress, global = 2, 5
	replicas := startReplicas(t, 2, srv, rs.URL(), func(c *config.Config) {
		c.Access.LoginFailuresPerAddress = perAddress
		c.Access.LoginFailures = global
		c.Access.TrustedProxies = []string{"127.0.0.1/32"}
	})
	// Each attempt is made under a name of its own, so that no name's
	// pause after a failure refuses an attempt before it is counted.
	login := func(r inproc, client, user, password string) answer {
		req, _ := http.NewRequest(http.MethodGet, r.base+"/calendar/alice/Calendar.ics", nil)
		req.SetBasicAuth(user, password)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return answer{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{code: resp.StatusCode, hdr: resp.Header, body: string(b)}
	}
	// Addresses of this run's own: Dovecot's penalty for an address
	// outlives the test.
	client := func() string { return fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), 1+rand.IntN(254)) }
	guesser := client()
	for i := range perAddress {
		r := replicas[i%2]
		if a := login(r, guesser, fmt.Sprintf("guess%d", i), "wrong"); a.err != nil || a.code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d from %s through %s = %d %v, want 401", i+1, guesser, r.base, a.code, a.err)
		}
	}
	for _, r := range replicas {
		a := login(r, guesser, "alice", testbed.Password("alice"))
		if a.err != nil || a.code != http.StatusTooManyRequests || a.hdr.Get("Retry-After") == "" {
			t.Errorf("a login from %s through %s after %d failures from it over both replicas = %d %v (Retry-After %q), want 429 with Retry-After",
				guesser, r.base, perAddress, a.code, a.err, a.hdr.Get("Retry-After"))
		}
	}
	// The rest of the global budget, one failure per address, at once.
	answers := make([]answer, global-perAddress)
	var wg sync.WaitGroup
	for i := range answers {
		r, from := replicas[i%2], client()
		wg.Go(func() { answers[i] = login(r, from, fmt.Sprintf("guess%d", perAddress+i), "wrong") })
	}
	wg.Wait()
	for i, a := range answers {
		if a.err != nil || a.code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d from an address of its own = %d %v, want 401", perAddress+i+1, a.code, a.err)
		}
	}
	for _, r := range replicas {
		a := login(r, client(), "alice", testbed.Password("alice"))
		if a.err != nil || a.code != http.StatusServiceUnavailable || a.hdr.Get("Retry-After") == "" {
			t.Errorf("a first login through %s after %d failures over both replicas = %d %v (Retry-After %q), want 503 with Retry-After",
				r.base, global, a.code, a.err, a.hdr.Get("Retry-After"))
		}
	}
}
