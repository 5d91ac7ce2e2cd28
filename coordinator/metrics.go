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
	txnSeconds         *prometheus.HistogramVec
	resyncKeys         prometheus.Gauge
	archived           prometheus.Counter
	reportFailures     prometheus.Counter
	summariesDeleted   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, deadline func() time.Time) (*metrics, error) {
	const ns, sub = "herald", "coordinator"
	m := &metrics{
		unitsHeld: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "units_held", Help: "Units this member holds a claim on."}),
		claims: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "claims_total", Help: "Claims taken on units."}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "failovers_total", Help: "Orphan units this member split or reassigned among the live members."}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "handoffs_total", Help: "Units handed back at a checkpoint, carved for joiners or released on leave."}),
		fences: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "fences_total", Help: "Times this member passed its lease deadline or lost its session and dropped every claim."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_writes_total", Help: "Checkpoint transactions sent."}),
		checkpointFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "checkpoint_failures_total", Help: "Checkpoints that failed: refused (not owner) or not completed."}),
		txnSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "etcd_txn_seconds", Help: "Latency of etcd transactions, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op"}),
		resyncKeys: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "resync_keys", Help: "Keys read by the last full read of the view (at start, after a fence, after a lost watch)."}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "broadcasts_archived_total", Help: "Finished broadcasts this member reduced to their summary, deleting their live keys."}),
		reportFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "report_failures_total", Help: "Reports of finished broadcasts that failed; the broadcast stays live until one succeeds."}),
		summariesDeleted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "summaries_deleted_total", Help: "Summaries of finished broadcasts deleted at the end of their retention."}),
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
		m.checkpoints, m.checkpointFailures, m.txnSeconds, m.resyncKeys, m.archived, m.reportFailures,
		m.summariesDeleted, slack} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("coordinator: register metrics: %w", err)
		}
	}
	return m, nil
}
