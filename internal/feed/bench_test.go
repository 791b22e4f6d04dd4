package feed

import (
	"context"
	"io"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

const benchEvents = 10000

// benchFolder fills alice's Calendar with benchEvents events, once per
// benchmark run.
func benchFolder(b testing.TB) *testbed.Server {
	b.Helper()
	srv := testbed.Get(b)
	c := srv.Dial(b, testbed.Proxy)
	if st, err := c.Status(testbed.SharedName("alice", "Calendar"), &imap.StatusOptions{NumMessages: true}).Wait(); err == nil && *st.NumMessages == benchEvents {
		return srv
	}
	alice := setupAliceB(b, srv)
	appendManyB(b, alice, "Calendar", benchEvents)
	return srv
}

func setupAliceB(b testing.TB, srv *testbed.Server) *imapclient.Client {
	srv.Reset(b)
	srv.CreateFolder(b, "alice", "Calendar")
	srv.SetACL(b, "alice", "Calendar", testbed.Proxy, "lr")
	return srv.Dial(b, "alice")
}

func appendManyB(b testing.TB, c *imapclient.Client, folder string, n int) []imap.UID {
	var uids []imap.UID
	day := time.Now().UTC()
	cmds := make([]*imapclient.AppendCommand, 0, n)
	for i := 0; i < n; i++ {
		msg := testbed.CalendarMessage("bench", event("bench-"+itoa(i), "Bench "+itoa(i), day.AddDate(0, 0, i%60), 6+i%12))
		cmd := c.Append(folder, int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		d, err := cmd.Wait()
		if err != nil {
			b.Fatal(err)
		}
		uids = append(uids, d.UID)
	}
	return uids
}

func itoa(i int) string { return strconv.Itoa(i) }

func newBenchCache(b testing.TB, srv *testbed.Server) (*Cache, *imapstore.Pool) {
	pool := imapstore.NewPool(imapstore.Options{Addr: srv.Addr, TLS: imapstore.TLSNone,
		User: testbed.Proxy, Password: testbed.Password(testbed.Proxy)}, 2)
	b.Cleanup(func() { pool.Close() })
	return New(Options{Source: pool, Metrics: metrics.Discard()}), pool
}

var query = CalendarQuery{Owner: "alice", Folder: []string{"Calendar"}, Viewer: acl.Requester{User: "alice"}}

// bareFetch is the floor under a cold build: go-imap, the client a cold
// build reads with, selecting the folder and fetching the calendar part
// of every message, with no body structure, parsing or rendering. Each
// part is read into a buffer of its announced size, as fbpub reads them. Each fetch runs on a connection
// just logged in (the login untimed), as a cold build's does: a server
// process that has served the same fetch before answers it a few
// percent faster (2.6 % on the test bed Dovecot), which a cold build
// never sees.
func bareFetch(b *testing.B, srv *testbed.Server) {
	for b.Loop() {
		b.StopTimer()
		c := dialBare(b, srv)
		b.StartTimer()
		fetchBare(b, c)
		b.StopTimer()
		closeBare(c)
		b.StartTimer()
	}
}

// timeBare times one bare fetch as bareFetch does.
func timeBare(b *testing.B, srv *testbed.Server) time.Duration {
	c := dialBare(b, srv)
	defer closeBare(c)
	t0 := time.Now()
	fetchBare(b, c)
	return time.Since(t0)
}

// settle is how long a closed connection is given to end on the
// server: a Dovecot process that served a 10,000-message fetch takes a
// few milliseconds of CPU to exit, which would fall on the next timed
// fetch or build.
const settle = 20 * time.Millisecond

// closeBare logs c out (Dovecot allows a user ten connections) and lets
// the server settle.
func closeBare(c *imapclient.Client) {
	c.Logout().Wait()
	c.Close()
	time.Sleep(settle)
}

// closePool is closeBare for a cold build's pool.
func closePool(p *imapstore.Pool) {
	p.Close()
	time.Sleep(settle)
}

func dialBare(b *testing.B, srv *testbed.Server) *imapclient.Client {
	c, err := imapclient.DialInsecure(srv.Addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Login(testbed.Proxy, testbed.Password(testbed.Proxy)).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}

func fetchBare(b *testing.B, c *imapclient.Client) {
	fetchItems(b, c, false, nil)
}

// fetchItems is fetchBare, asking with structure for what a cold build's
// first round asks for besides the parts: FLAGS, the body structure
// (BODY) and the part cut at wholeBelow octets. Each part read is passed
// to keep, when set.
func fetchItems(b *testing.B, c *imapclient.Client, structure bool, keep func([]byte)) {
	if _, err := c.Select(testbed.SharedName("alice", "Calendar"), &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Part: []int{2}, Peek: true}
	opts := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}
	if structure {
		section.Partial = &imap.SectionPartial{Offset: 0, Size: wholeBelow}
		opts.Flags = true
		opts.BodyStructure = &imap.FetchItemBodyStructure{}
	}
	cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts)
	n := 0
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for item := m.Next(); item != nil; item = m.Next() {
			if body, ok := item.(imapclient.FetchItemDataBodySection); ok && body.Literal != nil {
				buf := make([]byte, body.Literal.Size())
				if _, err := io.ReadFull(body.Literal, buf); err != nil {
					b.Fatal(err)
				}
				if keep != nil {
					keep(buf)
				}
				n++
			}
		}
	}
	if err := cmd.Close(); err != nil || n != benchEvents {
		b.Fatalf("bare fetch: %d messages, %v", n, err)
	}
}

// timeStructured times one fetchItems with structure as timeBare times
// a bare fetch.
func timeStructured(b *testing.B, srv *testbed.Server) time.Duration {
	c := dialBare(b, srv)
	defer closeBare(c)
	t0 := time.Now()
	fetchItems(b, c, true, nil)
	return time.Since(t0)
}

// coldBuild is the first request to an fbpub just started, whose cache
// is empty: folder check, full sync (calendar parts, parsing) and render.
// fbpub logs in at start (serve does, to report the server's features),
// so the login is not timed, as the bare fetch's is not.
func coldBuild(b *testing.B, srv *testbed.Server) {
	for b.Loop() {
		b.StopTimer()
		c, pool := newBenchCache(b, srv)
		if err := pool.Ping(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := c.Calendar(context.Background(), query); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		closePool(pool)
		b.StartTimer()
	}
}

// timeCold times one cold build as coldBuild does.
func timeCold(b *testing.B, srv *testbed.Server) time.Duration {
	c, pool := newBenchCache(b, srv)
	defer closePool(pool)
	if err := pool.Ping(context.Background()); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	if _, err := c.Calendar(context.Background(), query); err != nil {
		b.Fatal(err)
	}
	return time.Since(t0)
}

// paired runs a bare fetch, a bare fetch with structure (fetchItems) and
// a cold build in turns, three turns per iteration in rotating orders,
// and returns the medians of cold/bare and of cold/bare-with-structure,
// and the ratio of the cold builds' mean to the bare fetches'. The blocks of iterations of
// bare-fetch and cold see the machine at different moments; on a shared
// host whose speed comes and goes, the ratio of the blocks' means moves
// by ±15 % from run to run, while one turn sees the same moment.
func paired(b *testing.B, srv *testbed.Server) (median, medianStructured, means float64) {
	var ratios, ratiosStructured []float64
	var sumBare, sumCold time.Duration
	for b.Loop() {
		// Three turns, one in each order: a median of several.
		for i := range 3 {
			var tb, ts, tc time.Duration
			runs := []func(){
				func() { tb = timeBare(b, srv) },
				func() { ts = timeStructured(b, srv) },
				func() { tc = timeCold(b, srv) },
			}
			for j := range runs {
				runs[(i+j)%len(runs)]()
			}
			ratios = append(ratios, float64(tc)/float64(tb))
			ratiosStructured = append(ratiosStructured, float64(tc)/float64(ts))
			sumBare += tb
			sumCold += tc
		}
	}
	return medianOf(ratios), medianOf(ratiosStructured), float64(sumCold) / float64(sumBare)
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// benchParts reads the calendar part of every message of the bench
// folder, in UID order.
func benchParts(b *testing.B, srv *testbed.Server) [][]byte {
	c := dialBare(b, srv)
	defer closeBare(c)
	var parts [][]byte
	fetchItems(b, c, false, func(p []byte) { parts = append(parts, p) })
	return parts
}

// decodeParts is go-ical's share of a cold build, on one goroutine: the
// parts decoded by calendar.Decode (go-ical with fbpub's small wrapper).
func decodeParts(b *testing.B, parts [][]byte) {
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range parts {
			if _, err := calendar.Decode(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(parts)), "ns/event")
}

// parseParts is the whole of what a cold build's workers do with each
// part, on one goroutine: charset check, decoding, objects, and the
// message prepared for rendering (newMessage).
func parseParts(b *testing.B, parts [][]byte) {
	c := New(Options{Metrics: metrics.Discard()})
	f := Folder{Name: testbed.SharedName("alice", "Calendar")}
	b.ReportAllocs()
	for b.Loop() {
		for i, p := range parts {
			msg := imapstore.Message{UID: uint32(i + 1), Parts: []imapstore.Part{{Path: []int{2},
				MediaType: "text/calendar", Params: map[string]string{"charset": "utf-8"}, Encoding: "8bit", Body: p}}}
			objs := c.parse(f, msg)
			if len(objs) != 1 {
				b.Fatalf("part %d: %d objects", i, len(objs))
			}
			newMessage(objs)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(parts)), "ns/event")
}

// incremental is the request after one event changed (a new message
// replacing an old one): one body fetched, one render.
func incremental(b *testing.B, srv *testbed.Server) {
	c, _ := newBenchCache(b, srv)
	if _, err := c.Calendar(context.Background(), query); err != nil {
		b.Fatal(err)
	}
	alice := srv.Dial(b, "alice")
	for b.Loop() {
		b.StopTimer()
		uids := appendManyB(b, alice, "Calendar", 1)
		b.StartTimer()
		if _, err := c.Calendar(context.Background(), query); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		expungeB(b, alice, uids[0])
		c.Calendar(context.Background(), query)
		b.StartTimer()
	}
}

func expungeB(b *testing.B, c *imapclient.Client, uid imap.UID) {
	c.Select("Calendar", nil).Wait()
	set := imap.UIDSetNum(uid)
	c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close()
	c.UIDExpunge(set).Close()
	c.Unselect().Wait()
}

// hit is a request with nothing changed and the check interval passed:
// one folder check, a cached answer.
func hit(b *testing.B, srv *testbed.Server) {
	c, _ := newBenchCache(b, srv)
	if _, err := c.Calendar(context.Background(), query); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Calendar(context.Background(), query); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFolder10k measures, in one run against the test bed Dovecot,
// a 10,000-event folder: the bare fetch of its calendar parts, a cold
// build, an incremental sync after one change, a cached hit, and bare
// fetches, bare fetches with structure and cold builds in turns; the last
// sub-benchmark reports the ratios the design targets and the heap held
// per cached event. cold/bare (target: within 1.5x) is the ratio of the
// means of the turns, cold/bare-paired the median of their ratios,
// cold/bare-blocks the ratio of the bare-fetch and cold blocks' means,
// which a shared host's changing speed moves most, and cold/structured
// the median ratio of a cold build to a bare fetch of everything its
// first round asks for (flags and body structures too): what fbpub does
// beyond reading. incremental/cold (target: under 5 %) and hit/cold
// compare blocks run back to back. decode and parse time, on one
// goroutine, go-ical alone and all a cold build's workers do per event.
func BenchmarkFolder10k(b *testing.B) {
	srv := benchFolder(b)
	perOp := map[string]float64{}
	for _, c := range []struct {
		name string
		f    func(*testing.B, *testbed.Server)
	}{{"bare-fetch", bareFetch}, {"cold", coldBuild}, {"incremental", incremental}, {"hit", hit}} {
		b.Run(c.name, func(b *testing.B) {
			c.f(b, srv)
			perOp[c.name] = float64(b.Elapsed()) / float64(b.N)
		})
	}
	var parts [][]byte
	b.Run("decode", func(b *testing.B) {
		if parts == nil {
			parts = benchParts(b, srv)
		}
		decodeParts(b, parts)
	})
	b.Run("parse", func(b *testing.B) {
		if parts == nil {
			parts = benchParts(b, srv)
		}
		parseParts(b, parts)
	})
	var median, medianStructured, means float64
	b.Run("paired", func(b *testing.B) {
		median, medianStructured, means = paired(b, srv)
		b.ReportMetric(means, "cold/bare")
		b.ReportMetric(median, "cold/bare-paired")
		b.ReportMetric(medianStructured, "cold/structured")
	})
	b.Run("ratios", func(b *testing.B) {
		if len(perOp) < 4 || median == 0 {
			b.Skip("run every sub-benchmark to get the ratios")
		}
		heap := heapPerEvent(b, srv)
		for b.Loop() {
		}
		// Reported after the loop: b.Loop resets what came before.
		b.ReportMetric(means, "cold/bare")
		b.ReportMetric(median, "cold/bare-paired")
		b.ReportMetric(medianStructured, "cold/structured")
		b.ReportMetric(perOp["cold"]/perOp["bare-fetch"], "cold/bare-blocks")
		b.ReportMetric(perOp["incremental"]/perOp["cold"], "incremental/cold")
		b.ReportMetric(perOp["hit"]/perOp["cold"], "hit/cold")
		b.ReportMetric(heap, "B/cached-event")
	})
}

// heapPerEvent is the live heap a cache holds for the folder, per event.
func heapPerEvent(b *testing.B, srv *testbed.Server) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, pool := newBenchCache(b, srv)
	if _, err := c.Calendar(context.Background(), query); err != nil {
		b.Fatal(err)
	}
	pool.Close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(c)
	return float64(after.HeapAlloc-before.HeapAlloc) / benchEvents
}
