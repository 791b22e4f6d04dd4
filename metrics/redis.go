package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Redis are the collectors of the state several replicas share through
// Redis (internal/shared). They are registered only when Redis is
// configured (cache.redis), so a single replica exports none of them.
type Redis struct {
	// Up is 1 while Redis answers (shared mode) and 0 while the replica
	// falls back to local state (degraded mode).
	Up prometheus.Gauge
	// Commands counts Redis operations, by op and result (ok, error),
	// and Duration their latency, by op.
	Commands *prometheus.CounterVec   // op, result
	Duration *prometheus.HistogramVec // op
	// Fallbacks counts operations done on local state instead of Redis,
	// because Redis was unreachable, by op.
	Fallbacks *prometheus.CounterVec // op
	// LeasesLost counts leases whose holder learnt it no longer holds
	// them (renewal refused, or Redis unreachable for their whole TTL).
	LeasesLost prometheus.Counter
	// LeaseWaits observes how long a Lock waited for a lease that
	// another holder had (on this replica or another); a Lock that got
	// it at once is not observed.
	LeaseWaits prometheus.Histogram
	// LeaseTakeovers counts shared leases granted on a key whose previous
	// holder never released it: it died, or lost Redis, and its lease
	// expired.
	LeaseTakeovers prometheus.Counter
	// SharedCache counts look-ups of blobs (shared snapshots) in Redis,
	// by result (hit, miss).
	SharedCache *prometheus.CounterVec // result
}

// RedisOps are the operations of internal/shared, the op label's values.
var RedisOps = []string{"ping", "lock", "renew", "unlock", "throttle", "get", "set", "publish", "subscribe"}

// NewRedis creates the Redis collectors on reg.
func NewRedis(reg prometheus.Registerer) *Redis {
	f := promauto.With(reg)
	m := &Redis{
		Up: f.NewGauge(prometheus.GaugeOpts{
			Name: "fbpub_redis_up", Help: "1 while Redis answers and replicas share state through it, 0 while this replica falls back to local state.",
		}),
		Commands: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_commands_total", Help: "Operations on the shared Redis, by op and result (ok, error).",
		}, []string{"op", "result"}),
		Duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fbpub_redis_command_duration_seconds", Help: "Latency of operations on the shared Redis, by op.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		Fallbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_fallbacks_total", Help: "Operations done on this replica's local state because Redis was unreachable, by op.",
		}, []string{"op"}),
		LeasesLost: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_redis_leases_lost_total", Help: "Leases (locks) whose holder learnt it no longer held them: renewal refused, or Redis unreachable for the lease's whole TTL.",
		}),
		LeaseWaits: f.NewHistogram(prometheus.HistogramOpts{
			Name: "fbpub_redis_lease_wait_seconds", Help: "How long a lock waited for a lease another holder had (uploads of one folder, a check of one folder); locks got at once are not counted.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		LeaseTakeovers: f.NewCounter(prometheus.CounterOpts{
			Name: "fbpub_redis_leases_abandoned_total", Help: "Shared leases granted on a key whose previous holder never released it (it died or lost Redis, and its lease expired). fbpub_redis_lease_takeovers_total counts, by lease, the work a replica then took over.",
		}),
		SharedCache: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_blob_requests_total", Help: "Look-ups of blobs (shared snapshots and their states) that Redis answered, by result (hit, miss). fbpub_redis_cache_requests_total counts them by what was looked for.",
		}, []string{"result"}),
	}
	m.SharedCache.WithLabelValues("hit")
	m.SharedCache.WithLabelValues("miss")
	for _, op := range RedisOps {
		m.Commands.WithLabelValues(op, "ok")
		m.Commands.WithLabelValues(op, "error")
		m.Duration.WithLabelValues(op)
		m.Fallbacks.WithLabelValues(op)
	}
	return m
}
