package shared

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/testbed"
)

// TestLeaseMetrics: a lease whose holder died without releasing it is
// granted to the next holder after its TTL, which counts as a takeover
// and a wait; a lease released by its holder and then taken is neither.
// Look-ups of blobs count hits and misses.
func TestLeaseMetrics(t *testing.T) {
	rs := testbed.StartRedis(t, nil)
	a, b := newReplica(t, rs.URL(), nil), newReplica(t, rs.URL(), nil)
	ctx := context.Background()

	if _, err := a.Lock(ctx, "alice/Calendar", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	a.Close() // dies holding the lease: it is never released
	l, err := b.Lock(ctx, "alice/Calendar", time.Minute)
	if err != nil || !l.Shared() {
		t.Fatalf("Lock after the holder died = %v, %v", l, err)
	}
	if got := testutil.ToFloat64(b.m.LeaseTakeovers); got != 1 {
		t.Errorf("fbpub_redis_leases_abandoned_total after taking a dead holder's lease = %v, want 1", got)
	}
	if n := waits(t, b); n != 1 {
		t.Errorf("fbpub_redis_lease_wait_seconds_count after waiting for the dead holder's lease = %d, want 1", n)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	// Released, then taken at once: no takeover, no wait.
	l, err = b.Lock(ctx, "alice/Calendar", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock(ctx)
	if got := testutil.ToFloat64(b.m.LeaseTakeovers); got != 1 {
		t.Errorf("fbpub_redis_leases_abandoned_total after a released lease = %v, want still 1", got)
	}
	// A wait for a holder on the same replica counts too.
	l, _ = b.Lock(ctx, "bob/Calendar", time.Minute)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l2, err := b.Lock(ctx, "bob/Calendar", time.Minute); err == nil {
			l2.Unlock(ctx)
		}
	}()
	waitFor(t, "the second holder to wait", func() bool {
		b.locks.mu.Lock()
		defer b.locks.mu.Unlock()
		return b.locks.m["bob/Calendar"] != nil && b.locks.m["bob/Calendar"].refs == 2
	})
	l.Unlock(ctx)
	<-done
	if n := waits(t, b); n != 2 {
		t.Errorf("fbpub_redis_lease_wait_seconds_count = %d, want 2 (the dead holder's lease, the local holder)", n)
	}

	if err := b.SetBlob(ctx, "snap", []byte("data"), time.Minute); err != nil {
		t.Fatal(err)
	}
	b.GetBlob(ctx, "snap")
	b.GetBlob(ctx, "snap")
	b.GetBlob(ctx, "absent")
	if h, m := testutil.ToFloat64(b.m.SharedCache.WithLabelValues("hit")), testutil.ToFloat64(b.m.SharedCache.WithLabelValues("miss")); h != 2 || m != 1 {
		t.Errorf("fbpub_redis_blob_requests_total: hit %v, miss %v; want 2, 1", h, m)
	}
}

// waits returns the number of waits fbpub_redis_lease_wait_seconds
// observed on r.
func waits(t *testing.T, r *replica) uint64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "fbpub_redis_lease_wait_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal("fbpub_redis_lease_wait_seconds not exported")
	return 0
}
