package feed

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/imapstore"
	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// replicaFixture is a fixture whose cache shares through Redis, with its
// own connection to Redis and its own IMAP pool, as a replica has.
type replicaFixture struct {
	*fixture
	sh *shared.Client
	rm *metrics.Replicas
}

func newReplica(t *testing.T, rd *testbed.Redis, interval time.Duration) *replicaFixture {
	t.Helper()
	f := newFixture(t, interval)
	sh, err := shared.New(shared.Options{URL: rd.URL(), Timeout: 200 * time.Millisecond, Probe: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := &replicaFixture{fixture: f, sh: sh, rm: metrics.NewReplicas(prometheus.NewRegistry())}
	stop := f.cache.Replicate(sh, r.rm)
	t.Cleanup(func() {
		stop()
		sh.Close()
	})
	return r
}

func (r *replicaFixture) count(c *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(c.WithLabelValues(labels...))
}

// TestReplicasShare: a replica takes the snapshot another made from Redis
// instead of reading IMAP; after a change, the owner check and the sync
// too (the new message is fetched once, by one of them); and a change one
// replica announces reaches the other.
func TestReplicasShare(t *testing.T) {
	rd := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rd, time.Minute), newReplica(t, rd, time.Minute)
	alice := setupAlice(t, a.srv)
	appendMany(t, alice, "Calendar", 3, "first")

	// Both know the owners, as a running replica does (discovery).
	for _, r := range []*replicaFixture{a, b} {
		if err := r.cache.Discover(context.Background()); err != nil {
			t.Fatal(err)
		}
		r.src.reset()
	}
	body := a.feed(t)
	if got := a.src.bodies.Load(); got != 3 {
		t.Fatalf("the first replica fetched %d messages, want 3", got)
	}
	if got := b.feed(t); got != body {
		t.Errorf("the second replica answers\n%s\nthe first\n%s", got, body)
	}
	if got := b.src.count("LIST") + b.src.count("SELECT") + int(b.src.bodies.Load()); got != 0 {
		t.Errorf("the second replica sent %d LIST and %d SELECT and fetched %d messages, want none",
			b.src.count("LIST"), b.src.count("SELECT"), b.src.bodies.Load())
	}
	if got := b.count(b.rm.Shared, "snapshot", "hit"); got != 1 {
		t.Errorf("the second replica took %v snapshots from Redis, want 1", got)
	}

	// A change, past the check interval of both: one of them fetches it.
	appendMany(t, alice, "Calendar", 1, "second")
	a.advance(2 * time.Minute)
	b.advance(2 * time.Minute)
	a.src.reset()
	b.src.reset()
	if got := b.feed(t); !strings.Contains(got, "SUMMARY:second 0") {
		t.Fatalf("the second replica does not show the change:\n%s", got)
	}
	if got := a.feed(t); !strings.Contains(got, "SUMMARY:second 0") {
		t.Fatalf("the first replica does not show the change:\n%s", got)
	}
	if got := a.src.bodies.Load() + b.src.bodies.Load(); got != 1 {
		t.Errorf("the two replicas fetched %d messages after the change, want 1", got)
	}
	if got := a.src.count("LIST") + a.src.count("SELECT"); got != 0 {
		t.Errorf("the first replica checked (%d LIST) or synced (%d SELECT) what the second had stored", a.src.count("LIST"), a.src.count("SELECT"))
	}
	if got := a.count(a.rm.Shared, "check", "hit"); got != 1 {
		t.Errorf("the first replica took %v checks from Redis, want 1", got)
	}

	// What a watcher hears on one replica reaches the other.
	pushes := testutil.ToFloat64(b.m.Pushes)
	a.cache.Announce(a.srv.SharedName("alice", "Calendar"))
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(b.m.Pushes) == pushes; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a change announced on one replica did not reach the other")
		}
	}
}

// TestReplicasLookUp: a name one replica looked up and found nobody under
// is not looked up again by another within NegativeTTL.
func TestReplicasLookUp(t *testing.T) {
	rd := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rd, time.Minute), newReplica(t, rd, time.Minute)
	setupAlice(t, a.srv)
	for _, r := range []*replicaFixture{a, b} {
		r.cache.opts.NegativeTTL = time.Minute
	}
	for _, r := range []*replicaFixture{a, b} {
		if _, err := r.cache.OwnerFolders(context.Background(), "dave"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("OwnerFolders(dave) = %v, want ErrNotFound", err)
		}
	}
	if got := a.src.count("LIST"); got == 0 {
		t.Errorf("the first replica's look-up sent no LIST")
	}
	if got := b.src.count("LIST"); got != 0 {
		t.Errorf("the second replica sent %d LIST for a name the first found nobody under, want 0", got)
	}
}

// TestReplicasTakeOver: a replica that finds another holding a folder's
// sync lease waits for it, and syncs itself once the lease expires
// because its holder died.
func TestReplicasTakeOver(t *testing.T) {
	rd := testbed.StartRedis(t, nil)
	b := newReplica(t, rd, time.Minute)
	alice := setupAlice(t, b.srv)
	appendMany(t, alice, "Calendar", 2, "held")

	// A replica that took the lease and died: its client is gone, the
	// lease expires after syncLease.
	dead, err := shared.New(shared.Options{URL: rd.URL()})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := dead.TryLock(context.Background(), "sync\x00"+b.srv.SharedName("alice", "Calendar"), syncLease)
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	t.Cleanup(func() { lease.Unlock(context.Background()) })

	if got := b.feed(t); !strings.Contains(got, "SUMMARY:held 1") {
		t.Fatalf("the feed lacks the folder's events:\n%s", got)
	}
	if got := b.count(b.rm.LeaseWaits, "sync"); got != 1 {
		t.Errorf("%v waits for the sync lease, want 1", got)
	}
	if got := b.count(b.rm.Takeovers, "sync"); got != 1 {
		t.Errorf("%v takeovers of the sync lease, want 1", got)
	}
	if got := b.src.bodies.Load(); got != 2 {
		t.Errorf("the replica that took over fetched %d messages, want 2", got)
	}
}

// TestReplicasRedisDown: with Redis gone, each replica reads IMAP for
// itself and answers right.
func TestReplicasRedisDown(t *testing.T) {
	rd := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rd, time.Minute), newReplica(t, rd, time.Minute)
	alice := setupAlice(t, a.srv)
	appendMany(t, alice, "Calendar", 2, "before")
	a.feed(t)
	rd.Kill(t)
	appendMany(t, alice, "Calendar", 1, "after")
	a.advance(2 * time.Minute)
	b.advance(2 * time.Minute)
	for _, r := range []*replicaFixture{a, b} {
		if got := r.feed(t); !strings.Contains(got, "SUMMARY:after 0") || !strings.Contains(got, "SUMMARY:before 1") {
			t.Fatalf("with Redis gone, a replica answers:\n%s", got)
		}
	}
	if a.sh.Mode() != shared.Degraded {
		t.Errorf("mode %v with Redis gone, want degraded", a.sh.Mode())
	}
	if got := b.src.bodies.Load(); got != 3 {
		t.Errorf("with Redis gone, the second replica fetched %d messages, want 3 (all, itself)", got)
	}
}

// TestStateKeyRoundTrip: what the replicas store beside a snapshot reads
// back as the state it names; anything else is refused.
func TestStateKeyRoundTrip(t *testing.T) {
	for _, st := range []imapstore.State{{}, {UIDValidity: 1, HighestModSeq: 1 << 40, UIDNext: 7, Messages: 6}, {UIDValidity: 1<<32 - 1, UIDNext: 1<<32 - 1, Messages: 1<<32 - 1}} {
		if got, ok := parseStateKey(stateKey(st)); !ok || got != st {
			t.Errorf("parseStateKey(%q) = %v, %v, want %v", stateKey(st), got, ok, st)
		}
	}
	for _, k := range []string{"", "1.2.3", "1.2.3.4.5", "a.2.3.4", "4294967296.1.1.1", "1.1.1.-1"} {
		if got, ok := parseStateKey(k); ok {
			t.Errorf("parseStateKey(%q) = %v, want refused", k, got)
		}
	}
	if _, err := DecodeSnapshot(Folder{Name: "x"}, []byte("{}")); !errors.Is(err, errSnapshot) {
		t.Errorf("DecodeSnapshot of another version = %v, want errSnapshot", err)
	}
}
