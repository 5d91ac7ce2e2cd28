package worker

import (
	"bytes"
	"fmt"
	"net/http"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
)

// BenchmarkPipelineVsPlain measures one worker's whole pipeline (trigger
// through Kafka, claims in etcd, streaming, rendering, sending) against the
// ceiling for this machine: a plain concurrent sender POSTing pre-rendered
// bodies with as many goroutines, to the same loopback endpoint, in the
// same run. The ratio is the figure to watch; absolute rates depend on the
// machine and its load.
//
//	go test -run '^$' -bench PipelineVsPlain -benchtime 3x ./worker/
func BenchmarkPipelineVsPlain(b *testing.B) {
	const (
		subscribers = 100_000
		inFlight    = 64
	)
	e := newEnv(b, sink.Config{})
	e.startWorker("bench", workerOpts{intake: true})

	bodies := preRendered(subscribers)
	var plainRate, heraldRate float64
	var peakHeap uint64
	for i := 0; b.Loop(); i++ {
		plainRate += plainSend(b, e.endpoint(), bodies, inFlight)

		id := fmt.Sprintf("bench-%d", i)
		spec := synthetic(id, e.endpoint(), subscribers)
		spec["only_reachable"] = false
		spec["endpoint"].(map[string]any)["max_in_flight"] = inFlight
		start := time.Now()
		stop := sampleHeap(&peakHeap)
		e.trigger(spec)
		st := e.waitDone(id, 5*time.Minute)
		elapsed := time.Since(start)
		stop()
		if st.Counters.Delivered != subscribers {
			b.Fatalf("delivered %d of %d", st.Counters.Delivered, subscribers)
		}
		heraldRate += subscribers / elapsed.Seconds()
	}
	n := float64(b.N)
	b.ReportMetric(plainRate/n, "plain-msgs/s")
	b.ReportMetric(heraldRate/n, "herald-msgs/s")
	b.ReportMetric(heraldRate/plainRate, "ratio")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-live-heap-MiB")
}

// preRendered builds the bodies the plain sender posts: what Herald would
// send, rendered ahead of time.
func preRendered(n int) [][]byte {
	set, err := templates.Compile(templates.Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"title": "Hi {{.name}}", "body": "Code {{.code}}"}}}, templates.Limits{})
	if err != nil {
		panic(err)
	}
	out := make([][]byte, n)
	var msg templates.Message
	for i := range out {
		sid := fmt.Sprintf("p-%d", i)
		if err := set.Render(templates.Record{"id": sid, "name": "Ann", "code": "X7"}, "en", &msg); err != nil {
			panic(err)
		}
		out[i] = templates.AppendBody(nil, templates.Delivery{BroadcastID: "plain", SubscriberID: sid,
			Key: templates.Key("plain", sid), Message: &msg})
	}
	return out
}

// plainSend posts every body once from inFlight goroutines with a plain
// keep-alive client, and returns messages per second.
func plainSend(b *testing.B, url string, bodies [][]byte, inFlight int) float64 {
	tr := &http.Transport{MaxIdleConnsPerHost: inFlight, MaxConnsPerHost: inFlight + inFlight/8 + 2}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(bodies) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", fmt.Sprintf("plain-%d-%d", b.N, i))
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	return float64(len(bodies)) / time.Since(start).Seconds()
}

// sampleHeap records the largest live heap (as measured by the last
// garbage collection) until the returned func is called: memory held, not
// garbage waiting to be collected.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		for {
			rtmetrics.Read(sample)
			*peak = max(*peak, sample[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
