package delivery

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestSendReusesConnections(t *testing.T) {
	big := strings.Repeat("x", 1024)
	tests := []struct {
		name      string
		answer    func(int, http.ResponseWriter, *http.Request)
		cfg       func(*Config)
		sends     int
		want      Outcome
		wantConns func(n int64) bool
		connsDoc  string
	}{
		{name: "deliveries one after another", answer: status(200), sends: 30, want: Delivered,
			wantConns: func(n int64) bool { return n == 1 }, connsDoc: "1"},
		{name: "bodies read before reuse", answer: script(reply(200, big)), sends: 30, want: Delivered,
			wantConns: func(n int64) bool { return n == 1 }, connsDoc: "1"},
		// A request that gives up must not cost the pool its connection
		// (an older retry library closed idle ones). An endpoint failing every attempt
		// is an outage to the circuit breaker, which would hold these sends
		// back rather than let them give up: off here, it has tests of its
		// own.
		{name: "retries and give-ups", answer: script(reply(500, "try later")), sends: 5, want: Failed,
			cfg:       func(c *Config) { c.BreakerRatio = -1 },
			wantConns: func(n int64) bool { return n == 1 }, connsDoc: "1"},
		{name: "refusals", answer: script(reply(422, "no")), sends: 30, want: Failed,
			wantConns: func(n int64) bool { return n == 1 }, connsDoc: "1"},
		{name: "body over MaxResponseBytes costs its connection", answer: script(reply(200, big)), sends: 3,
			cfg: func(c *Config) { c.MaxResponseBytes = 16 }, want: Delivered,
			wantConns: func(n int64) bool { return n == 3 }, connsDoc: "3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := newEndpoint(t, tt.answer)
			s, _ := newTestSender(t, cfg)

			for range tt.sends {
				if r := s.Send(context.Background(), e.url(), testKey, []byte(testBody)); r.Outcome != tt.want {
					t.Fatalf("got %+v, want %v", r, tt.want)
				}
			}
			if n := e.conns.Load(); !tt.wantConns(n) {
				t.Errorf("endpoint saw %d connections, want %s", n, tt.connsDoc)
			}
		})
	}
}

// TestConcurrentSendersKeepTheirConnections runs MaxInFlight senders at
// once, as the worker's pool does. Warming up may open a few connections
// more than there are senders (net/http hands a freed connection to
// whichever request is waiting, and that one's own dial still lands), never
// more than the pool's cap; once warm, no send opens one. The endpoint
// holds the first answers until every sender has a request in flight, so
// warming up reaches the whole concurrency.
func TestConcurrentSendersKeepTheirConnections(t *testing.T) {
	const senders, sends = 8, 40
	cfg := testConfig
	cfg.MaxInFlight = senders
	var arrived sync.WaitGroup
	arrived.Add(senders)
	e := newEndpoint(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= senders {
			arrived.Done()
			arrived.Wait()
		}
		w.WriteHeader(http.StatusOK)
	})
	s, _ := newTestSender(t, cfg)
	round := func() {
		t.Helper()
		var wg sync.WaitGroup
		failed := make(chan Result, senders)
		for range senders {
			wg.Go(func() {
				for range sends {
					if r := s.Send(context.Background(), e.url(), testKey, []byte(testBody)); r.Outcome != Delivered {
						failed <- r
						return
					}
				}
			})
		}
		wg.Wait()
		close(failed)
		for r := range failed {
			t.Fatalf("got %+v, want delivered", r)
		}
	}

	round()
	warm := e.conns.Load()
	if limit := int64(s.pool.transport(modeOf(s.cfg.HTTP2)).MaxConnsPerHost); warm < 1 || warm > limit {
		t.Errorf("warming up opened %d connections, want 1 to %d", warm, limit)
	}
	round()
	if n := e.conns.Load() - warm; n != 0 {
		t.Errorf("a warm pool opened %d more connections for %d sends", n, senders*sends)
	}
	t.Logf("%d sends over %d connections", 2*senders*sends, e.conns.Load())
}
