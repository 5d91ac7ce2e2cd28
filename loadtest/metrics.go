package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Names of the worker series the load test reads.
const (
	metricSend       = "herald_send_seconds"
	metricDeliveries = "herald_deliveries_total"
	metricScanned    = "herald_records_scanned_total"
)

// workerSample is one scrape of a worker's /metrics.
type workerSample struct {
	at        time.Time
	delivered float64 // herald_deliveries_total{outcome="delivered"}
	send      hist    // herald_send_seconds
	scanned   float64 // herald_records_scanned_total
}

// scrape reads a worker's /metrics.
func scrape(ctx context.Context, client *http.Client, addr string) (workerSample, error) {
	s := workerSample{at: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return s, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return s, fmt.Errorf("loadtest: scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("loadtest: scrape %s: %s", addr, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return s, nil
		} else if err != nil {
			return s, fmt.Errorf("loadtest: scrape %s: %w", addr, err)
		}
		switch mf.GetName() {
		case metricSend:
			for _, m := range mf.GetMetric() {
				s.send = histFromProto(m.GetHistogram())
			}
		case metricScanned:
			for _, m := range mf.GetMetric() {
				s.scanned = m.GetCounter().GetValue()
			}
		case metricDeliveries:
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "delivered" {
						s.delivered = m.GetCounter().GetValue()
					}
				}
			}
		}
	}
}

// hist is a cumulative histogram in Prometheus's shape: counts[i] is the
// number of observations at most bounds[i].
type hist struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

func histFromProto(h *dto.Histogram) hist {
	out := hist{count: h.GetSampleCount(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, b.GetCumulativeCount())
	}
	return out
}

// add merges o into h; both must have the same bounds (all workers run the
// same binary), or h must be empty.
func (h *hist) add(o hist) error {
	if o.count == 0 {
		return nil
	}
	if h.count == 0 && len(h.bounds) == 0 {
		h.bounds = slices.Clone(o.bounds)
		h.counts = make([]uint64, len(o.counts))
	}
	if !slices.Equal(h.bounds, o.bounds) {
		return errors.New("loadtest: histograms with different buckets")
	}
	for i := range o.counts {
		h.counts[i] += o.counts[i]
	}
	h.count += o.count
	h.sum += o.sum
	return nil
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linearly within the bucket that holds it. With buckets doubling in
// width the estimate is within a factor of two of the truth, which the
// report says. NaN when empty; the last finite bound when the quantile
// falls beyond it.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	lower, below := 0.0, uint64(0)
	for i, c := range h.counts {
		if float64(c) >= rank {
			in := c - below
			if in == 0 {
				return h.bounds[i]
			}
			return lower + (h.bounds[i]-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = h.bounds[i], c
	}
	return lower
}

// sendBuckets are the workers' herald_send_seconds bounds (0.5 ms doubling
// 16 times), used for the baselines' own latencies so the figures compare.
func sendBuckets() []float64 {
	b := make([]float64, 16)
	for i := range b {
		b[i] = 0.0005 * math.Pow(2, float64(i))
	}
	return b
}

// liveHist is a histogram many goroutines record into.
type liveHist struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNs  atomic.Int64
}

func newLiveHist() *liveHist {
	b := sendBuckets()
	return &liveHist{bounds: b, counts: make([]atomic.Uint64, len(b)+1)}
}

func (l *liveHist) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(l.bounds, s)
	l.counts[i].Add(1)
	l.sumNs.Add(int64(d))
}

func (l *liveHist) snapshot() hist {
	h := hist{bounds: slices.Clone(l.bounds), counts: make([]uint64, len(l.bounds))}
	var cum uint64
	for i := range l.bounds {
		cum += l.counts[i].Load()
		h.counts[i] = cum
	}
	h.count = cum + l.counts[len(l.bounds)].Load()
	h.sum = time.Duration(l.sumNs.Load()).Seconds()
	return h
}
