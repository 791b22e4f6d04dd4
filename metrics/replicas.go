package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Replicas are the collectors of what replicas sharing one Redis do
// together: snapshots and checks one replica takes from another, and the
// leases that make one replica do a piece of work for all. Like Redis,
// they are registered only when Redis is configured (cache.redis).
type Replicas struct {
	// Shared counts looks into Redis for work another replica did, by
	// kind (snapshot, check) and result: hit when it was there, miss when
	// this replica then did the work itself.
	Shared *prometheus.CounterVec // kind, result
	// LeaseWaits counts the times this replica found a lease held by
	// another and waited for its result, by lease (sync, check, watch).
	LeaseWaits *prometheus.CounterVec // lease
	// Takeovers counts leases this replica took after waiting for
	// another holder: the holder finished without a usable result or died
	// (for the watch: this replica now holds the IMAP push connections).
	Takeovers *prometheus.CounterVec // lease
}

// ReplicaLeases are the lease label's values; ReplicaKinds the kind
// label's.
var (
	ReplicaLeases = []string{"sync", "check", "watch"}
	ReplicaKinds  = []string{"snapshot", "check"}
)

// NewReplicas creates the replica collectors on reg.
func NewReplicas(reg prometheus.Registerer) *Replicas {
	f := promauto.With(reg)
	m := &Replicas{
		Shared: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_cache_requests_total", Help: "Looks into Redis for a folder snapshot or an owner check another replica made, by kind and result (hit, or miss: this replica read IMAP).",
		}, []string{"kind", "result"}),
		LeaseWaits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_lease_waits_total", Help: "Times this replica waited for another replica holding a lease (sync of a folder, check of an owner, the IMAP watch), by lease.",
		}, []string{"lease"}),
		Takeovers: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fbpub_redis_lease_takeovers_total", Help: "Leases this replica took after waiting for another holder, which finished without a usable result or died, by lease.",
		}, []string{"lease"}),
	}
	for _, k := range ReplicaKinds {
		m.Shared.WithLabelValues(k, "hit")
		m.Shared.WithLabelValues(k, "miss")
	}
	for _, l := range ReplicaLeases {
		m.LeaseWaits.WithLabelValues(l)
		m.Takeovers.WithLabelValues(l)
	}
	return m
}
