//go:build unix

// The benchmarks read the process's CPU time with getrusage, which only
// Unix systems have.

package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchInFlight is the worker's default max_in_flight.
const benchInFlight = DefaultMaxInFlight

// benchRig is one loopback endpoint answering 200, a Sender, and the plain
// client Herald measures the Sender against: an http.Client with the same
// per-host pool size and attempt timeout, putting the same bytes on the
// wire (same body and headers, no Accept-Encoding), without retries or
// metrics. So the ratio is the cost of the Sender's own code.
type benchRig struct {
	srv    *httptest.Server
	url    string
	body   []byte
	sender *Sender
	plain  *http.Client
	// netHTTP is a Sender like sender but over net/http's transport, not
	// the direct HTTP/1.1 path (h1.go).
	netHTTP *Sender
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	s, err := New(Config{MaxInFlight: benchInFlight}, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	nhPool := NewPool(benchInFlight, 0)
	nhPool.netHTTP = true
	nh, err := New(Config{MaxInFlight: benchInFlight, Pool: nhPool}, nil, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	pool := &http.Transport{MaxIdleConnsPerHost: benchInFlight, DisableCompression: true}
	r := &benchRig{
		srv:     srv,
		url:     srv.URL + "/push",
		body:    []byte(testBody),
		sender:  s,
		plain:   &http.Client{Transport: pool, Timeout: DefaultTimeout},
		netHTTP: nh,
	}
	b.Cleanup(func() {
		s.Close()
		nhPool.CloseIdle()
		pool.CloseIdleConnections()
		srv.Close()
	})
	return r
}

func (r *benchRig) sendSender() error {
	if res := r.sender.Send(context.Background(), r.url, testKey, r.body); res.Outcome != Delivered {
		return fmt.Errorf("sender: %+v", res)
	}
	return nil
}

func (r *benchRig) sendNetHTTP() error {
	if res := r.netHTTP.Send(context.Background(), r.url, testKey, r.body); res.Outcome != Delivered {
		return fmt.Errorf("sender over net/http: %+v", res)
	}
	return nil
}

func (r *benchRig) sendPlain() error {
	req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", testKey)
	resp, err := r.plain.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("plain: status %d", resp.StatusCode)
	}
	return nil
}

// cpuTime is the CPU time this process has used, user and system. On a
// machine shared with other work it measures cost far more steadily than
// the wall clock does.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cost is what sending some messages took.
type cost struct{ wall, cpu time.Duration }

func (c *cost) add(d cost) { c.wall += d.wall; c.cpu += d.cpu }

// spread sends n messages from benchInFlight goroutines, as the worker's
// pool does, and returns what that took. The CPU time includes the
// endpoint's, which is the same work for every client.
func spread(b *testing.B, n int, send func() error) cost {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, benchInFlight)
	start, startCPU := time.Now(), cpuTime(b)
	for range benchInFlight {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := send(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := cost{wall: time.Since(start), cpu: cpuTime(b) - startCPU}
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return took
}

// BenchmarkSendVsPlain sends b.N messages through the Sender, b.N through
// the plain client and b.N through the Sender over net/http's transport
// (without the direct HTTP/1.1 path), in turn in short rounds so that
// other load on a shared machine hits all alike. It reports the rates and
// their ratios to the plain client (Herald's target: sender/plain ≥ 0.85),
// and the CPU time per message of each with their ratios, the steadier
// figure when the machine is busy. The CPU time includes the endpoint's,
// the same for all three.
func BenchmarkSendVsPlain(b *testing.B) {
	r := newBenchRig(b)
	clients := []struct {
		name string
		send func() error
		c    cost
	}{{name: "plain", send: r.sendPlain}, {name: "sender", send: r.sendSender}, {name: "sender_nethttp", send: r.sendNetHTTP}}
	// Warm the pools so none pays for dialing inside the timing.
	for _, c := range clients {
		spread(b, 4*benchInFlight, c.send)
	}
	const rounds = 18
	per := max(b.N/rounds, 1)
	b.ResetTimer()
	for i := range rounds {
		for j := range clients {
			c := &clients[(i+j)%len(clients)]
			c.c.add(spread(b, per, c.send))
		}
	}
	b.StopTimer()
	msgs := float64(per * rounds)
	plain := clients[0].c
	for _, c := range clients {
		b.ReportMetric(msgs/c.c.wall.Seconds(), c.name+"_msgs/s")
		b.ReportMetric(c.c.cpu.Seconds()*1e6/msgs, c.name+"_cpu_µs/msg")
		if c.name != "plain" {
			b.ReportMetric(plain.wall.Seconds()/c.c.wall.Seconds(), c.name+"_ratio")
			b.ReportMetric(plain.cpu.Seconds()/c.c.cpu.Seconds(), c.name+"_cpu_ratio")
		}
	}
}

// BenchmarkSendOne sends one message at a time, to compare what each
// message costs the two clients in time and allocations.
func BenchmarkSendOne(b *testing.B) {
	r := newBenchRig(b)
	for _, c := range []struct {
		name string
		send func() error
	}{{"sender", r.sendSender}, {"plain", r.sendPlain}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.send(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
