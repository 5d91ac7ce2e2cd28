package coordinator

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Coordinator's Prometheus collectors. They always exist, so
// code can update them unconditionally; they are only exported when New got
// a registerer.
type metrics struct {
	unitsHeld          prometheus.Gauge
	claims             prometheus.Counter
	failovers          prometheus.Counter
	handoffs           prometheus.Counter
	fences             prometheus.Counter
	checkpoints        prometheus.Counter
	checkpointFailures prometheus.Counter
	watchEvents        prometheus.Counter
	txnSeconds         *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, deadline func() time.Time) (*metrics, error) {
	const ns, sub = "herald", "coordinator"
	m := &metrics{
		unitsHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "units_held", Help: "Slots this member holds a claim on."}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "claims_total", Help: "Claims taken on slots."}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "failovers_total", Help: "Slots this member took over from a member that died or lost its lease, from its last checkpoint."}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handoffs_total", Help: "Slots handed back at a checkpoint, to another member or on leave."}),
		fences: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "fences_total", Help: "Times this member passed its lease deadline or lost its session and dropped every claim."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_writes_total", Help: "Progress transactions sent (each covers up to 60 slots)."}),
		watchEvents: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "watch_events_total", Help: "etcd watch events received: membership, broadcast states, claims and done slots."}),
		checkpointFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_failures_total", Help: "Checkpoints that failed: refused (not owner) or not completed."}),
		txnSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "etcd_txn_seconds", Help: "Latency of etcd transactions, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	slack := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
		Name: "lease_deadline_slack_seconds",
		Help: "Time left before the local lease deadline; 0 when not joined."},
		func() float64 {
			d := deadline()
			if d.IsZero() {
				return 0
			}
			return time.Until(d).Seconds()
		})
	for _, c := range []prometheus.Collector{m.unitsHeld, m.claims, m.failovers, m.handoffs, m.fences,
		m.checkpoints, m.checkpointFailures, m.watchEvents, m.txnSeconds, slack} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("coordinator: register metrics: %w", err)
		}
	}
	return m, nil
}
