package delivery

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter is an endpoint that counts the connections open to it, now
// and at most at once.
type connCounter struct {
	srv        *httptest.Server
	opened     atomic.Int64
	mu         sync.Mutex
	open, peak int
}

func newConnCounter(t *testing.T) *connCounter {
	t.Helper()
	c := &connCounter{}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // long enough for sends to overlap
		w.WriteHeader(http.StatusOK)
	}))
	c.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch st {
		case http.StateNew:
			c.opened.Add(1)
			c.open++
			c.peak = max(c.peak, c.open)
		case http.StateClosed, http.StateHijacked:
			c.open--
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *connCounter) peakOpen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// deliverAll runs goroutines goroutines per Sender, each sending n messages,
// all at once, and fails the test on anything but a delivery.
func deliverAll(t *testing.T, url string, senders []*Sender, goroutines, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for _, s := range senders {
		for range goroutines {
			wg.Go(func() {
				for range n {
					if r := s.Send(context.Background(), url, testKey, []byte(testBody)); r.Outcome != Delivered {
						bad.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d sends not delivered", bad.Load())
	}
}

// TestSharedPoolBoundsConnections: Senders sharing a Pool open, together,
// no more connections than the pool allows one host, however many
// MaxInFlight each has; Senders with pools of their own open up to theirs
// each (the control, which shows the measure can fail).
func TestSharedPoolBoundsConnections(t *testing.T) {
	const poolConns, perSender, senders = 4, 16, 3
	limit := poolConns + poolConns/8 + 2 // the pool's cap on one host

	run := func(t *testing.T, pool *Pool) int {
		e := newConnCounter(t)
		var ss []*Sender
		for range senders {
			cfg := testConfig
			cfg.MaxInFlight = perSender
			cfg.Pool = pool
			s, _ := newTestSender(t, cfg)
			ss = append(ss, s)
		}
		deliverAll(t, e.srv.URL, ss, perSender, 20)
		return e.peakOpen()
	}

	t.Run("shared", func(t *testing.T) {
		pool := NewPool(poolConns, 0)
		t.Cleanup(pool.CloseIdle)
		if peak := run(t, pool); peak > limit {
			t.Errorf("%d senders of %d in flight on one pool of %d had %d connections open at once, want at most %d",
				senders, perSender, poolConns, peak, limit)
		}
	})
	t.Run("own pools", func(t *testing.T) {
		if peak := run(t, nil); peak <= limit {
			t.Errorf("senders with pools of their own had only %d connections open at once; the measure cannot tell the cases apart", peak)
		}
	})
}

// TestSenderCloseLeavesSharedPool: closing one Sender of a shared pool
// keeps the connections the others use.
func TestSenderCloseLeavesSharedPool(t *testing.T) {
	e := newConnCounter(t)
	pool := NewPool(4, 0)
	t.Cleanup(pool.CloseIdle)
	cfg := testConfig
	cfg.Pool = pool
	a, _ := newTestSender(t, cfg)
	b, _ := newTestSender(t, cfg)
	deliverAll(t, e.srv.URL, []*Sender{a}, 1, 3)
	a.Close()
	deliverAll(t, e.srv.URL, []*Sender{b}, 1, 3)
	if n := e.opened.Load(); n != 1 {
		t.Errorf("endpoint saw %d connections, want 1: the other Sender should reuse the first's", n)
	}
	pool.CloseIdle()
	deliverAll(t, e.srv.URL, []*Sender{b}, 1, 1)
	if n := e.opened.Load(); n != 2 {
		t.Errorf("after CloseIdle the endpoint saw %d connections, want 2", n)
	}
}
