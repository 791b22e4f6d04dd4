package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The replicas dimension (-replicas 1,3): fbpub run as several processes
// sharing one redis-server (cache.redis), behind a round-robin reverse
// proxy of the harness listening where the single process would, so
// that every phase runs unchanged. The proxy's /metrics is the sum of the
// replicas' (IMAP commands, heap), and the CPU and resident memory
// reported for fbpub are the replicas' together.

// cluster is fbpub as the phases see it: one process, or replicas behind
// a proxy.
type cluster struct {
	procs []*exec.Cmd
	redis *exec.Cmd
	proxy *http.Server
	done  sync.WaitGroup
}

// startCluster starts cmd (configured to listen on addr) when n is 1;
// otherwise a redis-server and n copies of cmd sharing it, each on a port
// of its own, and a round-robin proxy to them on addr.
func startCluster(ctx context.Context, cmd *exec.Cmd, addr string, n int, tmp string) (*cluster, error) {
	cl := &cluster{}
	if n <= 1 {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cl.procs = []*exec.Cmd{cmd}
		return cl, nil
	}
	raddr, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := cl.startRedis(ctx, raddr, tmp); err != nil {
		cl.stop()
		return nil, err
	}
	// Dovecot refuses an 11th connection of one user from one address
	// (mail_max_userip_connections, 10 by default): the replicas'
	// pools share that budget with the watch and the sessions of
	// discovery and look-ups.
	conf := filepath.Join(tmp, fmt.Sprintf("replicas-%d.toml", n))
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[imap]\nconnections = %d\n", replicaConnections(n))), 0o600); err != nil {
		cl.stop()
		return nil, err
	}
	var targets []*url.URL
	for range n {
		listen, err := freePort()
		if err != nil {
			cl.stop()
			return nil, err
		}
		c := exec.Command(cmd.Path, append(slices.Clone(cmd.Args[1:]), "--config", conf)...)
		c.Env = append(slices.Clone(cmd.Env), "FBPUB_LISTEN="+listen, "FBPUB_REDIS_URL=redis://"+raddr+"/0")
		c.Stdout, c.Stderr = cmd.Stdout, cmd.Stderr
		if err := c.Start(); err != nil {
			cl.stop()
			return nil, err
		}
		cl.procs = append(cl.procs, c)
		targets = append(targets, &url.URL{Scheme: "http", Host: listen})
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cl.stop()
		return nil, err
	}
	var next atomic.Uint64
	tr := &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute}
	rp := &httputil.ReverseProxy{
		Transport: tr,
		// A replica not listening yet answers 502; the start polls.
		ErrorLog: log.New(io.Discard, "", 0),
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/", rp)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		b, err := sumMetrics(r.Context(), tr, targets)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(b)
	})
	cl.proxy = &http.Server{Handler: mux}
	cl.done.Go(func() { cl.proxy.Serve(ln) })
	return cl, nil
}

// replicaConnections is imap.connections for each of n replicas: each
// uses that many plus one for folders read from scratch, and two
// connections of the 10 are left for the watch and a discovery or
// look-up session.
func replicaConnections(n int) int { return max(1, 8/n-1) }

// startRedis starts a redis-server that saves nothing on raddr and waits
// until it answers PING.
func (cl *cluster) startRedis(ctx context.Context, raddr, tmp string) error {
	host, port, _ := net.SplitHostPort(raddr)
	dir := filepath.Join(tmp, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return err
	}
	cl.redis = exec.Command("redis-server", "--bind", host, "--port", port, "--dir", dir,
		"--save", "", "--appendonly", "no", "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
	cl.redis.Stdout, cl.redis.Stderr = logFile, logFile
	if err := cl.redis.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("redis-server (Debian: apt-get install redis-server): %w", err)
	}
	logFile.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := net.DialTimeout("tcp", raddr, time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprint(c, "PING\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "+PONG") {
			return nil
		}
	}
	return errors.New("redis-server did not answer PING within 10 s")
}

// pids are the fbpub processes.
func (cl *cluster) pids() []int {
	var out []int
	for _, c := range cl.procs {
		out = append(out, c.Process.Pid)
	}
	return out
}

// stop ends the replicas (SIGTERM, then SIGKILL after 10 s), the proxy
// and redis-server.
func (cl *cluster) stop() {
	var wg sync.WaitGroup
	for _, c := range cl.procs {
		wg.Go(func() {
			c.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				c.Process.Kill()
				<-done
			}
		})
	}
	wg.Wait()
	if cl.proxy != nil {
		cl.proxy.Close()
		cl.done.Wait()
	}
	if cl.redis != nil {
		cl.redis.Process.Kill()
		cl.redis.Wait()
	}
}

// sumMetrics scrapes every target's /metrics and writes the sum: samples
// of the same name and labels added, counters and gauges alike (enough
// for what the meter reads: IMAP commands and heap in use).
func sumMetrics(ctx context.Context, tr http.RoundTripper, targets []*url.URL) ([]byte, error) {
	merged := map[string]*dto.MetricFamily{}
	index := map[string]*dto.Metric{}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for _, t := range targets {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.String()+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s/metrics: %w", t, err)
		}
		for name, f := range fams {
			if f.GetType() != dto.MetricType_COUNTER && f.GetType() != dto.MetricType_GAUGE && f.GetType() != dto.MetricType_UNTYPED {
				continue
			}
			mf := merged[name]
			if mf == nil {
				mf = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
				merged[name] = mf
			}
			for _, m := range f.Metric {
				var k strings.Builder
				k.WriteString(name)
				for _, l := range m.Label {
					fmt.Fprintf(&k, "\x00%s=%s", l.GetName(), l.GetValue())
				}
				if have := index[k.String()]; have != nil {
					switch {
					case have.Counter != nil:
						*have.Counter.Value += m.GetCounter().GetValue()
					case have.Gauge != nil:
						*have.Gauge.Value += m.GetGauge().GetValue()
					case have.Untyped != nil:
						*have.Untyped.Value += m.GetUntyped().GetValue()
					}
					continue
				}
				index[k.String()] = m
				mf.Metric = append(mf.Metric, m)
			}
		}
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		if _, err := expfmt.MetricFamilyToText(&b, merged[name]); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}
