package worker

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

// TestEndpointOutageFailsNobody: the endpoint answers 503 to everything for
// several times the retry budget of max_attempts 3, mid-broadcast. The
// sends pause and probe instead of spending their attempts, the status
// shows the broadcast waiting on its endpoint meanwhile, and once the
// endpoint is back every subscriber is delivered: none failed.
func TestEndpointOutageFailsNobody(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: time.Millisecond})
	var down atomic.Bool
	var during atomic.Int64
	e.answer = func(key string, w http.ResponseWriter) bool {
		if down.Load() {
			during.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	e.startWorker("w1", workerOpts{intake: true, tune: func(c *Config) {
		// The test workers' retries are fast: without the breaker, three
		// attempts are spent within a few milliseconds of an outage.
		c.Delivery.BreakerWindow = 2 * time.Second
		c.Delivery.BreakerProbeMax = 500 * time.Millisecond
	}})
	const n = 20_000
	spec := synthetic("outage", e.endpoint(), n)
	spec["endpoint"].(map[string]any)["max_attempts"] = 3
	spec["endpoint"].(map[string]any)["max_in_flight"] = 8
	e.trigger(spec)
	waitFor(t, 30*time.Second, "deliveries under way", func() bool {
		return e.sink.Stats().Broadcasts["outage"].Delivered > 1000
	})
	down.Store(true)
	waitFor(t, 10*time.Second, "the status to show the broadcast waiting on its endpoint", func() bool {
		st, err := e.reg.Status(context.Background(), "outage")
		return err == nil && st.Endpoint != nil && st.Endpoint.Waiting
	})
	time.Sleep(4 * time.Second)
	down.Store(false)
	st := e.waitDone("outage", 60*time.Second)
	conserved(t, st)
	if st.Counters.Failed != 0 {
		t.Errorf("%d subscribers failed over an outage the endpoint came back from", st.Counters.Failed)
	}
	if got, want := e.sink.Stats().Broadcasts["outage"].Delivered, eligible(t, st); got != want {
		t.Errorf("endpoint has %d, want all %d eligible", got, want)
	}
	if st.Endpoint != nil {
		t.Errorf("finished broadcast still shows its endpoint waited on: %+v", st.Endpoint)
	}
	if st.State != coordinator.StateDone {
		t.Errorf("state %s, want done", st.State)
	}
	t.Logf("requests answered 503 during the outage: %d (max_in_flight 8, probes)", during.Load())
}
