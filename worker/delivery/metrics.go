package delivery

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// numAttemptClasses is how many class labels herald_delivery_attempts_total
// has: error (no response), 1xx to 5xx, and other.
const numAttemptClasses = 7

// attemptClass maps an attempt's status (0: no response) to the index of
// its class label, as listed in newMetrics.
func attemptClass(status int) int {
	switch {
	case status == 0:
		return 0
	case status >= 100 && status <= 599:
		return status / 100
	default:
		return numAttemptClasses - 1
	}
}

// metrics are a Sender's Prometheus series. A nil *metrics records nothing,
// which is what a nil Registerer gives. Children are resolved once in
// newMetrics so the hot path never looks labels up.
type metrics struct {
	attempts [numAttemptClasses]prometheus.Counter
	retries  prometheus.Counter
	latency  prometheus.Histogram
	results  [3]prometheus.Counter // by Outcome - 1
	open     prometheus.Gauge
	openings prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_delivery_attempts_total",
		Help: "HTTP attempts to deliver a message, by response status class (error: no response).",
	}, []string{"class"})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_delivery_retries_total",
		Help: "Attempts followed by a retry.",
	})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_delivery_send_seconds",
		Help:    "Time to finish one delivery, retries and waits included.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1 ms to about 1 min
	})
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_delivery_results_total",
		Help: "Finished deliveries by outcome (delivered, failed, aborted).",
	}, []string{"outcome"})

	open := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_delivery_breaker_open",
		Help: "1 while the circuit breaker holds sends back because the endpoint looks down, else 0.",
	})
	openings := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_delivery_breaker_openings_total",
		Help: "Times the circuit breaker opened.",
	})

	collectors := []prometheus.Collector{attempts, retries, latency, results, open, openings}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("delivery: register metrics: %w", err)
		}
	}
	m := &metrics{retries: retries, latency: latency, open: open, openings: openings}
	classes := [numAttemptClasses]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx", "other"}
	for i, class := range classes {
		m.attempts[i] = attempts.WithLabelValues(class)
	}
	for _, o := range []Outcome{Delivered, Failed, Aborted} {
		m.results[o-1] = results.WithLabelValues(o.String())
	}
	return m, nil
}

func (m *metrics) attempt(status int) {
	if m != nil {
		m.attempts[attemptClass(status)].Inc()
	}
}

func (m *metrics) retry() {
	if m != nil {
		m.retries.Inc()
	}
}

func (m *metrics) result(r Result) {
	if m == nil || r.Outcome < Delivered || r.Outcome > Aborted {
		return
	}
	m.results[r.Outcome-1].Inc()
	m.latency.Observe(r.Latency.Seconds())
}

func (m *metrics) breakerOpened() {
	if m != nil {
		m.open.Set(1)
		m.openings.Inc()
	}
}

func (m *metrics) breakerClosed() {
	if m != nil {
		m.open.Set(0)
	}
}
