package worker

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/delivery"
)

// batched is a synthetic broadcast whose endpoint takes batches of size.
func batched(id, url string, count, size int) map[string]any {
	sp := synthetic(id, url, count)
	sp["endpoint"].(map[string]any)["batch_size"] = size
	return sp
}

// TestBatchedEndToEnd: two workers deliver a broadcast in batches to an
// endpoint that holds some keys back (503 per item, once) and refuses
// others (400 per item). Every eligible subscriber ends delivered once or
// failed with a dead letter, requests carry at most batch_size items, and
// there are far fewer requests than messages.
func TestBatchedEndToEnd(t *testing.T) {
	const (
		count  = 6000
		size   = 50
		refuse = 0.05
	)
	e := newEnv(t, sink.Config{Retry: sink.RetryKeys{OneIn: 9, Times: 1}, Refuse400: refuse, RetryAfter: time.Second})
	var mu sync.Mutex
	sizes := map[int]int{} // items in a request -> requests
	e.inspect = func(r *http.Request) {
		n, _ := strconv.Atoi(r.Header.Get(delivery.BatchHeader))
		mu.Lock()
		sizes[n]++
		mu.Unlock()
	}
	e.startWorker("w1", workerOpts{intake: true})
	e.startWorker("w2", workerOpts{})
	e.trigger(batched("batched", e.endpoint(), count, size))
	st := e.waitDone("batched", 90*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s)", st.State, st.Reason)
	}
	conserved(t, st)
	var refused int64
	for i := range count {
		if sink.Refuses(templates.Key("batched", fmt.Sprintf("s7-%d", i)), refuse) && reachableIn(t, count, i) {
			refused++
		}
	}
	got := e.sink.Stats()
	b := got.Broadcasts["batched"]
	if st.Counters.Failed != refused || b.Refused != refused {
		t.Errorf("failed %d, sink refused %d: want the %d keys the sink refuses", st.Counters.Failed, b.Refused, refused)
	}
	if lost := eligible(t, st) - b.Delivered - st.Counters.Failed; lost != 0 || b.Duplicates != 0 {
		t.Errorf("lost %d, duplicates %d (eligible %d, delivered %d)", lost, b.Duplicates, eligible(t, st), b.Delivered)
	}
	if got.Injected503 == 0 {
		t.Errorf("no item was held back: %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	requests := 0
	for n, k := range sizes {
		if n < 1 || n > size {
			t.Errorf("%d requests of %d items, want 1 to %d (the %s header)", k, n, size, delivery.BatchHeader)
		}
		requests += k
	}
	// Retried items go in smaller batches and the tail of each slot in a
	// part-filled one, but most requests are full.
	if requests == 0 || int64(requests) > b.Requests/10 {
		t.Errorf("%d requests for %d deliveries: batches of %d should need far fewer", requests, b.Requests, size)
	}
	t.Logf("%d deliveries in %d requests (%d batches at the sink); sizes %v", b.Requests, requests, got.Batches, sizes)
	if letters := readDeadLetters(t, e, int(refused)); len(letters) != int(refused) {
		t.Errorf("%d dead letters, want %d", len(letters), refused)
	}
}

// TestBatchedKillMidBroadcast: a worker killed while sending batches loses
// nothing; its duplicates stay within one checkpoint window plus what it
// had in flight, which with batches is max_in_flight requests of
// batch_size records.
func TestBatchedKillMidBroadcast(t *testing.T) {
	e := newEnv(t, sink.Config{Latency: time.Millisecond})
	ws := []*testWorker{
		e.startWorker("w1", workerOpts{intake: true}),
		e.startWorker("w2", workerOpts{}),
		e.startWorker("w3", workerOpts{}),
	}
	const (
		count = 40_000
		size  = 100
	)
	e.trigger(batched("kill-batched", e.endpoint(), count, size))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
		return e.sink.Stats().Broadcasts["kill-batched"].Delivered >= count/3
	})
	ws[1].kill(t)
	st := e.waitDone("kill-batched", 90*time.Second)
	got := e.sink.Stats().Broadcasts["kill-batched"]
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	conserved(t, st)
	if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || st.Counters.Scanned != count {
		t.Errorf("lost %d, scanned %d of %d", lost, st.Counters.Scanned, count)
	}
	const maxInFlight = 16 // synthetic's
	bound := int64(1000 + 2*maxInFlight*size)
	t.Logf("killed w2: duplicates %d (bound %d), delivered %d", got.Duplicates, bound, got.Delivered)
	if got.Duplicates > bound {
		t.Errorf("duplicates %d above the bound %d", got.Duplicates, bound)
	}
}
