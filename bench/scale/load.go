package main

// The load of a phase: requests for users' free/busy, in a closed loop
// (each user once) or an open one (a rate, whatever the latency).

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func (in *instance) get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.base+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := in.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// results are the requests of a phase.
type results struct {
	mu        sync.Mutex
	latencies []time.Duration
	codes     map[string]int // "200", or "404-" for a user who shares nothing
	errors    int
	dropped   int64
	asked     int // requests sent
}

func (r *results) add(code int, sharing bool, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		return
	}
	if r.codes == nil {
		r.codes = map[string]int{}
	}
	k := strconv.Itoa(code)
	if !sharing {
		k += "-"
	}
	r.codes[k]++
	r.latencies = append(r.latencies, d)
}

func (in *instance) vfb(ctx context.Context, r *results, user string) {
	t := time.Now()
	code, _, err := in.get(ctx, "/freebusy/"+user+".vfb")
	r.add(code, sharing(user), time.Since(t), err)
}

// sharing reports whether user u<i> shares a Calendar (i%10 != 9).
func sharing(user string) bool { return !strings.HasSuffix(user, "9") }

// closedLoop asks for each user once, conc requests at a time, until
// deadline when it is not zero.
func closedLoop(ctx context.Context, in *instance, users []string, conc int, deadline time.Time) *results {
	r := &results{}
	work := make(chan string)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for u := range work {
				in.vfb(ctx, r, u)
			}
		})
	}
	t0 := time.Now()
	for i, u := range users {
		if ctx.Err() != nil || !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		r.asked++
		if i > 0 && i%500 == 0 {
			logf("  %d of %d users asked for, %.0f s", i, len(users), time.Since(t0).Seconds())
		}
		work <- u
	}
	close(work)
	wg.Wait()
	return r
}

// openLoop asks for random users at rate per second for d, whatever the
// answers' latency (an open loop, as independent clients do), with at
// most maxInflight requests outstanding.
func openLoop(ctx context.Context, in *instance, users []string, rate int, d time.Duration, maxInflight int) *results {
	r := &results{}
	var wg sync.WaitGroup
	var inflight atomic.Int64
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.After(d)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-end:
			break loop
		case <-tick.C:
			if inflight.Load() >= int64(maxInflight) {
				r.dropped++
				continue
			}
			inflight.Add(1)
			u := users[rand.IntN(len(users))]
			wg.Go(func() {
				defer inflight.Add(-1)
				in.vfb(ctx, r, u)
			})
		}
	}
	wg.Wait()
	return r
}
