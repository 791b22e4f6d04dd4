package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fbpub/fbpub/internal/config"
	"github.com/fbpub/fbpub/internal/testbed"
)

// dashboardFile is the Grafana dashboard whose queries
// TestPrometheusEvaluatesEveryPanel checks, relative to this package.
const dashboardFile = "../../grafana/fbpub-dashboard.json"

// grafanaVars replaces the Grafana variables the dashboard uses with values
// a Prometheus scraping every second can answer. Longer names come first so
// that $__interval_ms is not read as $__interval.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "30s",
	"$__interval_ms", "5000",
	"$__interval", "5s",
	"$__range", "1m",
	"${job}", "fbpub",
	"$job", "fbpub",
)

// TestPrometheusEvaluatesEveryPanel runs `fbpub demo`, lets a real Prometheus
// scrape it, and evaluates the query of every panel of the Grafana dashboard
// against that Prometheus: each must be valid PromQL and return data. It also
// lints the live /metrics output with promtool.
func TestPrometheusEvaluatesEveryPanel(t *testing.T) {
	promBin, promtool := lookPathOrSkip(t, "prometheus"), lookPathOrSkip(t, "promtool")
	dash := loadDashboard(t, dashboardFile)

	base, _ := startDemo(t)
	serveTraffic(t, base)
	// A second instance of the job shares state through a Redis, for the
	// dashboard's Redis row.
	rs := testbed.StartRedis(t, nil)
	_, withRedis := runDemoService(t, func(c *config.Config) { c.Cache.Redis = config.RedisURL(rs.URL()) })
	prom := startPrometheus(t, promBin, strings.TrimPrefix(base, "http://"), withRedis)
	waitForScrapes(t, prom, 1)
	serveTraffic(t, base) // again, so that rates over the last 30s are not zero
	waitForScrapes(t, prom, 5)

	// The job variable: label_values(metric, label).
	for _, v := range dash.Templating.List {
		m := regexp.MustCompile(`^label_values\(\s*(\w+)\s*,\s*(\w+)\s*\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: definition %q is not label_values(metric, label)", v.Name, v.Definition)
			continue
		}
		var values []string
		promGet(t, prom, "/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &values)
		if !slices.Contains(values, "fbpub") {
			t.Errorf("variable %s: %s gives %q, want it to contain fbpub", v.Name, v.Definition, values)
		}
	}

	n := 0
	for _, p := range dash.panels() {
		for _, tg := range p.Targets {
			if tg.Hide {
				continue
			}
			n++
			expr := grafanaVars.Replace(tg.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: unknown variable left in %q", p.Title, expr)
				continue
			}
			status, body, res := promQuery(t, prom, expr)
			switch {
			case status != "success":
				t.Errorf("panel %q, target %s: %s\nPrometheus: %s", p.Title, tg.RefID, expr, body)
			case len(res) == 0:
				t.Errorf("panel %q, target %s: no data for %s\nPrometheus: %s", p.Title, tg.RefID, expr, body)
			default:
				t.Logf("panel %q, target %s: %s", p.Title, tg.RefID, summarize(res))
			}
		}
	}
	if n < 20 {
		t.Errorf("dashboard has %d queries, want at least 20: is %s complete?", n, dashboardFile)
	}

	// promtool lints what fbpub exports.
	code, metrics := fetch(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// lookPathOrSkip finds a Prometheus binary. Without it the test fails under
// CI=true and is skipped otherwise.
func lookPathOrSkip(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: %v", name, err)
	}
	t.Skipf("%s not found; run ./testbed/install", name)
	return ""
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource datasource `json:"datasource"`
	Targets    []struct {
		RefID      string     `json:"refId"`
		Expr       string     `json:"expr"`
		Hide       bool       `json:"hide"`
		Datasource datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// panels returns every panel that is not a row, including those inside
// collapsed rows.
func (d *dashboard) panels() []panel {
	var all []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				all = append(all, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

// loadDashboard reads the dashboard and checks what import relies on: a
// Prometheus data source input that every panel and query uses.
func loadDashboard(t *testing.T, name string) *dashboard {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("%s: __inputs = %+v, want one prometheus data source DS_PROMETHEUS", name, d.Inputs)
	}
	want := datasource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}
	for _, p := range d.panels() {
		if p.Datasource != want {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, want)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource != want {
				t.Errorf("panel %q, target %s: datasource %+v, want %+v", p.Title, tg.RefID, tg.Datasource, want)
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q, target %s: %q does not select {job=~\"$job\"}", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	return &d
}

// serveTraffic asks the demo what a day of clients would ask: free/busy and
// feeds, an unknown user, a revalidation that gives 304, and /readyz.
func serveTraffic(t *testing.T, base string) {
	t.Helper()
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/freebusy/alice@example.org.vfb", 200},
		{"/freebusy/bob.vfb", 200},
		{"/freebusy/alice.ifb", 200},
		{"/calendar/alice/Calendar.ics", 200},
		{"/calendar/alice/Calendar/Work.ics", 200},
		{"/calendar/carol.ics", 200},
		{"/freebusy/nobody.vfb", 404},
		{"/freebusy/group.vfb?user=alice&user=bob&user=nobody", 200},
		{"/freebusy/slots?user=alice&user=bob&duration=PT1H", 200},
		{"/team/team", 200},
		{"/no/such/page", 404},
		{"/readyz", 200},
		{"/healthz", 200},
	} {
		if code, body := fetch(t, base+tt.path); code != tt.code {
			t.Errorf("GET %s = %d, want %d\n%s", tt.path, code, tt.code, body)
		}
	}
	resp, err := http.Get(base + "/freebusy/alice@example.org.vfb")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/freebusy/alice@example.org.vfb", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s = %d, want 304", req.Header.Get("If-None-Match"), resp.StatusCode)
	}
}

// startPrometheus starts a Prometheus that scrapes the targets every second
// as job fbpub, waits until it is ready and returns its base URL. Prometheus
// is stopped (SIGTERM, then SIGKILL) and waited for when the test ends.
func startPrometheus(t *testing.T, bin string, targets ...string) string {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: fbpub
    static_configs:
      - targets: ["%s"]
`, strings.Join(targets, `", "`))), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second // then SIGKILL
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})

	base := "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("prometheus exited: %v; log:\n%s", cmd.ProcessState, logs.String())
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s; log:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitForScrapes waits until Prometheus holds at least n samples of
// up{job="fbpub"} of every target and all of them are 1. A failed scrape fails the test
// with Prometheus's reason.
func waitForScrapes(t *testing.T, prom string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// One query, so that no scrape lands between counting and summing.
		failed := scalarOf(t, prom, `sum(count_over_time(up{job="fbpub"}[5m]) - sum_over_time(up{job="fbpub"}[5m]))`)
		count := scalarOf(t, prom, `min(count_over_time(up{job="fbpub"}[5m]))`)
		if failed > 0 {
			var targets struct {
				ActiveTargets []struct {
					ScrapeURL string `json:"scrapeUrl"`
					LastError string `json:"lastError"`
				} `json:"activeTargets"`
			}
			promGet(t, prom, "/api/v1/targets", nil, &targets)
			t.Fatalf("%v of %v scrapes of fbpub failed: %+v", failed, count, targets.ActiveTargets)
		}
		if count >= float64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %v scrapes of fbpub after 60s, want %d", count, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scalarOf returns the value of the only sample expr gives, or 0 if it
// gives none.
func scalarOf(t *testing.T, prom, expr string) float64 {
	t.Helper()
	status, body, res := promQuery(t, prom, expr)
	if status != "success" || len(res) > 1 {
		t.Fatalf("%s: %s", expr, body)
	}
	if len(res) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(res[0].Value, 64)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string
	Value  string
}

// promQuery evaluates expr now. It returns Prometheus's status, its whole
// answer for error messages, and the samples (a scalar counts as one).
func promQuery(t *testing.T, prom, expr string) (status, body string, res []sample) {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/query?" + url.Values{"query": {expr}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return "undecodable", string(b), nil
	}
	switch ans.Data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &v); err != nil {
			return "undecodable", string(b), nil
		}
		for _, s := range v {
			val, _ := s.Value[1].(string)
			res = append(res, sample{s.Metric, val})
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(ans.Data.Result, &v); err == nil {
			val, _ := v[1].(string)
			res = append(res, sample{nil, val})
		}
	}
	return ans.Status, string(b), res
}

// promGet decodes the data of a successful Prometheus API answer into v.
func promGet(t *testing.T, prom, path string, q url.Values, v any) {
	t.Helper()
	resp, err := http.Get(prom + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ans struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Status != "success" {
		t.Fatalf("GET %s: %s", path, b)
	}
	if err := json.Unmarshal(ans.Data, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// summarize says how many series a query gave and how many of them are
// zero or NaN, which shows the panels the demo traffic does not exercise.
func summarize(res []sample) string {
	var zero, nan int
	for _, s := range res {
		switch s.Value {
		case "0":
			zero++
		case "NaN":
			nan++
		}
	}
	return fmt.Sprintf("%d series, %d zero, %d NaN", len(res), zero, nan)
}
