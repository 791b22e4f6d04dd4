package main

// What a phase costs: fbpub's and Dovecot's CPU, IMAP commands by verb,
// memory per cached event, connections and latency, sampled and reported.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// meter samples fbpub and Dovecot.
type meter struct {
	in      *instance
	pid     int    // fbpub
	dcPID   int    // the IMAP server's master (Dovecot's or Cyrus')
	server  string // its name in the report: Dovecot or Cyrus
	events  int    // events cached once every sharing user was asked for
	touched bool   // every user was asked for: the events are cached
	// fbpub's resident size and heap in use after start, before any user
	// was touched: subtracted for the marginal cost of an event.
	baseRSS  int64
	baseHeap float64
	// maxConns is the most connections to Dovecot seen since the last
	// report (watchConns).
	maxConns atomic.Int64

	// others are the fbpub processes of the other replicas (-replicas).
	others []int
}

// watchConns samples, every 100 ms until ctx ends, the connections open
// to Dovecot's port (fbpub's, and the harness's own during one change),
// keeping the most seen in m.maxConns.
func (m *meter) watchConns(ctx context.Context, port int) {
	for ctx.Err() == nil {
		n := int64(clientConns(port))
		for {
			old := m.maxConns.Load()
			if n <= old || m.maxConns.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type sample struct {
	at         time.Time
	commands   map[string]float64 // fbpub_imap_commands_total by command
	dovecotCPU time.Duration
	dovecotBy  map[string]time.Duration // by process name
	fbpubCPU   time.Duration
	rss        int64
	heap       float64 // go_memstats_heap_inuse_bytes
}

func (m *meter) sample(ctx context.Context, afterPhase bool) sample {
	s := sample{at: time.Now(), commands: map[string]float64{}}
	s.dovecotCPU, s.dovecotBy = treeCPUBy(m.dcPID)
	if m.pid == 0 {
		return s
	}
	s.fbpubCPU = cpuTime(m.pid)
	s.rss = rss(m.pid)
	for _, pid := range m.others {
		s.fbpubCPU += cpuTime(pid)
		s.rss += rss(pid)
	}
	// Scraped even when ctx is done (an interrupted phase is still
	// reported).
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	code, body, err := m.in.get(sctx, "/metrics")
	if err != nil || code != 200 {
		return s
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		logf("parsing /metrics: %v", err)
		return s
	}
	if f := fams["fbpub_imap_commands_total"]; f != nil {
		for _, mt := range f.Metric {
			s.commands[label(mt, "command")] += mt.GetCounter().GetValue()
		}
	}
	if f := fams["go_memstats_heap_inuse_bytes"]; f != nil && len(f.Metric) > 0 {
		s.heap = f.Metric[0].GetGauge().GetValue()
	}
	return s
}

// quiet waits until fbpub has sent no IMAP command for d, at most max,
// and returns when that was.
func (m *meter) quiet(ctx context.Context, d, max time.Duration) time.Time {
	end := time.Now().Add(max)
	last := m.sample(ctx, false)
	for time.Now().Before(end) && ctx.Err() == nil {
		time.Sleep(d)
		s := m.sample(ctx, false)
		if total(s.commands) == total(last.commands) {
			return s.at
		}
		last = s
	}
	return time.Now()
}

func total(m map[string]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (m *meter) report(rep *report, phase string, a, b sample, r *results) {
	wall := b.at.Sub(a.at).Seconds()
	var verbs []string
	var total float64
	for v, n := range b.commands {
		if d := n - a.commands[v]; d > 0 {
			verbs = append(verbs, v)
			total += d
		}
	}
	slices.SortFunc(verbs, func(x, y string) int {
		return int((b.commands[y] - a.commands[y]) - (b.commands[x] - a.commands[x]))
	})
	dc := b.dovecotCPU - a.dovecotCPU
	fb := b.fbpubCPU - a.fbpubCPU
	rep.printf("--- %s: %.1f s", phase, wall)
	var reqs int
	if r != nil {
		reqs = len(r.latencies)
		slices.Sort(r.latencies)
		codes := make([]string, 0, len(r.codes))
		for c, k := range r.codes {
			codes = append(codes, fmt.Sprintf("%d×%s", k, c))
		}
		slices.Sort(codes)
		rep.printf("  requests   %d answered (%.1f/s) [count×status; - = of users sharing nothing: %s], %d errors, %d dropped; latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms",
			reqs, float64(reqs)/wall, strings.Join(codes, " "), r.errors, r.dropped,
			ms(pct(r.latencies, 50)), ms(pct(r.latencies, 90)), ms(pct(r.latencies, 99)), ms(pct(r.latencies, 100)))
	}
	line := fmt.Sprintf("  IMAP       %.0f commands", total)
	if reqs > 0 {
		line += fmt.Sprintf(", %.3f per request", total/float64(reqs))
	}
	if wall > 0 {
		line += fmt.Sprintf(", %.1f/s", total/wall)
	}
	rep.printf("%s", line)
	if len(verbs) > 0 {
		parts := make([]string, len(verbs))
		for i, v := range verbs {
			parts[i] = fmt.Sprintf("%s %.0f", v, b.commands[v]-a.commands[v])
		}
		rep.printf("             %s", strings.Join(parts, ", "))
	}
	line = fmt.Sprintf("  CPU        %s %.2f s (%.1f %% of a core)", m.server, dc.Seconds(), 100*dc.Seconds()/wall)
	line += fmt.Sprintf("; fbpub %.2f s (%.1f %% of a core)", fb.Seconds(), 100*fb.Seconds()/wall)
	if reqs > 0 {
		line += fmt.Sprintf(", %.0f µs per request", float64(fb.Microseconds())/float64(reqs))
	}
	rep.printf("%s", line)
	// Dovecot's CPU by process name, roughly: a process that exited
	// during the phase moves its whole life's time to "exited".
	var procs []string
	for name, t := range b.dovecotBy {
		if d := t - a.dovecotBy[name]; d >= 10*time.Millisecond {
			procs = append(procs, fmt.Sprintf("%s %.2f s", name, d.Seconds()))
		}
	}
	slices.Sort(procs)
	if len(procs) > 0 {
		rep.printf("             %s by process: %s", m.server, strings.Join(procs, ", "))
	}
	rep.printf("  conns      at most %d connections to %s (sampled every 100 ms)", m.maxConns.Swap(0), m.server)
	switch {
	case b.rss > 0 && m.touched:
		ev := float64(m.events)
		rep.printf("  memory     fbpub VmRSS %.1f MB, Go heap in use %.1f MB; per cached event (%d): RSS %.2f KB (%.2f above the start's), heap %.2f KB (%.2f)",
			float64(b.rss)/1e6, b.heap/1e6, m.events, float64(b.rss)/1024/ev, float64(b.rss-m.baseRSS)/1024/ev, b.heap/1024/ev, (b.heap-m.baseHeap)/1024/ev)
	case b.rss > 0:
		rep.printf("  memory     fbpub VmRSS %.1f MB, Go heap in use %.1f MB", float64(b.rss)/1e6, b.heap/1e6)
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[min(i, len(sorted)-1)]
}
