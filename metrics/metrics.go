// Package metrics holds fbpub's Prometheus collectors.
//
// Every collector is registered on a registry passed in (never the global
// one), its names carry the fbpub_ prefix and base units, and its label
// values come from small fixed sets: a route pattern, a view, an IMAP
// command, a result. Never a user, folder, path or UID.
package metrics

import (
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the collectors the rest of fbpub updates. A nil *Metrics is
// not valid; use New or Discard.
type Metrics struct {
	HTTPRequests *prometheus.CounterVec   // route, code
	HTTPDuration *prometheus.HistogramVec // route
	HTTPBytes    *prometheus.CounterVec   // route
	// HTTPConnections counts the open HTTP connections (at most
	// http.max_connections), HTTPConnectionsWaited those that had to
	// wait for one to close before they were served, and
	// HTTPWriteTimeouts those closed because the client took nothing of
	// an answer for http.write_timeout.
	HTTPConnections       prometheus.Gauge
	HTTPConnectionsWaited prometheus.Counter
	HTTPWriteTimeouts     prometheus.Counter

	IMAPCommands    *prometheus.CounterVec   // command, result
	IMAPDuration    *prometheus.HistogramVec // command
	IMAPConnections prometheus.Gauge
	IMAPReconnects  prometheus.Counter

	FoldersPublished prometheus.Gauge
	// Pushes counts changes the IMAP server announced (NOTIFY or IDLE),
	// and Watched the folders watched that way.
	Pushes  prometheus.Counter
	Watched prometheus.Gauge
	// FoldersACLUnknown counts published folders whose ACL the proxy
	// cannot read (it lacks the "a" right, or the server has no ACLs).
	FoldersACLUnknown prometheus.Gauge
	MessagesFetched   prometheus.Counter
	BytesFetched      prometheus.Counter
	ParseFailures     *prometheus.CounterVec // reason
	ExpansionLimits   prometheus.Counter

	CacheRequests *prometheus.CounterVec   // view, result
	Syncs         *prometheus.CounterVec   // kind (full, incremental, unchanged), result
	SyncDuration  *prometheus.HistogramVec // kind
	Renders       *prometheus.CounterVec   // view
	RenderSeconds *prometheus.HistogramVec // view
	Shared        *prometheus.CounterVec   // operation (state, sync, render)

	// UnresolvedGroups counts ACL evaluations for a logged-in requester
	// in which an entry of a group whose members fbpub does not know (not
	// in access.groups) was evaluated fail-closed.
	UnresolvedGroups prometheus.Counter
	// LoginChecks counts requesters' credential checks, by result.
	LoginChecks *prometheus.CounterVec // result
}

// Fixed label values, created up front so that zeros are exported.
var (
	Routes       = []string{"freebusy", "group", "slots", "team", "link", "links", "calendar", "upload", "trigger", "healthz", "readyz", "metrics", "other"}
	Views        = []string{"freebusy", "calendar"}
	CacheResults = []string{"hit", "miss", "stale", "not_modified"}
	SyncKinds    = []string{"full", "incremental", "unchanged"}
	Operations   = []string{"state", "sync", "render"}
	// LoginResults are the outcomes of a requester's credential check:
	// accepted, refused by the server, not answered (error), refused
	// before asking because of a failure of the same name a moment ago
	// (throttled_user), of failures from the client's address
	// (throttled_address) or from everywhere (throttled_global), or
	// because too many checks were under way (busy).
	LoginResults = []string{"ok", "refused", "error", "throttled_user", "throttled_address", "throttled_global", "busy"}
	ParseReasons = []string{"malformed", "no_calendar", "too_large", "unsupported", "bad_value"}
	IMAPCommands = []string{"LOGIN", "NAMESPACE", "LIST", "MYRIGHTS", "STATUS", "SELECT", "UNSELECT", "UID FETCH", "UID SEARCH", "NOOP", "GETMETADATA",
		"GETACL", "ID", "CREATE", "APPEND", "UID COPY", "UID MOVE", "UID STORE", "UID EXPUNGE", "SETMETADATA", "IDLE", "NOTIFY"}
)

// New creates fbpub's collectors on reg, with the Go and process
// collectors and build information.
func New(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		HTTPRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_http_requests_total", Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fbpub_http_request_duration_seconds", Help: "Time to answer an HTTP request, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		HTTPBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_http_response_bytes_total", Help: "Bytes of HTTP response bodies written, by route.",
		}, []string{"route"}),
		HTTPConnections: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_http_connections", Help: "Open HTTP connections (at most http.max_connections).",
		}),
		HTTPConnectionsWaited: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_http_connections_waited_total", Help: "HTTP connections that waited for another to close because http.max_connections were open.",
		}),
		HTTPWriteTimeouts: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_http_write_timeouts_total", Help: "HTTP connections closed because the client took nothing of an answer for http.write_timeout.",
		}),
		IMAPCommands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_imap_commands_total", Help: "IMAP commands sent by the proxy, by command and result (ok, no, error).",
		}, []string{"command", "result"}),
		IMAPDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fbpub_imap_command_duration_seconds", Help: "IMAP command latency, by command.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"command"}),
		IMAPConnections: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_imap_connections", Help: "Open IMAP connections of the proxy identity.",
		}),
		IMAPReconnects: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_imap_reconnects_total", Help: "IMAP connections opened to replace a lost one.",
		}),
		FoldersPublished: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_folders_published", Help: "Calendar folders the proxy may read and publishes.",
		}),
		Pushes: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_imap_pushes_total", Help: "Changes the IMAP server announced in a watched folder (NOTIFY or IDLE), each making the next request re-read folder states.",
		}),
		Watched: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_imap_watched_folders", Help: "Folders watched for changes the IMAP server announces: with NOTIFY every published folder, up to what the NOTIFY connections carry (publish.notify_connections, 2,000 folders each); with IDLE the most requested ones.",
		}),
		FoldersACLUnknown: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_folders_acl_unknown", Help: "Published folders whose ACL fbpub cannot read (the proxy lacks the a right, or the server has no ACL extension); their details go to the owner and configured readers only.",
		}),
		MessagesFetched: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_imap_messages_fetched_total", Help: "Message parts fetched from IMAP.",
		}),
		BytesFetched: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_imap_fetched_bytes_total", Help: "Bytes of message parts fetched from IMAP.",
		}),
		ParseFailures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_parse_failures_total", Help: "Calendar payloads skipped because they could not be used, by reason.",
		}, []string{"reason"}),
		ExpansionLimits: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_expansion_limits_total", Help: "Recurrence expansions cut short by a limit.",
		}),
		CacheRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_cache_requests_total", Help: "Feed and free/busy requests, by view and cache result.",
		}, []string{"view", "result"}),
		Syncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_folder_syncs_total", Help: "Folder synchronisations with IMAP, by kind and result.",
		}, []string{"kind", "result"}),
		SyncDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fbpub_folder_sync_duration_seconds", Help: "Time to synchronise one folder, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"kind"}),
		Renders: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_renders_total", Help: "Answers rendered (not served from cache), by view.",
		}, []string{"view"}),
		RenderSeconds: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fbpub_render_duration_seconds", Help: "Time to render an answer, by view.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"view"}),
		Shared: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_singleflight_shared_total", Help: "Requests that waited for work another request was already doing, by operation.",
		}, []string{"operation"}),
		UnresolvedGroups: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_acl_unresolved_groups_total", Help: "ACL evaluations in which an entry of a group whose members fbpub does not know (not in access.groups) was evaluated fail-closed: its negative rights taken away, its grants not given.",
		}),
		LoginChecks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_login_checks_total", Help: "Requesters' credential checks against IMAP, by result (ok, refused, error, throttled_user, throttled_address, throttled_global, busy).",
		}, []string{"result"}),
	}
	for _, r := range LoginResults {
		m.LoginChecks.WithLabelValues(r)
	}
	for _, r := range Routes {
		m.HTTPDuration.WithLabelValues(r)
		m.HTTPBytes.WithLabelValues(r)
	}
	for _, v := range Views {
		for _, r := range CacheResults {
			m.CacheRequests.WithLabelValues(v, r)
		}
		m.Renders.WithLabelValues(v)
		m.RenderSeconds.WithLabelValues(v)
	}
	for _, k := range SyncKinds {
		m.Syncs.WithLabelValues(k, "ok")
		m.Syncs.WithLabelValues(k, "error")
		m.SyncDuration.WithLabelValues(k)
	}
	for _, o := range Operations {
		m.Shared.WithLabelValues(o)
	}
	for _, r := range ParseReasons {
		m.ParseFailures.WithLabelValues(r)
	}
	for _, c := range IMAPCommands {
		m.IMAPDuration.WithLabelValues(c)
		for _, r := range []string{"ok", "no", "error"} {
			m.IMAPCommands.WithLabelValues(c, r)
		}
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	version, rev := buildInfo()
	f.NewGauge(prometheus.GaugeOpts{
		Name: "fbpub_build_info", Help: "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": rev},
	}).Set(1)
	return m
}

// Discard returns collectors registered nowhere, for tests and tools that
// do not export metrics.
func Discard() *Metrics {
	return New(prometheus.NewRegistry())
}

// ObserveIMAP records one IMAP command. result is "ok", "no" (the server
// refused) or "error" (the connection failed).
func (m *Metrics) ObserveIMAP(command, result string, d time.Duration) {
	m.IMAPCommands.WithLabelValues(command, result).Inc()
	m.IMAPDuration.WithLabelValues(command).Observe(d.Seconds())
}

func buildInfo() (version, revision string) {
	version, revision = "devel", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
			if len(revision) > 12 {
				revision = revision[:12]
			}
		}
	}
	return
}
