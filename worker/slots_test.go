package worker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

func (s *sendSlots) state(shares ...*slotShare) (free int, held []int, waiting []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sh := range shares {
		held = append(held, sh.held)
		waiting = append(waiting, len(sh.waiters))
	}
	return s.free, held, waiting
}

// waitSlots waits until the shares have that many waiters.
func waitSlots(t *testing.T, s *sendSlots, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d waiters", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.waiting == n
	})
}

// TestSendSlotsShareFairly: a broadcast alone takes every slot; one that
// starts next to it gets the slots it frees until both hold alike; a
// cancelled wait loses no slot.
func TestSendSlotsShareFairly(t *testing.T) {
	s := newSendSlots(6)
	a, b := s.join(0), s.join(0)
	ctx := context.Background()
	for range 6 {
		if err := a.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wait := func(sh *slotShare, n int) {
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := sh.acquire(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wait(b, 6)
	waitSlots(t, s, 6)
	// a's senders finish and come back for more: every slot a frees goes
	// to b until they hold alike, then they take turns.
	for i := range 3 {
		a.release()
		wait(a, 1)
		waitSlots(t, s, 6)
		if _, held, _ := s.state(a, b); held[1] != i+1 {
			t.Fatalf("after %d releases by a, b holds %d", i+1, held[1])
		}
	}
	free, held, waiting := s.state(a, b)
	if free != 0 || held[0] != 3 || held[1] != 3 || waiting[0] != 3 || waiting[1] != 3 {
		t.Fatalf("free %d, held %v, waiting %v; want 0, [3 3], [3 3]", free, held, waiting)
	}
	b.release() // b now holds fewer: its own waiter gets it back
	if _, held, _ := s.state(a, b); held[0] != 3 || held[1] != 3 {
		t.Fatalf("held %v after b released, want [3 3]", held)
	}
	waitSlots(t, s, 5)
	a.release()
	waitSlots(t, s, 4)
	if _, held, _ := s.state(a, b); held[0] != 3 || held[1] != 3 {
		t.Fatalf("held %v after a released, want [3 3]", held)
	}

	// A third broadcast whose wait is cancelled takes nothing away.
	c := s.join(0)
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.acquire(cctx) }()
	waitSlots(t, s, 5)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("a cancelled wait took a slot")
	}
	c.leave()
	// Drain: holders release until the waiters have had their slots and
	// given them back too.
	for {
		_, held, _ := s.state(a, b)
		if held[0]+held[1] == 0 {
			break
		}
		if held[0] > 0 {
			a.release()
		} else {
			b.release()
		}
	}
	wg.Wait()
	if free, held, waiting := s.state(a, b); free != 6 || held[0] != 0 || held[1] != 0 || waiting[0]+waiting[1] != 0 {
		t.Fatalf("free %d, held %v, waiting %v at the end; want every slot free", free, held, waiting)
	}
	a.leave()
	b.leave()
}

// concurrency counts the requests an endpoint is serving at once, overall
// and by broadcast (the last path segment), and the connections open to it.
type concurrency struct {
	now, peak atomic.Int64
	conns     atomic.Int64

	mu    sync.Mutex
	first map[string]time.Time
	last  map[string]time.Time
	at    map[string][]time.Time
}

func (c *concurrency) wrap(next http.HandlerFunc) *httptest.Server {
	c.first, c.last, c.at = map[string]time.Time{}, map[string]time.Time{}, map[string][]time.Time{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := c.now.Add(1)
		defer c.now.Add(-1)
		for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
		}
		id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		now := time.Now()
		c.mu.Lock()
		if _, ok := c.first[id]; !ok {
			c.first[id] = now
		}
		c.last[id] = now
		c.at[id] = append(c.at[id], now)
		c.mu.Unlock()
		next(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			c.conns.Add(-1)
		}
	}
	srv.Start()
	return srv
}

// TestInFlightCapAcrossBroadcasts: three broadcasts on one worker, allowed
// 32, 16 and 6 in flight by their endpoints, share the worker's 12 slots. The endpoint never
// serves more than 12 at once, each broadcast gets its share while all
// three run, every one finishes exactly, and no connection stays open once
// they are done.
func TestInFlightCapAcrossBroadcasts(t *testing.T) {
	const maxInFlight, count = 12, 4000
	e := newEnv(t, sink.Config{Latency: 2 * time.Millisecond})
	var c concurrency
	srv := c.wrap(e.serve)
	defer srv.Close()
	e.startWorker("w1", workerOpts{intake: true, tune: func(cfg *Config) { cfg.MaxInFlight = maxInFlight }})
	// Endpoints that allow more in flight do not get more of the worker:
	// a queue in arrival order would give fair-a most of the slots.
	ids := []string{"fair-a", "fair-b", "fair-c"}
	for i, id := range ids {
		spec := synthetic(id, srv.URL+"/push/"+id, count)
		spec["endpoint"].(map[string]any)["max_in_flight"] = []int{32, 16, 6}[i]
		e.trigger(spec)
	}
	for _, id := range ids {
		st := e.waitDone(id, 60*time.Second)
		got := e.sink.Stats().Broadcasts[id]
		if st.State != coordinator.StateDone {
			t.Fatalf("%s: state %s, want done", id, st.State)
		}
		conserved(t, st)
		if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || got.Duplicates != 0 {
			t.Errorf("%s: lost %d, duplicates %d", id, lost, got.Duplicates)
		}
	}
	if peak := c.peak.Load(); peak > maxInFlight {
		t.Errorf("the endpoint served %d requests at once; the worker allows %d", peak, maxInFlight)
	}

	// While all three ran, each got a fair part of the requests.
	c.mu.Lock()
	var from, to time.Time
	for i, id := range ids {
		if i == 0 || c.first[id].After(from) {
			from = c.first[id]
		}
		if i == 0 || c.last[id].Before(to) {
			to = c.last[id]
		}
	}
	during := map[string]int{}
	var total int
	for _, id := range ids {
		for _, at := range c.at[id] {
			if !at.Before(from) && !at.After(to) {
				during[id]++
				total++
			}
		}
	}
	c.mu.Unlock()
	t.Logf("peak %d in flight (cap %d); while all three ran (%v): %v", c.peak.Load(), maxInFlight, to.Sub(from).Round(time.Millisecond), during)
	if total < 300 {
		t.Fatalf("the broadcasts barely overlapped (%d requests while all three ran): nothing to compare", total)
	}
	for _, id := range ids {
		if during[id] < total/3/2 {
			t.Errorf("%s got %d of %d requests while all three ran: less than half a fair share", id, during[id], total)
		}
	}

	// A worker with no broadcast left closes its idle connections.
	waitFor(t, 5*time.Second, "connections to the endpoint closed", func() bool { return c.conns.Load() == 0 })
}
