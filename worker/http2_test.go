package worker

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

// TestEndpointHTTP2: a broadcast whose endpoint asks for h2c is delivered
// over HTTP/2; one that leaves http2 out reaches the same plain http://
// endpoint over HTTP/1.1, on the same worker and its one pool.
func TestEndpointHTTP2(t *testing.T) {
	e := newEnv(t, sink.Config{})
	var mu sync.Mutex
	majors := map[string]map[int]int{} // broadcast id -> HTTP major -> requests
	e.inspect = func(r *http.Request) {
		id := r.URL.Query().Get("b")
		mu.Lock()
		defer mu.Unlock()
		if majors[id] == nil {
			majors[id] = map[int]int{}
		}
		majors[id][r.ProtoMajor]++
	}
	e.startWorker("w1", workerOpts{intake: true})
	const count = 200
	for id, mode := range map[string]string{"over-h2c": "h2c", "over-h1": ""} {
		sp := synthetic(id, e.endpoint()+"?b="+id, count)
		if mode != "" {
			sp["endpoint"].(map[string]any)["http2"] = mode
		}
		e.trigger(sp)
	}
	for id, want := range map[string]int{"over-h2c": 2, "over-h1": 1} {
		st := e.waitDone(id, 60*time.Second)
		if st.State != coordinator.StateDone || st.Counters.Delivered == 0 || st.Counters.Failed != 0 {
			t.Fatalf("%s: state %s (%s), counters %+v, want done with all delivered", id, st.State, st.Reason, st.Counters)
		}
		mu.Lock()
		got := majors[id]
		mu.Unlock()
		if len(got) != 1 || got[want] < int(st.Counters.Delivered) {
			t.Errorf("%s: requests by HTTP major version %v, want all HTTP/%d", id, got, want)
		}
	}
}
