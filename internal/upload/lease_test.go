package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/fbpub/fbpub/internal/shared"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// TestFolderChangedBeforeWrite: a writer that holds no lock (a mail
// client, a replica cut off from Redis) changes the folder after the
// upload read it: the upload notices before its first write, reads and
// plans again, and so refuses its version as older than the one just
// stored instead of storing it beside it.
func TestFolderChangedBeforeWrite(t *testing.T) { onBothServers(t, testFolderChangedBeforeWrite) }

func testFolderChangedBeforeWrite(t *testing.T, srv *testbed.Server) {
	seed(t, srv, ev("x", "Start", "0"))
	svc := newService(srv.Addr)
	checks := 0
	res, err := svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("x", "Mine", "1")),
		Check: func(context.Context) error {
			if checks++; checks == 1 {
				srv.Append(t, "alice", "Calendar", testbed.CalendarMessage("event", string(cal(ev("x", "Theirs", "5")))))
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if checks != 2 {
		t.Errorf("the upload read the folder %d times, want 2 (again after it changed)", checks)
	}
	if want := (Result{Refused: 1}); res != want {
		t.Errorf("Put = %+v, want %+v (older than the copy written meanwhile)", res, want)
	}
	if got := copiesIn(t, srv, "alice", "Calendar")["x"]; fmt.Sprint(got) != "[Start Theirs]" {
		t.Errorf("folder holds %v of x, want [Start Theirs]", got)
	}
}

// TestLeaseLost: an upload whose lease is lost after it read the folder
// (its key gone from Redis, as when Redis restarts empty or the holder
// was cut off for the lease's TTL, so that another replica may hold the
// folder now) writes nothing and says the IMAP side is unavailable, so
// that the client retries.
func TestLeaseLost(t *testing.T) {
	srv := testbed.Get(t)
	rs := testbed.StartRedis(t, nil)
	m := metrics.NewRedis(prometheus.NewRegistry())
	c, err := shared.New(shared.Options{URL: rs.URL(), Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer raw.Close()
	seed(t, srv, ev("x", "Start", "0"))
	before := state(t, srv, "alice", "Calendar")
	svc := New(Options{Dial: dialer(srv.Addr), Shared: c, LeaseTTL: 300 * time.Millisecond})
	_, err = svc.Put(t.Context(), Request{User: "alice", Password: testbed.Password("alice"), Owner: "alice",
		Folder: []string{"Calendar"}, Body: cal(ev("x", "Mine", "1"), ev("y", "New", "")),
		Check: func(context.Context) error {
			if err := raw.FlushAll(t.Context()).Err(); err != nil {
				return err
			}
			deadline := time.Now().Add(20 * time.Second)
			for testutil.ToFloat64(m.LeasesLost) == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return nil
		}})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errLost) {
		t.Errorf("Put with its lease lost = %v, want errLost (ErrUnavailable)", err)
	}
	if after := state(t, srv, "alice", "Calendar"); after != before {
		t.Errorf("the folder changed: %+v, was %+v", after, before)
	}
	if got := copiesIn(t, srv, "alice", DefaultLogFolder); len(got) != 0 {
		t.Errorf("the log holds %v, want nothing written", got)
	}
}
