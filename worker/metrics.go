package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-dev/herald/worker/delivery"
)

// metrics are the worker's own Prometheus series. With a nil registerer
// they still count (tests read them) but are exported nowhere.
type metrics struct {
	registerer       prometheus.Registerer
	deliveries       *prometheus.CounterVec
	byOutcome        [tokenGone + 1]prometheus.Counter
	invalidTokens    prometheus.Counter
	scanned          prometheus.Counter
	unitsHeld        prometheus.Gauge
	checkpoints      prometheus.Counter
	handoffs         prometheus.Counter
	deadLetterErrors prometheus.Counter
	triggers         *prometheus.CounterVec
	streamErrors     prometheus.Counter
	readWaits        prometheus.Counter
	startErrors      prometheus.Counter
	sendSeconds      prometheus.Histogram
	retries          prometheus.Counter
	settleRetries    prometheus.Counter
	releases         prometheus.Counter
}

// newMetrics builds the series; leaseDeadline is the coordinator's local
// lease deadline, exported as the time left before it.
func newMetrics(reg prometheus.Registerer, leaseDeadline func() time.Time) *metrics {
	m := &metrics{
		registerer: reg,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Owned subscriber records finished, by outcome (delivered, failed, unreachable, invalid, expired).",
		}, []string{"outcome"}),
		scanned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_records_scanned_total",
			Help: "Audience records read, owned or not: the scan rate.",
		}),
		unitsHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_units_running",
			Help: "Slots (work units) this worker is working on now, over all broadcasts.",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_checkpoint_attempts_total",
			Help: "Checkpoint writes attempted: one per broadcast per write, covering all its slots here.",
		}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_unit_handbacks_total",
			Help: "Slots handed back at a drained checkpoint (to another worker, or on shutdown).",
		}),
		deadLetterErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_dead_letter_errors_total",
			Help: "Failed deliveries whose dead letter could not be written to Kafka.",
		}),
		triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_triggers_total",
			Help: "Triggers taken from Kafka, by result (registered, duplicate, conflict, rejected, unreadable).",
		}, []string{"result"}),
		streamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_audience_errors_total",
			Help: "Failures to open or read an audience stream; the broadcast's reader retries with backoff.",
		}),
		startErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_unit_start_errors_total",
			Help: "Claimed slots that could not start (spec, template or secret unavailable here); retried with backoff.",
		}),
		readWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_read_waits_total",
			Help: "Times reading stopped for room: the window full, or a checkpoint window finished without an acknowledged write.",
		}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_send_seconds",
			Help:    "Time to deliver or fail one message, retries and waits included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_send_retries_total",
			Help: "Attempts beyond the first, over all messages.",
		}),
		settleRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_unit_final_write_retries_total",
			Help: "Retries of a unit's last write (finish, hand-back or release) after etcd failed to answer.",
		}),
		invalidTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_invalid_tokens_total",
			Help: "Failed deliveries whose device token or push subscription the provider declared dead (also counted failed); each is produced to herald.invalid-tokens.",
		}),
		releases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_unit_releases_total",
			Help: "Units given up because their finish or hand-back could not be written; they resume from their last checkpoint.",
		}),
	}
	for o, name := range map[outcome]string{delivered: "delivered", failed: "failed", unreachable: "unreachable", invalid: "invalid", expired: "expired"} {
		m.byOutcome[o] = m.deliveries.WithLabelValues(name)
	}
	m.byOutcome[tokenGone] = m.byOutcome[failed]
	if reg != nil {
		slack := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_lease_deadline_slack_seconds",
			Help: "Time left before this worker must stop sending unless etcd acknowledges its lease again.",
		}, func() float64 {
			d := leaseDeadline()
			if d.IsZero() {
				return 0
			}
			return time.Until(d).Seconds()
		})
		reg.MustRegister(m.deliveries, m.scanned, m.unitsHeld, m.checkpoints, m.handoffs, m.deadLetterErrors, m.triggers, m.streamErrors,
			m.readWaits, m.startErrors, m.sendSeconds, m.retries, m.settleRetries, m.releases, m.invalidTokens, slack)
	}
	return m
}

func (m *metrics) outcome(o outcome) {
	m.byOutcome[o].Inc()
	if o == tokenGone {
		m.invalidTokens.Inc()
	}
}

// sent records one finished Send.
func (m *metrics) sent(r delivery.Result) {
	m.sendSeconds.Observe(r.Latency.Seconds())
	if r.Attempts > 1 {
		m.retries.Add(float64(r.Attempts - 1))
	}
}
