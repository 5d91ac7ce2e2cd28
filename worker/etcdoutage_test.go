package worker

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
)

// slowOnce answers 503 with Retry-After: 1 to the first attempt of one
// subscriber in every 200, as an endpoint shedding load does; the retry a
// second later goes through.
func slowOnce(e *env, id string, count int) {
	slow := map[string]bool{}
	for i := range count {
		if i%200 == 0 {
			slow[templates.Key(id, "s7-"+itoa(i))] = true
		}
	}
	var mu sync.Mutex
	answered := map[string]bool{}
	e.answer = func(key string, w http.ResponseWriter) bool {
		mu.Lock()
		defer mu.Unlock()
		if !slow[key] || answered[key] {
			return false
		}
		answered[key] = true
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	}
}

func itoa(i int) string {
	b := [20]byte{}
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// honourRetryAfter lets a Retry-After of a second be waited out (the test
// default caps it at 50 ms).
func honourRetryAfter(c *Config) { c.Delivery.MaxRetryAfter = 2 * time.Second }

// TestKillWhileRecordsRetry kills a worker while some of its records wait
// on a Retry-After. Such a record no longer holds the checkpoint back: it
// is listed as pending and the cursor moves on, so the re-sends stay
// within one checkpoint window of the worker (1000 records), plus its
// pending and in-flight records, however many slots it held.
func TestKillWhileRecordsRetry(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	const count = 40_000
	slowOnce(e, "retry-kill", count)
	ws := []*testWorker{
		e.startWorker("w1", workerOpts{intake: true, tune: honourRetryAfter}),
		e.startWorker("w2", workerOpts{tune: honourRetryAfter}),
		e.startWorker("w3", workerOpts{tune: honourRetryAfter}),
	}
	var held int
	st, got := fleetRun(t, e, "retry-kill", count, func() {
		held = e.status("retry-kill").Workers["w2"].Units
		ws[1].kill(t)
	})
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	conserved(t, st)
	if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || st.Counters.Scanned != count {
		t.Fatalf("lost %d, scanned %d of %d", lost, st.Counters.Scanned, count)
	}
	const maxInFlight = 16
	bound := int64(1000 + 2*2*maxInFlight)
	t.Logf("killed w2 holding %d slots with records waiting on Retry-After: duplicates %d (bound %d)", held, got.Duplicates, bound)
	if got.Duplicates > bound {
		t.Errorf("duplicates %d above one checkpoint window of the worker, %d", got.Duplicates, bound)
	}
}

// TestEtcdOutage cuts every worker off from etcd for twice the lease TTL
// in the middle of a broadcast. Each worker stops reading once a
// checkpoint window has finished unacknowledged and stops sending at its
// lease deadline; after the outage each joins again under a new lease,
// keeps it, and the broadcast finishes with nothing lost and duplicates
// within one window per worker.
func TestEtcdOutage(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	const (
		count = 60_000
		ttl   = 2 * time.Second // the test workers' lease TTL
	)
	ws := []*testWorker{
		e.startWorker("w1", workerOpts{intake: true, proxied: true}),
		e.startWorker("w2", workerOpts{proxied: true}),
		e.startWorker("w3", workerOpts{proxied: true}),
	}
	var sentDuring int64
	st, got := fleetRun(t, e, "outage", count, func() {
		before := e.sink.Stats().Broadcasts["outage"].Delivered
		for _, w := range ws {
			w.proxy.Blackhole()
		}
		time.Sleep(2 * ttl)
		sentDuring = e.sink.Stats().Broadcasts["outage"].Delivered - before
		for _, w := range ws {
			w.proxy.Restore()
		}
		// Every worker back under a new lease, and keeping it.
		waitFor(t, 20*time.Second, "every worker ready again", func() bool {
			for _, w := range ws {
				if !w.w.coord.Ready() {
					return false
				}
			}
			return true
		})
		time.Sleep(3 * ttl)
	})
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	conserved(t, st)
	if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || st.Counters.Scanned != count {
		t.Fatalf("lost %d, scanned %d of %d", lost, st.Counters.Scanned, count)
	}
	for _, w := range ws {
		if f := counterValue(t, w, "herald_coordinator_fences_total"); f != 1 {
			t.Errorf("%s lost its lease %v times; once, for the outage, is right", w.id, f)
		}
	}
	const maxInFlight = 16
	bound := int64(len(ws) * (1000 + 2*2*maxInFlight))
	t.Logf("etcd unreachable for %v: %d delivered meanwhile, duplicates %d (bound %d: one window per worker)",
		2*ttl, sentDuring, got.Duplicates, bound)
	if got.Duplicates > bound {
		t.Errorf("duplicates %d above one checkpoint window per worker, %d", got.Duplicates, bound)
	}
}
